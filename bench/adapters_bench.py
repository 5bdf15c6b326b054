"""Micro-benchmark of the Anthropic and Gemini translations: p50/p99 microseconds of build_request,
parse_response and per-chunk stream translation, on a request with tools and a ~2,000-token history.

    .venv/bin/python bench/adapters_bench.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from llmproxy.config import ProviderSettings, Secret
from llmproxy.providers import anthropic, gemini
from llmproxy.providers.base import StreamState
from llmproxy.providers.sse import SSEDecoder, SSEEvent
from llmproxy.registry import Capabilities, ModelEntry
from tests.fakes import anthropic_server, gemini_server

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Look something up " * 4,
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "limit": {"type": ["integer", "null"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }
    for i in range(6)
]
SENTENCE = "The quick brown fox jumps over the lazy dog while the gateway translates every field. "


def request() -> dict[str, Any]:
    """~2,000 tokens of history (about 8,000 characters), tool calls included."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SENTENCE * 5}]
    for turn in range(10):
        messages.append({"role": "user", "content": SENTENCE * 7})
        call_id = f"call_{turn:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": SENTENCE,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "tool_1", "arguments": '{"query": "fox", "limit": 3}'},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": SENTENCE * 2})
    messages.append({"role": "user", "content": "Summarise all of that."})
    return {"model": "x", "messages": messages, "tools": TOOLS, "temperature": 0.4, "max_tokens": 1024}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[], Any], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


async def _events(items: list[SSEEvent]) -> AsyncIterator[SSEEvent]:
    for item in items:
        yield item


def stream_per_chunk(adapter: Any, events: list[SSEEvent], model: ModelEntry, rounds: int) -> list[float]:
    async def once() -> int:
        n = 0
        async for _ in adapter.translate_stream(_events(events), model, StreamState(include_usage=True)):
            n += 1
        return n

    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        n = asyncio.get_event_loop().run_until_complete(once())
        samples.append((time.perf_counter() - started) * 1e6 / max(n, 1))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    asyncio.set_event_loop(asyncio.new_event_loop())
    req = request()
    print(f"history: {sum(len(str(m.get('content') or '')) for m in req['messages'])} characters, {len(TOOLS)} tools")
    print(f"{'adapter':10} {'operation':22} {'p50 us':>9} {'p99 us':>9}")
    cases = [
        ("anthropic", anthropic, "claude-sonnet-4-5-20250929"),
        ("gemini", gemini, "gemini-3-flash-preview"),
    ]
    for name, adapter, provider_model in cases:
        model = ModelEntry(
            id=provider_model,
            provider=name,
            provider_model=provider_model,
            max_output_tokens=64000,
            capabilities=Capabilities(json_schema=True, reasoning=True),
        )
        creds = ProviderSettings(name=name, kind=name, base_url="https://example.invalid", api_key=Secret("k"))
        body = orjson.loads(adapter.build_request(req, model, creds, stream=False).body)
        if name == "anthropic":
            answer = anthropic_server.answer({**body, "tool_choice": {"type": "auto"}})
            raw = b"".join(
                anthropic_server.events(
                    anthropic_server.answer(
                        {**body, "tools": [], "messages": [{"role": "user", "content": SENTENCE * 3}]}
                    )
                )
            )
        else:
            answer = gemini_server.answer(body, provider_model)
            raw = b"".join(
                gemini_server.stream_chunks(
                    gemini_server.answer(
                        {"contents": [{"role": "user", "parts": [{"text": SENTENCE * 3}]}]}, provider_model
                    )
                )
            )
        events = SSEDecoder().feed(raw)
        answer_bytes = orjson.dumps(answer)
        rows = [
            ("build_request", timed(lambda: adapter.build_request(req, model, creds, stream=False), rounds)),  # noqa: B023 - timed() calls it now
            ("parse_response", timed(lambda: adapter.parse_response(answer_bytes, model), rounds)),  # noqa: B023 - timed() calls it now
            (f"stream/chunk ({len(events)} ev)", stream_per_chunk(adapter, events, model, max(rounds // 10, 50))),
        ]
        for op, samples in rows:
            p50, p99 = percentiles(samples)
            print(f"{name:10} {op:22} {p50:9.1f} {p99:9.1f}")


if __name__ == "__main__":
    main()
