"""The response cache's stream side: a relayed SSE stream folded into one chat.completion (to store
it), and a cached chat.completion unfolded into a well-formed SSE stream (to replay a hit).

A replayed stream has the shape OpenAI sends: per choice a role chunk, the content in a few pieces,
the tool calls (name first, then arguments), the finish chunk; then the usage chunk when the client
asked for it (`stream_options.include_usage`), and `data: [DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from .context import ChatCompletion, ChatChunk, Usage

DONE = b"data: [DONE]\n\n"
CONTENT_PIECES = 4  # a hit's text is sent in this many chunks, as a stream would be
_MIN_PIECE = 16  # ...but never in pieces shorter than this


class StreamCollector:
    """The SSE bytes a client received, kept only while they stay under a bound: an answer too big
    to cache is dropped early instead of held in memory to the end."""

    __slots__ = ("pieces", "size", "limit")

    def __init__(self, limit: int) -> None:
        self.pieces: list[bytes] | None = []
        self.size = 0
        self.limit = limit

    def add(self, piece: bytes) -> None:
        if self.pieces is None:
            return
        self.size += len(piece)
        if self.size > self.limit:
            self.pieces = None
            return
        self.pieces.append(piece)


def assemble(raw: bytes, usage: Usage | None) -> ChatCompletion | None:
    """The chat.completion a complete, clean stream amounts to; None for anything else (no [DONE],
    an error event, a chunk that does not parse)."""
    if not raw.rstrip().endswith(b"data: [DONE]"):
        return None
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    for block in raw.split(b"\n\n"):
        data = _data(block)
        if data is None or data == b"[DONE]":
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        if not head:
            head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint", "service_tier") if k in chunk}
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or not isinstance(choice.get("index", 0), int):
                return None
            _fold(choices.setdefault(choice.get("index", 0), {"content": [], "refusal": [], "tools": {}}), choice)
    if not choices:
        return None
    completion: ChatCompletion = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
    }
    completion["choices"] = [_choice(index, acc) for index, acc in sorted(choices.items())]
    if usage is not None:
        completion["usage"] = usage
    for name in ("system_fingerprint", "service_tier"):
        if name in head:
            completion[name] = head[name]
    return completion


def _data(block: bytes) -> bytes | None:
    lines = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _fold(acc: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta") or {}
    if isinstance(delta.get("content"), str):
        acc["content"].append(delta["content"])
    if isinstance(choice.get("text"), str):  # a legacy completions chunk (text_completion)
        acc["content"].append(choice["text"])
    if isinstance(delta.get("refusal"), str):
        acc["refusal"].append(delta["refusal"])
    for call in delta.get("tool_calls") or ():
        slot = acc["tools"].setdefault(
            call.get("index", len(acc["tools"])), {"id": None, "type": "function", "name": "", "arguments": []}
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["name"] += function["name"]
        if isinstance(function.get("arguments"), str):
            slot["arguments"].append(function["arguments"])
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]


def _choice(index: int, acc: dict[str, Any]) -> dict[str, Any]:
    text = "".join(acc["content"])
    # A tool-call answer's role chunk carries content "", but its message content is null.
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or (acc["content"] and not acc["tools"]) else None,
        "refusal": "".join(acc["refusal"]) if acc["refusal"] else None,
    }
    if acc["tools"]:
        message["tool_calls"] = [
            {"id": t["id"], "type": t["type"], "function": {"name": t["name"], "arguments": "".join(t["arguments"])}}
            for _, t in sorted(acc["tools"].items())
        ]
    return {"index": index, "message": message, "logprobs": None, "finish_reason": acc.get("finish_reason")}


async def replay(body: bytes, include_usage: bool) -> AsyncIterator[bytes]:
    """A cached chat.completion as an SSE stream. Everything is ready at once, so it goes out in one
    write; the client still sees separate events."""
    yield replay_bytes(orjson.loads(body), include_usage)


def replay_bytes(completion: ChatCompletion, include_usage: bool) -> bytes:
    base: dict[str, Any] = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    for name in ("system_fingerprint", "service_tier"):
        if name in completion:
            base[name] = completion[name]
    out: list[bytes] = []

    def emit(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        chunk: ChatChunk = {
            **base,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            chunk["usage"] = None  # as OpenAI does on every chunk but the last when usage was asked for
        out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")

    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        emit(index, {"role": "assistant", "content": ""})
        content = message.get("content")
        if isinstance(content, str):
            for piece in _pieces(content):
                emit(index, {"content": piece})
        if isinstance(message.get("refusal"), str):
            emit(index, {"refusal": message["refusal"]})
        for n, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            emit(
                index,
                {
                    "tool_calls": [
                        {
                            "index": n,
                            "id": call.get("id"),
                            "type": call.get("type", "function"),
                            "function": {"name": function.get("name", ""), "arguments": ""},
                        }
                    ]
                },
            )
            for piece in _pieces(function.get("arguments") or ""):
                emit(index, {"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
        emit(index, {}, choice.get("finish_reason") or "stop")
    if include_usage and isinstance(completion.get("usage"), dict):
        out.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": completion["usage"]}) + b"\n\n")
    out.append(DONE)
    return b"".join(out)


def _pieces(text: str) -> list[str]:
    if not text:
        return []
    size = max(_MIN_PIECE, -(-len(text) // CONTENT_PIECES))
    return [text[i : i + size] for i in range(0, len(text), size)]
