"""The upstream-fault suite's fixtures: a misbehaving server on loopback, and gateways in front of it
with short timeouts, so that every fault ends in seconds."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmproxy.config import ProviderSettings, RouterSettings, Secret, Settings
from tests.conftest import base_settings
from tests.fakes.faulty_server import FaultyServer
from tests.fakes.openai_server import API_KEY

# Short, and each distinct, so a test can tell which one ended the request.
TIMEOUTS = {
    "timeout_s": 2.0,
    "connect_timeout_s": 1.0,
    "first_byte_timeout_s": 1.0,
    "stream_idle_timeout_s": 0.5,
    "stream_timeout_s": 1.5,
}


@pytest.fixture(scope="session")
def faulty_server() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


@pytest.fixture
def faulty(faulty_server: FaultyServer) -> FaultyServer:
    faulty_server.state.reset()
    return faulty_server


@dataclass
class FaultGateway:
    url: str
    settings: Settings

    def post(
        self, model: str, *, stream: bool = False, content: str = "hello", request_id: str, **kw: Any
    ) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream, **kw}
        return httpx.post(
            self.url + "/v1/chat/completions",
            json=body,
            timeout=30,
            headers={"x-request-id": request_id, "cache-control": "no-store"},
        )

    def row(self, request_id: str, wait_s: float = 5.0) -> dict[str, Any]:
        """The request's usage row, once the batch writer has written it."""
        deadline = time.monotonic() + wait_s
        path = self.settings.data_dir / "llmproxy.db"
        while True:
            if path.exists():
                with sqlite3.connect(path) as db:
                    db.row_factory = sqlite3.Row
                    found = db.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,)).fetchone()
                if found is not None:
                    return dict(found)
            if time.monotonic() > deadline:
                raise AssertionError(f"no usage row for {request_id}")
            time.sleep(0.05)


@pytest.fixture
def fault_gateway(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: Any, faulty: FaultyServer
) -> Callable[..., FaultGateway]:
    """A gateway with two providers on the faulty server: `faulty` alone, and `shaky`, whose every
    model falls back to ollama/llama3.3 on the well-behaved fake; `openai` may point there too."""

    def start(
        *,
        openai_on_faulty: bool = False,
        faulty_url: str | None = None,
        router: RouterSettings | None = None,
        timeouts: dict[str, float] | None = None,
        **changes: Any,
    ) -> FaultGateway:
        settings = base_settings(tmp_path, openai_upstream[0], **changes)
        url = faulty_url or faulty.url + "/v1"
        limits = {**TIMEOUTS, **(timeouts or {})}
        on_faulty = [
            ProviderSettings(name=name, kind="openai-compatible", base_url=url, api_key=Secret(API_KEY), **limits)
            for name in ("faulty", "shaky")
        ]
        providers = [
            replace(p, base_url=url, **limits) if openai_on_faulty and p.name == "openai" else p
            for p in settings.providers
        ]
        fallbacks = {f"shaky/{fault}": ("ollama/llama3.3",) for fault in FAULT_NAMES}
        settings = replace(
            settings, providers=tuple(providers + on_faulty), router=router or RouterSettings(fallbacks=fallbacks)
        )
        return FaultGateway(gateway_factory(settings=settings), settings)

    return start


FAULT_NAMES = (
    "reset-body",
    "reset-opening",
    "reset-stream",
    "silent",
    "silent-stream",
    "thinking",
    "bad-json",
    "big-error",
    "endless",
    "no-done",
    "drip",
    "redirect",
    "huge-answer",
)
