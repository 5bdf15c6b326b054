"""The internal chunk stream -> OpenAI Responses' event stream, and the relay that serves it.

`ResponseStream` turns chat chunks into the events an OpenAI model streams: response.created and
response.in_progress first; then per output item its output_item.added, its content (a message's
content_part.added, output_text.delta..., output_text.done, content_part.done; a function call's
function_call_arguments.delta... and .done; a reasoning summary's summary part and text events),
its output_item.done; last response.completed (or response.incomplete) carrying the whole Response
with its usage. Every event has a `sequence_number` one above the last. A failure becomes an
`error` event and response.failed. Function calls stay open to the end, so arguments of several
calls may arrive interleaved (each delta names its item), as OpenAI's own stream allows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from ..context import ChatChunk, Usage
from ..providers.responses_passthrough import Passthrough
from . import responses_response as rr

_LIFECYCLE_END = (b"event: response.completed", b"event: response.incomplete", b"event: response.failed")


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Call:
    __slots__ = ("item", "index", "pending")

    def __init__(self) -> None:
        self.item: dict[str, Any] | None = None  # its function_call item, once it has a name
        self.index = -1  # its output_index
        self.pending: list[str] = []  # argument pieces that came before the name


class ResponseStream:
    """Feed it internal chunks; it returns the Responses events they make, as SSE bytes."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response  # the Response in progress (rr.shell)
        self.seq = 0
        self.started = False
        self.finished = False
        self.output: list[dict[str, Any]] = response["output"]
        self.open: dict[str, Any] | None = None  # the open message or reasoning item
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return event(kind, data)

    def start(self) -> list[bytes]:
        self.started = True
        return [
            self._event("response.created", {"response": self.response}),
            self._event("response.in_progress", {"response": self.response}),
        ]

    def adopt(self, response_id: str, seq: int) -> None:
        """Continue a stream another provider opened (it failed before any content): its id and numbering."""
        self.started = True
        self.response["id"], self.seq = response_id, seq

    def feed(self, chunk: ChatChunk) -> list[bytes]:
        out = [] if self.started else self.start()
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if chunk.get("model") and not self.output:
            self.response["model"] = chunk["model"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                self._reasoning(delta["reasoning_content"], out)
            if delta.get("content"):
                self._text(delta["content"], out)
            for call in delta.get("tool_calls") or ():
                self._call(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def end(self) -> list[bytes]:
        """The events that end the response: open items done, then response.completed / incomplete."""
        out = [] if self.started else self.start()
        self._close(out)
        for call in self.calls.values():
            if call.item is None:  # arguments without a name: a call that cannot be made
                raise ValueError("the provider sent tool call arguments without the call's name")
            item = call.item
            item["status"] = "completed"
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    {
                        "item_id": item["id"],
                        "output_index": call.index,
                        "name": item["name"],
                        "arguments": item["arguments"],
                    },
                )
            )
            out.append(self._event("response.output_item.done", {"output_index": call.index, "item": item}))
        if not any(item["type"] == "message" for item in self.output) and not self.calls:
            self._text("", out)  # an empty answer is still one message, as OpenAI sends it
            self._close(out)
        rr.finish(self.response, self.finish_reason, self.usage)
        self.finished = True
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, {"response": self.response}))
        return out

    def fail(self, message: str, code: str | None) -> list[bytes]:
        """An `error` event, then response.failed with the output so far."""
        out = [] if self.started else self.start()
        self.response["status"] = "failed"
        self.response["error"] = {
            "code": "rate_limit_exceeded" if code == "rate_limit_exceeded" else "server_error",
            "message": message,
        }
        out.append(self._event("error", {"code": code or "server_error", "message": message, "param": None}))
        out.append(self._event("response.failed", {"response": self.response}))
        self.finished = True
        return out

    def _add(self, item: dict[str, Any], out: list[bytes]) -> int:
        index = len(self.output)
        self.output.append(item)
        out.append(self._event("response.output_item.added", {"output_index": index, "item": item}))
        return index

    def _reasoning(self, text: str, out: list[bytes]) -> None:
        item = self.open
        if item is None or item["type"] != "reasoning":
            self._close(out)
            item = self.open = rr.reasoning_item(rr.new_id("rs_"), "")
            index = self._add(item, out)
            item["summary"].append({"type": "summary_text", "text": ""})
            out.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    {
                        "item_id": item["id"],
                        "output_index": index,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""},
                    },
                )
            )
        item["summary"][0]["text"] += text
        out.append(
            self._event(
                "response.reasoning_summary_text.delta",
                {"item_id": item["id"], "output_index": len(self.output) - 1, "summary_index": 0, "delta": text},
            )
        )

    def _text(self, text: str, out: list[bytes]) -> None:
        item = self.open
        if item is None or item["type"] != "message":
            self._close(out)
            item = self.open = rr.message_item(rr.new_id("msg_"), "", "in_progress")
            index = self._add(item, out)
            item["content"].append(rr.output_text(""))
            out.append(
                self._event(
                    "response.content_part.added",
                    {"item_id": item["id"], "output_index": index, "content_index": 0, "part": rr.output_text("")},
                )
            )
        if text:
            item["content"][0]["text"] += text
            out.append(
                self._event(
                    "response.output_text.delta",
                    {
                        "item_id": item["id"],
                        "output_index": len(self.output) - 1,
                        "content_index": 0,
                        "delta": text,
                        "logprobs": [],
                    },
                )
            )

    def _close(self, out: list[bytes]) -> None:
        """Finish the open message or reasoning item (function calls stay open to the end)."""
        item, self.open = self.open, None
        if item is None:
            return
        index = self.output.index(item)
        if item["type"] == "message":
            part = item["content"][0]
            out.append(
                self._event(
                    "response.output_text.done",
                    {
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "text": part["text"],
                        "logprobs": [],
                    },
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    {"item_id": item["id"], "output_index": index, "content_index": 0, "part": part},
                )
            )
            item["status"] = "completed"
        else:
            summary = item["summary"][0]
            out.append(
                self._event(
                    "response.reasoning_summary_text.done",
                    {"item_id": item["id"], "output_index": index, "summary_index": 0, "text": summary["text"]},
                )
            )
            out.append(
                self._event(
                    "response.reasoning_summary_part.done",
                    {"item_id": item["id"], "output_index": index, "summary_index": 0, "part": summary},
                )
            )
        out.append(self._event("response.output_item.done", {"output_index": index, "item": item}))

    def _call(self, delta: dict[str, Any], out: list[bytes]) -> None:
        position = delta.get("index", 0)
        call = self.calls.get(position)
        if call is None:
            call = self.calls[position] = _Call()
        fn = delta.get("function") or {}
        arguments = fn.get("arguments") or ""
        if call.item is None:
            if not fn.get("name"):
                if arguments:
                    call.pending.append(arguments)
                return
            self._close(out)
            call.item = rr.call_item(
                rr.new_id("fc_"), delta.get("id") or rr.new_id("call_"), fn["name"], "", "in_progress"
            )
            call.index = self._add(call.item, out)
            pieces, call.pending = call.pending, []
            for piece in pieces:
                self._arguments(call, piece, out)
        if arguments:
            self._arguments(call, arguments, out)

    def _arguments(self, call: _Call, piece: str, out: list[bytes]) -> None:
        assert call.item is not None
        call.item["arguments"] += piece
        out.append(
            self._event(
                "response.function_call_arguments.delta",
                {"item_id": call.item["id"], "output_index": call.index, "delta": piece},
            )
        )


