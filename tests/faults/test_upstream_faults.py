"""Upstream faults: a provider that refuses, resets, falls silent, drips, never ends, answers garbage
or a 10 MB error page, or redirects. Each request ends in the right gateway error (or falls back to
the next candidate) within its timeout, without holding what the provider sends, and leaves its
usage row."""

from __future__ import annotations

import time
import tracemalloc
import uuid
from collections.abc import Callable

import orjson
import pytest

from llmproxy.config import RouterSettings
from llmproxy.providers import base
from tests.faults.conftest import TIMEOUTS, FaultGateway
from tests.fakes.faulty_server import BIG_ERROR, FaultyServer
from tests.fakes.serve import free_port

MARGIN_S = 1.5  # scheduling slack on two shared cores


def rid() -> str:
    return "fault-" + uuid.uuid4().hex[:12]


def last_event(body: bytes) -> dict:
    blocks = [b for b in body.split(b"\n\n") if b.startswith(b"data: ")]
    return orjson.loads(blocks[-1][6:])


def content_of(body: bytes) -> str:
    text = ""
    for block in body.split(b"\n\n"):
        if block.startswith(b"data: {"):
            for choice in orjson.loads(block[6:]).get("choices") or ():
                text += choice["delta"].get("content") or ""
    return text


def expect_error(
    gw: FaultGateway, model: str, status: int, code: str, *, stream: bool = False, within_s: float
) -> dict:
    """An OpenAI-shaped error with that status and code, in time, and its usage row."""
    request_id = rid()
    started = time.monotonic()
    r = gw.post(model, stream=stream, request_id=request_id)
    elapsed = time.monotonic() - started
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code, err
    assert elapsed < within_s + MARGIN_S, f"{model} took {elapsed:.1f}s"
    row = gw.row(request_id)
    assert row["status"] == status and row["error_type"] == code
    return row


def expect_fallback(gw: FaultGateway, fault: str, *, stream: bool = False, within_s: float) -> dict:
    request_id = rid()
    started = time.monotonic()
    r = gw.post(f"shaky/{fault}", stream=stream, request_id=request_id)
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    if not stream:  # a stream's headers went out with the first candidate's opening
        assert r.headers["x-llmproxy-provider"] == "ollama"
    text = content_of(r.content) if stream else r.json()["choices"][0]["message"]["content"]
    assert text == "echo: hello"
    assert elapsed < within_s + MARGIN_S, f"{fault} took {elapsed:.1f}s"
    row = gw.row(request_id)
    assert row["status"] == 200 and row["provider"] == "ollama" and row["attempts"] == 2
    return row


