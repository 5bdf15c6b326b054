"""The OpenAI chat completions front door: POST /v1/chat/completions.

Chat is the gateway's internal format, so this door translates nothing: it reads the request's
fields the stages need, answers with the provider's bytes where the adapter relayed them, passes
streams through and replays cache hits as they were stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..cache_replay import replay
from ..context import RequestContext
from ..errors import GatewayError
from ..validation import parse_request


class ChatDoor:
    """OpenAI chat in, OpenAI chat out."""

    name = "chat"
    native = True  # its answer bytes are the internal answer: the cache keeps them as sent

    @staticmethod
    def parse(ctx: RequestContext, raw: bytes) -> None:
        body = ctx.body = parse_request(raw)
        ctx.raw_body = raw
        ctx.requested_model = body["model"]
        ctx.stream = body.get("stream") is True
        options = body.get("stream_options")
        ctx.include_usage = bool(ctx.stream and isinstance(options, dict) and options.get("include_usage"))

    @staticmethod
    def answer(ctx: RequestContext, completion: dict[str, Any]) -> bytes:
        return ctx.response_body if ctx.response_body is not None else orjson.dumps(completion)

    @staticmethod
    def stream(ctx: RequestContext, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return pieces

    @staticmethod
    def cached(ctx: RequestContext, body: bytes) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
        return (None, replay(body, ctx.include_usage)) if ctx.stream else (body, None)

    @staticmethod
    def error(exc: GatewayError) -> tuple[int, bytes]:
        return exc.status, exc.to_json()


DOOR = ChatDoor()
