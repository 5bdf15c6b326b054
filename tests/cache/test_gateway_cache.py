"""The cache through a real gateway on loopback, in front of fake upstreams, with the openai SDK as
the client: hits without a provider call, streams stored and replayed, errors and cut streams never
stored, the per-request controls, the usage record of a hit, and the admin endpoints."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from llmproxy.config import CacheSettings, ProviderSettings, Secret
from tests.cache import fake_tools
from tests.conftest import base_settings
from tests.fakes.openai_server import FakeState
from tests.fakes.serve import ServerThread

MESSAGES = [{"role": "user", "content": "what is the capital of France"}]


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


def ask(base: str, **kw: object) -> tuple[httpx.Headers, object]:
    kw.setdefault("temperature", 0)  # a deterministic request: cached by default
    raw = client(base).chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=kw.pop("messages", MESSAGES), **kw
    )
    return raw.headers, raw.parse()


def stream(base: str, **kw: object) -> tuple[httpx.Headers, list]:
    kw.setdefault("temperature", 0)
    raw = client(base).chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=kw.pop("messages", MESSAGES), stream=True, **kw
    )
    return raw.headers, list(raw.parse())


def text_of(chunks: list) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_repeat_is_answered_from_the_cache_at_zero_cost(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    h1, first = ask(gateway, temperature=0)
    h2, second = ask(gateway, temperature=0)
    assert len(openai_upstream[1].requests) == 1
    assert (h1["x-llmproxy-cache"], h2["x-llmproxy-cache"]) == ("miss", "hit")
    assert float(h1["x-llmproxy-cost-usd"]) > 0 and float(h2["x-llmproxy-cost-usd"]) == 0
    assert h2["age"] == "0" and "age" not in h1
    assert h2["x-llmproxy-model"] == "gpt-4o-mini" and h2["x-llmproxy-provider"] == "openai"
    assert h2["x-llmproxy-cache-key"] == h1["x-llmproxy-cache-key"]
    assert second.model_dump() == first.model_dump()
    assert float(h2["x-llmproxy-overhead-ms"]) < 50


def test_a_stream_miss_is_stored_and_replayed_to_the_sdk(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    h1, live = stream(gateway, stream_options={"include_usage": True})
    h2, replayed = stream(gateway, stream_options={"include_usage": True})
    assert len(openai_upstream[1].requests) == 1
    assert (h1["x-llmproxy-cache"], h2["x-llmproxy-cache"]) == ("miss", "hit")
    assert h2["content-type"].startswith("text/event-stream")
    assert text_of(replayed) == text_of(live) == "echo: what is the capital of France"
    assert replayed[0].choices[0].delta.role == "assistant"
    assert len([c for c in replayed if c.choices and c.choices[0].delta.content]) > 1  # sent in pieces
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
    assert replayed[-1].choices == [] and replayed[-1].usage == live[-1].usage
    # the same question without streaming is the same entry; stream options do not change the key
    h3, completion = ask(gateway)
    assert h3["x-llmproxy-cache"] == "hit" and len(openai_upstream[1].requests) == 1
    assert completion.choices[0].message.content == text_of(live)
    assert completion.usage.completion_tokens == live[-1].usage.completion_tokens
    h4, no_usage = stream(gateway)
    assert h4["x-llmproxy-cache"] == "hit" and all(c.usage is None for c in no_usage)


def test_a_stored_completion_is_replayed_as_a_stream(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    _, completion = ask(gateway, user="ann")
    headers, chunks = stream(gateway, user="bob")  # `user` is not part of the key
    assert headers["x-llmproxy-cache"] == "hit" and len(openai_upstream[1].requests) == 1
    assert text_of(chunks) == completion.choices[0].message.content
    assert all(c.usage is None for c in chunks)


@pytest.fixture
def tool_gateway(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> Iterator[tuple[str, fake_tools.ToolState]]:
    state = fake_tools.ToolState()
    with ServerThread(fake_tools.create_app(state)) as upstream:
        settings = base_settings(tmp_path, openai_upstream[0], cache=CacheSettings())
        tools = ProviderSettings(
            name="tools",
            kind="openai-compatible",
            base_url=upstream.url + "/v1",
            api_key=Secret("sk-tools"),
            models=(fake_tools.MODEL,),
        )
        yield gateway_factory(settings=replace(settings, providers=(*settings.providers, tools))), state


TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("get_weather", "get_time")
]


def tool_calls(chunks: list) -> list[tuple[str | None, str | None, str]]:
    calls: dict[int, list] = {}
    for c in chunks:
        for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(call.index, [None, None, ""])
            slot[0] = call.id or slot[0]
            slot[1] = (call.function.name if call.function else None) or slot[1]
            slot[2] += (call.function.arguments if call.function else "") or ""
    return [tuple(v) for _, v in sorted(calls.items())]


def test_tool_call_streams_are_stored_and_replayed(tool_gateway: tuple[str, fake_tools.ToolState]) -> None:
    base, state = tool_gateway
    h1, live = stream(base, model=fake_tools.MODEL, tools=TOOLS)
    h2, replayed = stream(base, model=fake_tools.MODEL, tools=TOOLS, stream_options={"include_usage": True})
    assert (h1["x-llmproxy-cache"], h2["x-llmproxy-cache"]) == ("miss", "hit") and len(state.requests) == 1
    expected = [("call_w1", "get_weather", '{"city": "Paris"}'), ("call_t2", "get_time", '{"tz": "CET"}')]
    assert tool_calls(live) == tool_calls(replayed) == expected
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "tool_calls"
    assert replayed[-1].usage.total_tokens == fake_tools.USAGE["total_tokens"]
    _, completion = ask(base, model=fake_tools.MODEL, tools=TOOLS)
    assert [(t.id, t.function.name, t.function.arguments) for t in completion.choices[0].message.tool_calls] == expected
    assert completion.choices[0].message.content is None and len(state.requests) == 1


@pytest.mark.parametrize("model", ["openai/fail-500", "openai/fail-400", "openai/fail-429"])
def test_errors_are_never_cached(gateway: str, openai_upstream: tuple[str, FakeState], model: str) -> None:
    for _ in range(2):
        r = httpx.post(gateway + "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "temperature": 0})
        assert r.status_code >= 400 and r.headers["x-llmproxy-cache"] == "miss"
    assert len(openai_upstream[1].requests) == 2
    assert httpx.get(gateway + "/admin/cache").json()["stores"] == 0


@pytest.mark.parametrize("model", ["openai/cut-stream", "openai/error-after-text"])
def test_broken_streams_are_never_cached(gateway: str, openai_upstream: tuple[str, FakeState], model: str) -> None:
    for _ in range(2):
        with pytest.raises(openai.APIError):
            stream(gateway, model=model)
    assert len(openai_upstream[1].requests) == 2
    assert httpx.get(gateway + "/admin/cache").json()["stores"] == 0


def test_a_stream_the_client_left_is_not_cached(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    openai_upstream[1].chunk_delay_s = 0.05
    with client(gateway).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as s:
        next(iter(s))  # the role chunk, then hang up
    time.sleep(0.3)
    openai_upstream[1].chunk_delay_s = 0.0
    headers, chunks = stream(gateway)
    assert headers["x-llmproxy-cache"] == "miss" and text_of(chunks).startswith("echo:")
    assert len(openai_upstream[1].requests) == 2


def test_cache_control_and_ttl_headers(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    requests = openai_upstream[1].requests
    h, _ = ask(gateway, extra_headers={"cache-control": "no-store"})
    assert h["x-llmproxy-cache"] == "bypass"
    h, _ = ask(gateway)  # no-store wrote nothing
    assert h["x-llmproxy-cache"] == "miss" and len(requests) == 2
    h, _ = ask(gateway, extra_headers={"cache-control": "no-cache"})
    assert h["x-llmproxy-cache"] == "miss" and len(requests) == 3
    h, _ = ask(gateway)
    assert h["x-llmproxy-cache"] == "hit" and len(requests) == 3
    other = [{"role": "user", "content": "short-lived"}]
    ask(gateway, messages=other, extra_headers={"x-llmproxy-cache-ttl": "0.3"})
    assert ask(gateway, messages=other)[0]["x-llmproxy-cache"] == "hit"
    time.sleep(0.35)
    assert ask(gateway, messages=other)[0]["x-llmproxy-cache"] == "miss"
    with pytest.raises(openai.BadRequestError, match="x-llmproxy-cache-ttl"):
        ask(gateway, extra_headers={"x-llmproxy-cache-ttl": "forever"})


def test_cache_can_be_switched_off(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    settings = base_settings(tmp_path, openai_upstream[0])
    base = gateway_factory(settings=replace(settings, cache=CacheSettings(enabled=False)))
    assert [ask(base)[0]["x-llmproxy-cache"] for _ in range(2)] == ["bypass", "bypass"]
    assert len(openai_upstream[1].requests) == 2


def test_a_hit_is_recorded_with_cost_zero(gateway: str, tmp_path: Path) -> None:
    first, _ = ask(gateway)
    hit, _ = ask(gateway)
    time.sleep(0.3)  # the usage writer flushes every 50 ms in tests
    with sqlite3.connect(tmp_path / "data" / "llmproxy.db") as db:
        rows = dict(db.execute("SELECT request_id, cost_usd FROM usage WHERE cache = 'hit'").fetchall())
        misses = dict(db.execute("SELECT request_id, cost_usd FROM usage WHERE cache = 'miss'").fetchall())
    assert rows == {hit["x-request-id"]: 0.0}
    assert misses[first["x-request-id"]] > 0
    stats = httpx.get(gateway + "/admin/cache").json()
    assert stats["saved_usd"] == pytest.approx(misses[first["x-request-id"]])


def test_admin_stats_and_purge(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    h, _ = ask(gateway)
    ask(gateway)
    ask(gateway, model="gpt-4o")
    stats = httpx.get(gateway + "/admin/cache").json()
    # with a disk tier, memory keeps what was asked for again: the first answer, not the gpt-4o one
    assert (stats["hits"], stats["misses"], stats["memory"]["entries"]) == (1, 2, 1)
    assert stats["memory"]["bytes"] > 0 and stats["saved_usd"] > 0
    deadline = time.monotonic() + 5  # the write queue reaches the disk (every 0.5 s)
    while httpx.get(gateway + "/admin/cache").json()["disk"]["entries"] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(gateway + "/admin/cache").json()["disk"]["entries"] == 2
    purge = gateway + "/admin/cache/purge"
    assert httpx.post(purge, json={}).status_code == 400
    assert httpx.post(purge, json={"all": True, "model": "x"}).status_code == 400
    assert httpx.post(purge, json={"modle": "x"}).json()["error"]["param"] == "modle"
    assert httpx.post(purge, json={"model": "gpt-4o"}).json() == {"purged": 1}
    assert ask(gateway, model="gpt-4o")[0]["x-llmproxy-cache"] == "miss"
    assert httpx.post(purge, json={"cache_key": h["x-llmproxy-cache-key"]}).json() == {"purged": 1}
    assert ask(gateway)[0]["x-llmproxy-cache"] == "miss"
    assert httpx.post(purge, json={"all": True}).json()["purged"] == 2
    assert httpx.get(gateway + "/admin/cache").json()["memory"]["entries"] == 0


def test_admin_cache_needs_an_admin(gateway_factory: Callable[..., str]) -> None:
    base = gateway_factory(master_key=Secret("sk-master-0123456789"), cache=CacheSettings())
    assert httpx.get(base + "/admin/cache").status_code == 401
    assert httpx.post(base + "/admin/cache/purge", json={"all": True}).status_code == 401
    ok = httpx.get(base + "/admin/cache", headers={"authorization": "Bearer sk-master-0123456789"})
    assert ok.status_code == 200 and ok.json()["enabled"] is True


def test_auto_requests_hit_before_routing(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    h1, first = ask(gateway, model="auto")
    h2, second = ask(gateway, model="auto")
    assert (h1["x-llmproxy-cache"], h2["x-llmproxy-cache"]) == ("miss", "hit")
    assert len(openai_upstream[1].requests) == 1
    assert h2["x-llmproxy-model"] == h1["x-llmproxy-model"]  # the model "auto" had picked
    assert second.choices[0].message.content == first.choices[0].message.content


def test_sampled_requests_are_never_answered_from_the_cache(
    gateway: str, openai_upstream: tuple[str, FakeState]
) -> None:
    """Apps that sample several answers at temperature > 0 must get an answer of their own each time."""
    state = openai_upstream[1]
    for temperature in (0.8, 0.8, 1.3, openai.NOT_GIVEN, openai.NOT_GIVEN):  # absent: the provider's 1
        headers, completion = ask(gateway, temperature=temperature)
        assert headers["x-llmproxy-cache"] == "bypass" and "x-llmproxy-cache-key" not in headers
        assert completion.choices[0].message.content == "echo: what is the capital of France"
    headers, _ = stream(gateway, temperature=0.8)
    assert headers["x-llmproxy-cache"] == "bypass"
    assert len(state.requests) == 6
    stats = httpx.get(gateway + "/admin/cache").json()
    assert (stats["hits"], stats["stores"], stats["bypasses"]) == (0, 0, 6)


def test_a_caller_asks_for_a_sampled_answer_to_be_cached(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    for ask_for_it in ({"x-llmproxy-cache": "on"}, {"cache-control": "max-age=600"}):
        messages = [{"role": "user", "content": f"a poem, {ask_for_it}"}]
        h1, first = ask(gateway, temperature=0.9, messages=messages, extra_headers=ask_for_it)
        h2, second = ask(gateway, temperature=0.9, messages=messages, extra_headers=ask_for_it)
        h3, _ = ask(gateway, temperature=0.9, messages=messages)  # without asking: a new sample
        assert (h1["x-llmproxy-cache"], h2["x-llmproxy-cache"], h3["x-llmproxy-cache"]) == ("miss", "hit", "bypass")
        assert second.model_dump() == first.model_dump()
    assert len(openai_upstream[1].requests) == 4