def test_connection_refused_is_502_or_falls_back(fault_gateway: Callable[..., FaultGateway]) -> None:
    gw = fault_gateway(faulty_url=f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    expect_error(gw, "faulty/anything", 502, "upstream_connection_error", within_s=TIMEOUTS["connect_timeout_s"])
    expect_fallback(gw, "silent", within_s=TIMEOUTS["connect_timeout_s"])


def test_reset_mid_body_is_502_or_falls_back(fault_gateway: Callable[..., FaultGateway]) -> None:
    gw = fault_gateway()
    expect_error(gw, "faulty/reset-body", 502, "upstream_connection_error", within_s=1.0)
    expect_fallback(gw, "reset-body", within_s=1.0)


def test_reset_after_the_role_chunk_falls_back_or_ends_with_an_error_event(
    fault_gateway: Callable[..., FaultGateway],
) -> None:
    gw = fault_gateway()
    request_id = rid()
    r = gw.post("faulty/reset-opening", stream=True, request_id=request_id)
    assert r.status_code == 200  # the role chunk went to the client at once
    assert last_event(r.content)["error"]["code"] == "upstream_connection_error"
    row = gw.row(request_id)
    assert row["status"] == 502 and row["prompt_tokens"] > 0
    expect_fallback(gw, "reset-opening", stream=True, within_s=1.0)


def test_reset_mid_stream_ends_with_an_error_event(fault_gateway: Callable[..., FaultGateway]) -> None:
    gw = fault_gateway()
    for model in ("faulty/reset-stream", "shaky/reset-stream"):  # content sent: never a silent retry
        request_id = rid()
        r = gw.post(model, stream=True, request_id=request_id)
        assert r.status_code == 200
        assert content_of(r.content) == "word0 word1 "
        assert last_event(r.content)["error"]["code"] == "upstream_connection_error"
        row = gw.row(request_id)
        assert row["status"] == 502 and row["error_type"] == "upstream_stream_error"
        assert row["prompt_tokens"] > 0  # the provider bills the prompt: charged at its estimate


def test_headers_then_silence_ends_at_each_timeout(fault_gateway: Callable[..., FaultGateway]) -> None:
    gw = fault_gateway()
    # not streamed: the whole request's timeout
    expect_error(gw, "faulty/silent", 504, "upstream_timeout", within_s=TIMEOUTS["timeout_s"])
    # streamed, nothing yet: the first-byte timeout, and the next candidate may still answer
    row = expect_error(
        gw, "faulty/silent", 504, "upstream_timeout", stream=True, within_s=TIMEOUTS["first_byte_timeout_s"]
    )
    assert row["latency_ms"] < TIMEOUTS["timeout_s"] * 1000
    expect_fallback(gw, "silent", stream=True, within_s=TIMEOUTS["first_byte_timeout_s"])


def test_stream_that_falls_silent_ends_at_the_idle_timeout(
    fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer
) -> None:
    gw = fault_gateway()
    request_id = rid()
    started = time.monotonic()
    r = gw.post("faulty/silent-stream", stream=True, request_id=request_id)
    elapsed = time.monotonic() - started
    assert content_of(r.content) == "word0 word1 "
    assert last_event(r.content)["error"]["code"] == "upstream_timeout"
    assert elapsed < TIMEOUTS["stream_idle_timeout_s"] + MARGIN_S
    assert gw.row(request_id)["status"] == 502
    deadline = time.monotonic() + 3
    while faulty.state.client_closed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert faulty.state.client_closed == 1  # the gateway hung up on the silent provider


def test_invalid_json_is_502_or_falls_back(fault_gateway: Callable[..., FaultGateway]) -> None:
    gw = fault_gateway()
    expect_error(gw, "faulty/bad-json", 502, "upstream_error", within_s=1.0)
    expect_fallback(gw, "bad-json", within_s=1.0)


@pytest.mark.parametrize("stream", [False, True])
def test_a_10mb_error_page_is_not_read_whole(
    fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer, stream: bool
) -> None:
    gw = fault_gateway()
    row = expect_error(gw, "faulty/big-error", 503, "upstream_unavailable", stream=stream, within_s=1.0)
    assert row["prompt_tokens"] is None  # refused up front: nothing billed, nothing charged
    deadline = time.monotonic() + 3
    while faulty.state.client_closed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    # the gateway read the start of the page and hung up; kernel buffers hold a few MB at most
    assert faulty.state.client_closed == 1 and faulty.state.big_error_sent < len(BIG_ERROR) // 2
    expect_fallback(gw, "big-error", stream=stream, within_s=1.0)


def test_an_answer_over_the_size_limit_is_an_upstream_error(
    fault_gateway: Callable[..., FaultGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "MAX_ANSWER_BYTES", 1024 * 1024)  # the gateway runs in this process
    gw = fault_gateway()
    expect_error(gw, "faulty/huge-answer", 502, "upstream_error", within_s=1.0)
    expect_fallback(gw, "huge-answer", within_s=1.0)


def test_endless_stream_ends_at_the_stream_timeout(
    fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer
) -> None:
    gw = fault_gateway()
    request_id = rid()
    started = time.monotonic()
    r = gw.post("faulty/endless", stream=True, request_id=request_id)
    elapsed = time.monotonic() - started
    assert content_of(r.content).startswith("more more ")
    assert last_event(r.content)["error"]["code"] == "upstream_timeout"
    assert TIMEOUTS["stream_timeout_s"] - 0.2 < elapsed < TIMEOUTS["stream_timeout_s"] + MARGIN_S
    row = gw.row(request_id)
    assert row["status"] == 502 and row["completion_tokens"] > 10  # charged about a token per event
    deadline = time.monotonic() + 3
    while faulty.state.client_closed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert faulty.state.client_closed == 1


def test_stream_without_done_ends_with_an_error_event(fault_gateway: Callable[..., FaultGateway]) -> None:
    gw = fault_gateway()
    request_id = rid()
    r = gw.post("faulty/no-done", stream=True, request_id=request_id)
    assert content_of(r.content) == "word0 word1 word2 "
    assert "error" in last_event(r.content)
    row = gw.row(request_id)
    # the provider's own usage came before the cut, so that is what is charged
    assert row["status"] == 502 and (row["prompt_tokens"], row["completion_tokens"]) == (9, 3)


@pytest.mark.parametrize("stream", [False, True])
def test_slow_drip_ends_in_time(fault_gateway: Callable[..., FaultGateway], stream: bool) -> None:
    gw = fault_gateway()
    limit = TIMEOUTS["first_byte_timeout_s"] if stream else TIMEOUTS["timeout_s"]
    expect_error(gw, "faulty/drip", 504, "upstream_timeout", stream=stream, within_s=limit)
    expect_fallback(gw, "drip", stream=stream, within_s=limit)


def test_redirect_is_not_followed(fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer) -> None:
    gw = fault_gateway()
    expect_error(gw, "faulty/redirect", 502, "upstream_error", within_s=1.0)
    expect_fallback(gw, "redirect", within_s=1.0)
    assert faulty.state.redirected == 0  # the provider key never went where the redirect pointed


def test_every_fault_in_one_route_still_answers(fault_gateway: Callable[..., FaultGateway]) -> None:
    """A chain of failing candidates ends in the good one: fallback is not limited to one step."""
    gw = fault_gateway(
        router=RouterSettings(
            max_attempts=4, fallbacks={"faulty/reset-body": ("shaky/bad-json", "shaky/redirect", "ollama/llama3.3")}
        )
    )
    request_id = rid()
    r = gw.post("faulty/reset-body", request_id=request_id)
    assert r.status_code == 200 and r.headers["x-llmproxy-provider"] == "ollama"
    assert gw.row(request_id)["attempts"] == 4


def test_memory_stays_bounded_whatever_the_provider_sends(fault_gateway: Callable[..., FaultGateway]) -> None:
    """Traced in this process (gateway and fake alike): a 10 MB error page, streamed or not, and an
    endless stream never add up to more than a few hundred KB held at once."""
    gw = fault_gateway()
    gw.post("faulty/anything", request_id=rid())  # warm up: pools, imports, first-request caches
    tracemalloc.start()
    try:
        for stream in (False, True):
            assert gw.post("faulty/big-error", stream=stream, request_id=rid()).status_code == 503
        assert b"more" in gw.post("faulty/endless", stream=True, request_id=rid()).content
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