def replay(response: dict[str, Any]) -> bytes:
    """A whole Response as the event stream that would have made it (a cache hit, streamed)."""
    final = dict(response)
    machine = ResponseStream({**response, "status": "in_progress", "output": [], "usage": None})
    out = machine.start()
    for item in response["output"]:
        out.append(machine._event("response.output_item.added", {"output_index": len(machine.output), "item": item}))
        out.append(machine._event("response.output_item.done", {"output_index": len(machine.output), "item": item}))
        machine.output.append(item)
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    out.append(machine._event(kind, {"response": final}))
    return b"".join(out)


async def relay(
    pieces: AsyncIterator[bytes],
    machine: ResponseStream,
    native: Passthrough | None,
    done: Callable[[dict[str, Any]], None],
) -> AsyncIterator[bytes]:
    """The relayed stream as Responses events. OpenAI's own events (blocks that start with `event:`)
    pass as they are; internal chunks (`data:` blocks) go through the ResponseStream; the gateway's
    error events become `error` and response.failed. `done` gets the final Response before the
    event that ends the stream goes out, so a follow-up request that names it finds it stored. A
    stream that hands over between OpenAI and another provider keeps one response id and one
    numbering. The inner stream is closed here, whatever happens."""
    seen_native = 0  # OpenAI events passed on (OpenAI numbers them from 0)
    native_id: str | None = None
    try:
        async for piece in pieces:
            if piece.startswith(b"event:"):
                if machine.started:
                    piece = _renamed(piece, machine.response["id"], native)
                elif native_id is None and piece.startswith(b"event: response.created"):
                    native_id = _response_of(piece.split(b"\n\n", 1)[0]).get("id")
                seen_native += piece.count(b"\n\n")
                if native is not None and native.answer is not None and any(e in piece for e in _LIFECYCLE_END):
                    done(native.answer)
                yield piece
                continue
            out: list[bytes] = []
            for block in piece.split(b"\n\n"):
                if not block.startswith(b"data:"):
                    continue
                data = block[5:].strip()
                if not machine.started and native_id is not None:
                    machine.adopt(native_id, seen_native)
                if data == b"[DONE]":
                    out += machine.end()
                    done(machine.response)
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(chunk, dict):
                    continue
                error = chunk.get("error")
                if error:
                    error = error if isinstance(error, dict) else {"message": str(error)}
                    out += machine.fail(str(error.get("message") or "the provider failed"), error.get("code"))
                    yield b"".join(out)
                    return
                out += machine.feed(chunk)
            if out:
                yield b"".join(out)
        if not machine.finished and native_id is None and not seen_native:
            yield b"".join(machine.fail("the provider's stream ended before it was complete", None))
    except ValueError as exc:
        yield b"".join(machine.fail(str(exc), None))
    finally:
        close = getattr(pieces, "aclose", None)
        if close is not None:
            await close()


def _response_of(block: bytes) -> dict[str, Any]:
    start = block.find(b"\ndata:")
    try:
        value = orjson.loads(block[start + 6 :]) if start >= 0 else None
    except orjson.JSONDecodeError:
        return {}
    response = value.get("response") if isinstance(value, dict) else None
    return response if isinstance(response, dict) else {}


def _renamed(piece: bytes, response_id: str, native: Passthrough | None) -> bytes:
    """OpenAI's events after another provider opened the stream: its lifecycle events carry the id
    the client already has (the SDKs refuse a response whose id changes mid-stream)."""
    blocks = []
    for block in piece.split(b"\n\n"):
        if block.startswith((b"event: response.created", b"event: response.in_progress")):
            continue
        if block.startswith(_LIFECYCLE_END):
            start = block.find(b"\ndata:")
            data = orjson.loads(block[start + 6 :])
            data["response"]["id"] = response_id
            if native is not None:
                native.answer = data["response"]
            block = block[: start + 6] + b" " + orjson.dumps(data)
        if block:
            blocks.append(block)
    return b"\n\n".join(blocks) + b"\n\n" if blocks else b""
