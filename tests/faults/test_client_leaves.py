"""A client that leaves once its request has gone upstream: the provider's call is cut at once, and
the request is charged at least its prompt (usage row, cost, budget, tokens per minute), since the
provider bills the prompt whatever the client does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from llmproxy.config import Secret
from tests.faults.conftest import FaultGateway
from tests.fakes.faulty_server import FaultyServer

MASTER = "sk-master-fault-tests-0123456789abcdef"
PROMPT = "fault: {fault} " + "lorem ipsum dolor " * 220  # ~4 KB: an estimate of ~1,000 prompt tokens


def make_key(gw: FaultGateway, **fields: object) -> str:
    r = httpx.post(
        gw.url + "/admin/keys",
        json={"name": "leaver", **fields},
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return r.json()["key"]


def body(fault: str, stream: bool) -> dict:
    return {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": PROMPT.format(fault=fault)}],
    }


def wait_for(check: Callable[[], bool], within_s: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within_s:
            raise AssertionError(f"not within {within_s}s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_stream_cut_after_the_role_chunk_charges_the_prompt(
    fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer
) -> None:
    # fails on the pipeline that charged nothing and gave the tokens back when no content had come
    gw = fault_gateway(openai_on_faulty=True, master_key=Secret(MASTER), timeouts={"stream_idle_timeout_s": 10.0})
    key = make_key(gw, tpm=10_000, budget_usd=0.0001)
    headers = {"authorization": f"Bearer {key}", "x-request-id": (request_id := uuid.uuid4().hex)}
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json=body("thinking", True), headers=headers, timeout=10
    ) as r:
        first = next(r.iter_raw())
        assert b'"role": "assistant"' in first  # the role chunk, then the provider thinks
    wait_for(lambda: faulty.state.client_closed == 1, 5.0)  # and the gateway hangs up on it
    row = gw.row(request_id)
    assert row["status"] == 499 and row["error_type"] == "client_disconnected"
    assert row["prompt_tokens"] >= 900 and row["cost_usd"] > 0
    # the key's tokens per minute keep the prompt: the next small request sees them spent
    nxt = httpx.post(
        gw.url + "/v1/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fault: normal"}]},
    )
    # and its budget too ($0.15 per million: ~1,000 tokens is over $0.0001)
    assert nxt.status_code == 429 and nxt.json()["error"]["code"] == "insufficient_quota", nxt.text


def test_stream_cut_charges_tokens_per_minute(fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer) -> None:
    gw = fault_gateway(openai_on_faulty=True, master_key=Secret(MASTER), timeouts={"stream_idle_timeout_s": 10.0})
    key = make_key(gw, tpm=10_000)
    auth = {"authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json=body("thinking", True), headers=auth, timeout=10
    ) as r:
        next(r.iter_raw())
    wait_for(lambda: faulty.state.client_closed == 1, 5.0)
    time.sleep(0.2)  # the relay's clean-up (record, settle) runs as the disconnect is noticed
    nxt = httpx.post(
        gw.url + "/v1/chat/completions",
        timeout=10,
        headers=auth,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fault: normal"}]},
    )
    assert nxt.status_code == 200
    # 10,000 less the cut request's ~1,000 estimated prompt tokens, less this one's own estimate
    assert int(nxt.headers["x-ratelimit-remaining-tokens"]) < 9_100


@pytest.mark.parametrize("stream", [False, True])
def test_client_leaving_while_the_provider_works_cancels_it(
    fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer, stream: bool
) -> None:
    # fails on the endpoint that kept awaiting the provider after the client had gone (to timeout_s)
    gw = fault_gateway(openai_on_faulty=True, timeouts={"timeout_s": 30.0, "first_byte_timeout_s": 30.0})
    request_id = uuid.uuid4().hex
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.url + "/v1/chat/completions",
            json=body("silent", stream),
            timeout=0.6,
            headers={"x-request-id": request_id},
        )
    left = time.monotonic()
    waited = wait_for(lambda: faulty.state.client_closed == 1, 5.0)
    assert waited < 3.0, f"the upstream call ran on {waited:.1f}s after the client left"
    row = gw.row(request_id)
    assert row["status"] == 499 and row["error_type"] == "client_disconnected"
    assert row["prompt_tokens"] >= 900 and row["cost_usd"] > 0
    assert row["latency_ms"] < (time.monotonic() - left + 0.6) * 1000 + 500


def test_client_leaving_before_anything_went_upstream_is_not_charged(
    fault_gateway: Callable[..., FaultGateway], faulty: FaultyServer
) -> None:
    """A body still being uploaded when the client leaves: nothing reached a provider."""
    gw = fault_gateway(openai_on_faulty=True)

    def slow_body() -> Iterator[bytes]:
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        time.sleep(1.0)
        raise RuntimeError("the client gives up")

    with pytest.raises(RuntimeError, match="the client gives up"):
        httpx.post(
            gw.url + "/v1/chat/completions",
            content=slow_body(),
            timeout=5,
            headers={"content-type": "application/json", "x-request-id": "never-sent-upstream"},
        )
    time.sleep(0.5)
    assert faulty.state.models == []
