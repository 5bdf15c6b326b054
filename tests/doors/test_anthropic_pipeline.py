"""The Messages door runs the chat pipeline: a virtual key's limits, the cache, auto routing, the
usage records, the response headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from llmproxy.config import CacheSettings
from tests.doors.conftest import CLAUDE, GPT, MASTER


def test_virtual_key_limit_is_a_rate_limit_error(door_gateway: Callable[..., str]) -> None:
    url = door_gateway()
    r = httpx.post(url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}, json={"name": "agent", "rpm": 1})
    assert r.status_code == 201, r.text
    client = anthropic.Anthropic(base_url=url, api_key=r.json()["key"], max_retries=0)
    hello = [{"role": "user", "content": "hi"}]
    first = client.messages.with_raw_response.create(model=GPT, max_tokens=10, messages=hello)
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=GPT, max_tokens=10, messages=hello)
    assert info.value.body["error"]["type"] == "rate_limit_error"


def test_cache_hit_answers_in_anthropic_shape(door_gateway: Callable[..., str], openai_upstream: Any) -> None:
    url = door_gateway(cache=CacheSettings(enabled=True, persist=False))
    client = anthropic.Anthropic(base_url=url, api_key=MASTER, max_retries=0)
    # Anthropic's SDK no longer takes a temperature, so a Messages client asks for caching by header.
    ask = {
        "model": GPT,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "cache me"}],
        "extra_headers": {"x-llmproxy-cache": "on"},
    }
    first = client.messages.with_raw_response.create(**ask)
    second = client.messages.with_raw_response.create(**ask)
    assert (first.headers["x-llmproxy-cache"], second.headers["x-llmproxy-cache"]) == ("miss", "hit")
    assert second.parse().content[0].text == first.parse().content[0].text == "echo: cache me"
    with client.messages.stream(**ask) as stream:  # a streamed hit is replayed as Anthropic events
        assert "".join(stream.text_stream) == "echo: cache me"
    assert len(openai_upstream[1].requests) == 1


def test_auto_routes_and_usage_is_recorded(gateway_url: str) -> None:
    client = anthropic.Anthropic(base_url=gateway_url, api_key=MASTER, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": "hi there"}]
    )
    assert raw.headers["x-llmproxy-complexity"] and raw.headers["x-llmproxy-provider"]
    assert raw.parse().stop_reason == "end_turn"
    with client.messages.stream(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "a b"}]) as s:
        s.get_final_message()
    deadline = time.monotonic() + 5
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = httpx.get(gateway_url + "/admin/usage", headers={"authorization": f"Bearer {MASTER}"})
        rows = r.json().get("data") or r.json().get("rows") or []
        if len(rows) >= 2:
            break
        time.sleep(0.1)
    claude = [row for row in rows if row.get("model") == CLAUDE]
    assert claude and claude[0]["cost_usd"] > 0 and claude[0]["prompt_tokens"] > 0


def test_claude_falls_back_to_another_provider(door_gateway: Callable[..., str], openai_upstream: Any) -> None:
    from llmproxy.config import RouterSettings

    url = door_gateway(router=RouterSettings(fallbacks={"anthropic/overloaded": ("gpt-5-mini",)}))
    client = anthropic.Anthropic(base_url=url, api_key=MASTER, max_retries=0)
    ask = {"model": "anthropic/overloaded", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
    raw = client.messages.with_raw_response.create(**ask)
    assert raw.headers["x-llmproxy-provider"] == "openai" and raw.parse().content[0].text == "echo: hello"
    with client.messages.stream(**ask) as stream:
        assert "".join(stream.text_stream) == "echo: hello"
        assert stream.get_final_message().stop_reason == "end_turn"
    assert openai_upstream[1].requests[-1]["model"] == "gpt-5-mini"


def test_the_edge_refuses_in_anthropic_shape_too(door_gateway: Callable[..., str]) -> None:
    gateway_url = door_gateway(max_body_bytes=1024)
    r = httpx.post(
        gateway_url + "/v1/messages",
        content=b"model=x",
        headers={"x-api-key": MASTER, "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    big = httpx.post(
        gateway_url + "/v1/messages",
        content=b"x" * 2048,
        headers={"x-api-key": MASTER, "content-type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"
