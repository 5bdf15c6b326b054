"""The request log as an operator reads it: one JSON line per request with its id, no prompt and no
secret by default, payloads only when enabled, and a readable form for a terminal."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from llmproxy.app import create_app
from llmproxy.config import Secret
from tests.conftest import base_settings
from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import ServerThread

MASTER = "sk-master-secret-0123456789abcdef"
PROMPT = "confidential-prompt-text-4711"


class Sink(io.RawIOBase):
    """A byte stream the log writer thread can write to while the test reads it."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._lock:
            self._buf += bytes(data)
        return len(data)

    def text(self) -> str:
        with self._lock:
            return self._buf.decode()


@pytest.fixture
def logged_gateway(tmp_path: Path, openai_upstream: tuple[str, FakeState]) -> Iterator[Any]:
    """Start a gateway whose logs go to a Sink; yields start(**settings) -> (url, sink)."""
    root = logging.getLogger("llmproxy")
    saved = (root.handlers[:], root.level, root.propagate)
    servers: list[ServerThread] = []

    def start(**changes: Any) -> tuple[str, Sink]:
        sink = Sink()
        settings = replace(
            base_settings(tmp_path, openai_upstream[0]), master_key=Secret(MASTER), log_level="info", **changes
        )
        servers.append(ServerThread(create_app(settings, log_stream=sink)).start())
        return servers[-1].url, sink

    yield start
    for server in servers:
        server.stop()
    root.handlers[:], root.level, root.propagate = saved


def request_lines(sink: Sink, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        lines = [orjson.loads(line) for line in sink.text().splitlines() if line.startswith("{")]
        found = [line for line in lines if line.get("logger") == "llmproxy.request"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_json_lines_carry_ids_but_no_prompt_or_secret(logged_gateway: Any) -> None:
    url, sink = logged_gateway()
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": "trace-abc-1"},
    )
    assert raw.headers["x-request-id"] == "trace-abc-1"
    for _chunk in client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": PROMPT + " stream"}]
    ):
        pass
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="openai/fail-500", messages=[{"role": "user", "content": PROMPT}])
    failed_id = failed.value.response.headers["x-request-id"]
    wrong = "sk-wrong-key-that-must-not-be-logged-999"
    r = httpx.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {wrong}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]},
    )
    assert r.status_code == 401 and wrong not in r.text

    lines = request_lines(sink, 4)
    assert len(lines) == 4
    ok = lines[0]
    assert ok["request_id"] == "trace-abc-1" and ok["status"] == 200 and ok["model"] == "gpt-4o-mini"
    assert ok["provider"] == "openai" and ok["prompt_tokens"] == 12 and ok["cost_usd"] > 0
    assert ok["key_id"] == "master" and ok["level"] == "info" and ok["ts"].endswith("Z")
    assert lines[1]["stream"] is True and lines[1]["ttft_ms"] > 0
    assert lines[2]["request_id"] == failed_id and lines[2]["status"] >= 500 and lines[2]["error_type"]
    assert lines[3]["status"] == 401 and lines[3]["request_id"] == r.headers["x-request-id"]
    everything = sink.text()
    for secret in (PROMPT, MASTER, API_KEY, wrong, "echo:"):
        assert secret not in everything, secret


def test_payloads_are_logged_only_when_enabled(logged_gateway: Any) -> None:
    url, sink = logged_gateway(log_payloads=True)
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    (line,) = request_lines(sink, 1)
    assert line["messages"] == [{"role": "user", "content": PROMPT}]
    assert line["choices"][0]["message"]["content"] == f"echo: {PROMPT}"
    assert MASTER not in sink.text() and API_KEY not in sink.text()


def test_text_format_for_a_terminal(logged_gateway: Any) -> None:
    url, sink = logged_gateway(log_format="text")
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], extra_headers={"x-request-id": "text-id-1"}
    )
    deadline = time.monotonic() + 5
    while "text-id-1" not in sink.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = [ln for ln in sink.text().splitlines() if "text-id-1" in ln]
    assert not line.startswith("{")
    assert " 200 " in line and "gpt-4o-mini via openai" in line and "tokens 12 in 7 out" in line and "ms" in line
    assert PROMPT not in sink.text() and MASTER not in sink.text()
