"""Anthropic Messages in, Anthropic Messages out: a Claude model behind the Messages front door.

The client's bytes go upstream unchanged when the model name stays (else only `model` is
rewritten), with its anthropic-version and anthropic-beta headers; the answer and the stream come
back as Anthropic sent them. On the way the relay reads only the events that carry usage and the
stop reason (message_start, message_delta, message_stop, error), so the gateway can record and
charge, and an upstream cut short ends with an error event. One instance per request: it holds
that request's body and headers (the adapter interface has no other place for them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest
from ..errors import GatewayError, UpstreamError
from ..registry import ModelEntry
from . import anthropic
from .base import StreamState, UpstreamRequest
from .sse import SSEFramer, encode

RELAYS_ANSWER = True


class Passthrough:
    """The adapter a Messages request uses for providers of kind "anthropic"."""

    __slots__ = ("body", "version", "beta")
    RELAYS_ANSWER = RELAYS_ANSWER

    def __init__(self, body: dict[str, Any], version: str | None, beta: str | None) -> None:
        self.body, self.version, self.beta = body, version, beta

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        if raw is None or self.body.get("model") != model.provider_model:
            raw = orjson.dumps({**self.body, "model": model.provider_model})
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": self.version or anthropic.API_VERSION,
        }
        if self.beta:
            headers["anthropic-beta"] = self.beta
        if creds.api_key is not None:
            headers["x-api-key"] = creds.api_key.value
        if creds.headers:
            headers.update(creds.headers)
        return UpstreamRequest(creds.base_url + "/v1/messages", headers, raw)

    @staticmethod
    def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
        """The internal completion (for usage, cost and the cache); the client gets `body` itself."""
        return anthropic.parse_response(body, model)

    @staticmethod
    def map_error(
        status: int, body: bytes, headers: Mapping[str, str], *, provider: str = anthropic.NAME
    ) -> GatewayError:
        return anthropic.map_error(status, body, headers, provider=provider)

    @staticmethod
    def relay_stream(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        return relay(chunks, model, state)


async def relay(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
    """Complete events out as they come; usage, stop reason and the end learnt on the way."""
    framer = SSEFramer()
    seen: dict[str, Any] = {}
    async for chunk in chunks:
        ready = framer.feed(chunk)
        if ready:
            if ready.find(b"event: message_") >= 0 or ready.find(b"event: error") >= 0:
                _learn(ready, state, seen)
            yield ready
    rest = framer.flush()
    if rest:
        _learn(rest, state, seen)
        yield rest
    if not state.completed and not state.errored:
        yield encode(UpstreamError(f"{model.provider} stream ended before it was complete").to_dict())


def _learn(ready: bytes, state: StreamState, seen: dict[str, Any]) -> None:
    # Only the event line is looked at: text inside a data line never starts a block.
    for block in ready.split(b"\n\n"):
        if block.startswith(b"event: message_start") or block.startswith(b"event: message_delta"):
            data = _data(block)
            if block.startswith(b"event: message_start"):
                usage = (data.get("message") or {}).get("usage") or {}
            else:
                usage = data.get("usage") or {}
                seen["stop_reason"] = (data.get("delta") or {}).get("stop_reason") or seen.get("stop_reason")
            seen.setdefault("usage", {}).update({k: v for k, v in usage.items() if v is not None})
        elif block.startswith(b"event: message_stop"):
            state.completed = True
            state.usage = anthropic.usage(seen.get("usage") or {})
            state.finish_reason = anthropic.finish_reason(seen.get("stop_reason")) or "stop"
        elif block.startswith(b"event: error"):
            state.errored = True


def _data(block: bytes) -> dict[str, Any]:
    start = block.find(b"\ndata:")
    if start < 0:
        return {}
    try:
        value = orjson.loads(block[start + 6 :])
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
