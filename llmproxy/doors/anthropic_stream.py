"""The internal chunk stream -> Anthropic's Messages event stream: one state machine.

Anthropic streams a message as numbered content blocks, one open at a time: content_block_start,
its deltas, content_block_stop, then the next. Chat chunks interleave nothing of the kind: text,
reasoning and tool calls (by their own index) arrive as deltas. `MessageStream` keeps the one open
block and switches blocks only by closing the open one first, so by construction:
- every tool call gets its own tool_use block, opened with its id and name, in the order the calls start;
- its arguments go out as input_json_delta pieces on that block, in the order they came, none lost
  (pieces that come before the call's name wait for it; a provider that sends more arguments for a
  call after the next one began ends the stream with an error event instead of a wrong call);
- a message with tool calls stops with stop_reason "tool_use".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..context import ChatChunk, Usage
from . import anthropic_response as response
from .anthropic_response import event

PING = event("ping", {"type": "ping"})


class StreamBroken(Exception):
    """The chunk stream cannot be expressed as Anthropic events without losing something."""


class _Tool:
    __slots__ = ("id", "name", "block", "pending", "closed")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.block: int | None = None  # its content block index once opened
        self.pending: list[str] = []  # argument pieces that came before its id and name
        self.closed = False


class MessageStream:
    """Feed it internal chunks; it returns the Anthropic events they make, as SSE bytes."""

    def __init__(self, requested_model: str) -> None:
        self.model = requested_model
        self.started = False
        self.finished = False
        self.blocks = 0  # content blocks opened so far
        self.open: str | None = None  # kind of the open block: "text", "thinking", "tool"
        self.open_tool: _Tool | None = None
        self.tools: dict[int, _Tool] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: ChatChunk) -> list[bytes]:
        out: list[bytes] = []
        if not self.started:
            self._start(chunk, out)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # one message: the first choice (the door never asks for more)
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                self._switch("thinking", out)
                out.append(self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]}))
            if delta.get("content"):
                self._switch("text", out)
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or ():
                self._tool_delta(call, out)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def end(self) -> list[bytes]:
        """The events that end the message: the open block closed, message_delta, message_stop."""
        out: list[bytes] = []
        if not self.started:
            self._start({}, out)
        waiting = [t for t in self.tools.values() if t.block is None]
        if waiting:
            raise StreamBroken("the provider sent tool call arguments without the call's name")
        self._close(out)
        usage = response.usage(self.usage)
        out.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": response.stop_reason(self.finish, bool(self.tools)),
                        "stop_sequence": None,
                    },
                    "usage": usage,
                },
            )
        )
        out.append(event("message_stop", {"type": "message_stop"}))
        self.finished = True
        return out

    def _start(self, chunk: ChatChunk, out: list[bytes]) -> None:
        self.started = True
        message: dict[str, Any] = {
            "id": response.message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        out.append(event("message_start", {"type": "message_start", "message": message}))
        out.append(PING)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"type": "content_block_delta", "index": self.blocks - 1, "delta": delta})

    def _close(self, out: list[bytes]) -> None:
        if self.open is None:
            return
        if self.open == "thinking":
            # a model that is not Claude signs nothing; the empty signature says so
            out.append(self._delta({"type": "signature_delta", "signature": ""}))
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": self.blocks - 1}))
        if self.open_tool is not None:
            self.open_tool.closed = True
            self.open_tool = None
        self.open = None

    def _switch(self, kind: str, out: list[bytes]) -> None:
        """Make a text or thinking block the open one."""
        if self.open == kind:
            return
        self._close(out)
        block = (
            {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": "", "signature": ""}
        )
        out.append(
            event("content_block_start", {"type": "content_block_start", "index": self.blocks, "content_block": block})
        )
        self.blocks += 1
        self.open = kind

    def _tool_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        index = call.get("index", 0)
        tool = self.tools.get(index)
        if tool is None:
            tool = self.tools[index] = _Tool()
        fn = call.get("function") or {}
        if call.get("id") and tool.id is None:
            tool.id = call["id"]
        if fn.get("name") and tool.name is None:
            tool.name = fn["name"]
        arguments = fn.get("arguments") or ""
        if tool.block is None and tool.name is not None:
            self._open_tool(tool, index, out)
        if not arguments:
            return
        if tool is self.open_tool:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        elif tool.closed:
            raise StreamBroken(
                f"the provider sent more arguments for tool call {index} after the next "
                "call had begun; the call cannot be passed on whole"
            )
        else:
            tool.pending.append(arguments)

    def _open_tool(self, tool: _Tool, index: int, out: list[bytes]) -> None:
        self._close(out)
        tool.id = tool.id or f"toolu_llmproxy_{index}"
        tool.block = self.blocks
        out.append(
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": self.blocks,
                    "content_block": {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}},
                },
            )
        )
        self.blocks += 1
        self.open, self.open_tool = "tool", tool
        for piece in tool.pending:
            out.append(self._delta({"type": "input_json_delta", "partial_json": piece}))
        tool.pending = []


async def relay(pieces: AsyncIterator[bytes], requested_model: str) -> AsyncIterator[bytes]:
    """The relayed stream as Anthropic events. A Claude model's own events (blocks that start with
    `event:`) pass as they are; internal chunks (`data:` blocks) go through the MessageStream; the
    gateway's error events become Anthropic `error` events. When a stream that failed before its
    first content hands over to the next candidate, the client still sees one message_start. The
    inner stream is closed here, whatever happens, so its clean-up (usage row, limits, upstream
    connection) runs at once."""
    machine = MessageStream(requested_model)
    native = False
    try:
        async for piece in pieces:
            if piece.startswith(b"event:"):
                if machine.started:
                    piece = _without_opening(piece)  # the next candidate's opening, after a hand-over
                machine.started = native = True
                if piece:
                    yield piece
                continue
            out: list[bytes] = []
            for block in piece.split(b"\n\n"):
                if not block.startswith(b"data:"):
                    continue
                data = block[5:].strip()
                if data == b"[DONE]":
                    out += machine.end()
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    out.append(response.error_event_from_internal(chunk))
                    yield b"".join(out)
                    return
                out += machine.feed(chunk)
            if out:
                yield b"".join(out)
        if not machine.finished and not native:
            yield event("error", response.error_payload(502, "the provider's stream ended before it was complete"))
    except StreamBroken as exc:
        yield event("error", response.error_payload(502, str(exc)))
    finally:
        close = getattr(pieces, "aclose", None)
        if close is not None:
            await close()


def _without_opening(piece: bytes) -> bytes:
    kept = [b for b in piece.split(b"\n\n") if b and not b.startswith((b"event: message_start", b"event: ping"))]
    return b"\n\n".join(kept) + b"\n\n" if kept else b""


def message_events(message: dict[str, Any]) -> list[bytes]:
    """A whole Message as the event stream Anthropic would have sent (a cache hit, replayed)."""
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**message["usage"], "output_tokens": 0},
    }
    out = [event("message_start", {"type": "message_start", "message": start}), PING]
    for i, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[dict[str, str]]
        opening: dict[str, Any]
        if kind == "text":
            deltas = [{"type": "text_delta", "text": block["text"]}]
            opening = {"type": "text", "text": ""}
        elif kind == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block.get("signature", "")},
            ]
            opening = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "tool_use":
            deltas = [{"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}]
            opening = {**block, "input": {}}
        else:
            deltas, opening = [], block
        out.append(event("content_block_start", {"type": "content_block_start", "index": i, "content_block": opening}))
        out += [event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}) for d in deltas]
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message.get("stop_sequence")},
                "usage": message["usage"],
            },
        )
    )
    out.append(event("message_stop", {"type": "message_stop"}))
    return out
