"""Server-sent events: one incremental framer for upstream streams, the event parser, and the encoder
for ours.

Every upstream stream is cut into events by `SSEFramer`, whether its bytes are relayed as they are
(OpenAI) or parsed and translated (Anthropic, Gemini), so both paths agree on where an event ends.
The SSE format allows LF, CRLF and a lone CR as line ends; a read may end between the CR and the LF
of one CRLF, so a trailing CR is held back until the next byte says which it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import orjson

from ..errors import UpstreamError

DONE = b"data: [DONE]\n\n"
MAX_PENDING_BYTES = 16 * 1024 * 1024  # one unfinished event larger than this is a broken upstream


class SSEEvent(NamedTuple):
    event: str | None  # the `event:` field (Anthropic names its events); None when absent
    data: bytes  # the `data:` lines joined by "\n"


class SSEFramer:
    """Feed it bytes as they arrive; it returns the events complete so far as one bytes object of
    blocks, each ending in a blank line, with every line end made LF (b"" while none is complete)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk if self._buf else chunk
        held = b""
        if buf.find(b"\r") >= 0:  # (not `in`: see validation._written_back_unchanged)
            if buf[-1:] == b"\r":  # maybe the first half of a CRLF: decide with the next byte
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf + held
            if len(self._buf) > MAX_PENDING_BYTES:
                # memory stays bounded whatever the upstream sends
                raise UpstreamError(f"the provider sent over {MAX_PENDING_BYTES} bytes without ending an event")
            return b""
        self._buf = buf[end + 2 :] + held
        return buf[: end + 2]

    def flush(self) -> bytes:
        """What is left when the stream ends without a final blank line, as one block (or b"")."""
        rest, self._buf = self._buf.replace(b"\r", b"\n"), b""
        rest = rest.strip(b"\n")
        return rest + b"\n\n" if rest.strip() else b""


class SSEDecoder:
    """The framer's blocks, parsed into events."""

    __slots__ = ("_framer",)

    def __init__(self) -> None:
        self._framer = SSEFramer()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return parse_blocks(self._framer.feed(chunk))

    def flush(self) -> list[SSEEvent]:
        return parse_blocks(self._framer.flush())


def parse_blocks(ready: bytes) -> list[SSEEvent]:
    if not ready:
        return []
    return [e for block in ready.split(b"\n\n") if (e := parse_block(block)) is not None]


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
