"""Server-sent events: an incremental parser for upstream streams and the encoder for ours."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import orjson

DONE = b"data: [DONE]\n\n"


class SSEEvent(NamedTuple):
    event: str | None   # the `event:` field (Anthropic names its events); None when absent
    data: bytes         # the `data:` lines joined by "\n"


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events that are complete so far."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 2:]
        return [e for block in buf[:end].split(b"\n\n") if (e := parse_block(block)) is not None]

    def flush(self) -> list[SSEEvent]:
        """Whatever is left when the stream ends without a final blank line."""
        rest, self._buf = self._buf, b""
        event = parse_block(rest.strip(b"\n")) if rest.strip() else None
        return [event] if event is not None else []


def parse_block(block: bytes) -> SSEEvent | None:
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if not data and event is None:
        return None
    return SSEEvent(event, b"\n".join(data))


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


def encode(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
