"""Helpers for the adapter tests: model entries, credentials, fixtures, and running a translator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmproxy.config import ProviderSettings, Secret
from llmproxy.providers.base import StreamState
from llmproxy.registry import Capabilities, ModelEntry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers"
CAPS = Capabilities(tools=True, vision=True, json_schema=True, streaming=True, reasoning=True)


def entry(provider: str, provider_model: str, **caps: bool) -> ModelEntry:
    return ModelEntry(
        id=provider_model,
        provider=provider,
        provider_model=provider_model,
        max_output_tokens=64000,
        capabilities=Capabilities(**{**{k: getattr(CAPS, k) for k in CAPS.__slots__}, **caps}),
    )


def creds(provider: str, key: str = "test-key") -> ProviderSettings:
    base = {"anthropic": "https://api.anthropic.com", "gemini": "https://generativelanguage.googleapis.com"}[provider]
    return ProviderSettings(name=provider, kind=provider, base_url=base, api_key=Secret(key))


def fixture(provider: str, name: str) -> Any:
    return orjson.loads((FIXTURES / provider / name).read_bytes())


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def sse(events: list[Any]) -> bytes:
    """SSE bytes from a list of dicts: {"event", "data"} pairs (Anthropic) or bare payloads (Gemini)."""
    out = b""
    for ev in events:
        if isinstance(ev, dict) and set(ev) == {"event", "data"}:
            out += b"event: " + ev["event"].encode() + b"\ndata: " + orjson.dumps(ev["data"]) + b"\n\n"
        else:
            out += b"data: " + orjson.dumps(ev) + b"\r\n\r\n"
    return out


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for k in range(0, len(data), size):
        yield data[k : k + size]


def relay(
    adapter: Any, data: bytes, model: ModelEntry, *, include_usage: bool = True, size: int = 17
) -> tuple[list[Any], StreamState]:
    """Run adapter.relay_stream over `data` cut in `size`-byte pieces; the decoded payloads and state."""
    state = StreamState(include_usage=include_usage)

    async def run() -> list[bytes]:
        return [piece async for piece in adapter.relay_stream(_pieces(data, size), model, state)]

    out = b"".join(asyncio.run(run()))
    payloads: list[Any] = []
    for block in out.split(b"\n\n"):
        if block.startswith(b"data: "):
            raw = block[6:]
            payloads.append("[DONE]" if raw == b"[DONE]" else orjson.loads(raw))
    return payloads, state


def merge_tool_calls(chunks: list[dict[str, Any]], choice: int = 0) -> list[dict[str, Any]]:
    """Accumulate streamed tool-call deltas the way the openai SDK does."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for c in chunk.get("choices") or ():
            if c["index"] != choice:
                continue
            for d in c["delta"].get("tool_calls") or ():
                call = calls.setdefault(d["index"], {"id": None, "name": "", "arguments": ""})
                call["id"] = d.get("id") or call["id"]
                fn = d.get("function") or {}
                call["name"] += fn.get("name") or ""
                call["arguments"] += fn.get("arguments") or ""
    return [calls[k] for k in sorted(calls)]


@pytest.fixture(scope="session")
def anthropic_validator() -> Any:
    from tests.fakes.anthropic_server import Validator

    return Validator()
