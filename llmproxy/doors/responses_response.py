"""The internal answer -> an OpenAI Response object, and the Response's own pieces.

A chat completion becomes the Response an OpenAI model would have returned: the request's settings
echoed (instructions, tools, text format, sampling...), the output as items (a reasoning summary,
one assistant message with its output_text, one function_call item per tool call), the status
(`incomplete` when the output-token limit cut it) and the usage in the Responses' terms. The
stream (responses_stream.py) builds the same object piece by piece.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from ..context import ChatCompletion, Usage

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


# The Response's fields before a request's own settings are put in (the SDKs read every one).
_SHELL: dict[str, Any] = {
    "object": "response",
    "status": "in_progress",
    "background": False,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "output": None,
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": None,
    "user": None,
    "metadata": {},
}
_ECHOED = frozenset(
    (
        "instructions",
        "max_output_tokens",
        "parallel_tool_calls",
        "previous_response_id",
        "store",
        "temperature",
        "tool_choice",
        "top_p",
        "truncation",
        "user",
        "metadata",
    )
)


_ECHO_FIELDS = _ECHOED | {"reasoning", "text", "tools"}  # what `echoes` reads


def response_id() -> str:
    """A response id that starts with its time in milliseconds, as OpenAI's start with theirs: the
    store's index on ids then grows at its end."""
    # 12 hex digits of milliseconds, then 16 random: one number, one conversion (half the f-string's cost)
    return "resp_" + (time.time_ns() // 1_000_000 << 64 | random.getrandbits(64)).to_bytes(14, "big").hex()


def new_id(prefix: str) -> str:
    """An id for a response or an item: 96 random bits (they need not be secret: a stored response
    is found only by the tenant that made it), a quarter of the cost of os.urandom."""
    return prefix + random.getrandbits(96).to_bytes(12, "big").hex()


def shell(body: dict[str, Any], response_id: str, model: str) -> dict[str, Any]:
    """The Response for `body` before any output: status in_progress, the request's settings echoed.
    (The nested defaults are shared: nothing writes into them.)"""
    return {"id": response_id, "created_at": int(time.time()), "model": model, **_SHELL, "output": [], **echoes(body)}


def echoes(body: dict[str, Any]) -> dict[str, Any]:
    """The request's settings a Response repeats, in the Response's terms."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in _ECHOED:
            if value is not None:
                out[name] = value
        elif name == "reasoning" and isinstance(value, dict):
            out["reasoning"] = {"effort": value.get("effort"), "summary": value.get("summary")}
        elif name == "text" and isinstance(value, dict):
            out["text"] = {
                "format": value.get("format") or {"type": "text"},
                "verbosity": value.get("verbosity", "medium"),
            }
        elif name == "tools" and value:
            out["tools"] = [_tool(t) for t in value]
    return out


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


def response(body: dict[str, Any], completion: ChatCompletion, response_id: str) -> dict[str, Any]:
    """The whole Response for an internal completion."""
    return {**_SHELL, **own(body, completion, response_id)}


def own(body: dict[str, Any], completion: ChatCompletion, response_id: str) -> dict[str, Any]:
    """The Response for an internal completion without the fields that hold their defaults (see
    `whole`): what the conversation store keeps, half the bytes of the whole."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if msg.get("reasoning_content"):
        output.append(reasoning_item(new_id("rs_"), msg["reasoning_content"]))
    calls = msg.get("tool_calls") or []
    text = msg.get("content")
    if isinstance(text, str) and (text or not calls):
        output.append(message_item(new_id("msg_"), text, "completed"))
    for call in calls:
        fn = call.get("function") or {}
        output.append(
            call_item(
                new_id("fc_"),
                str(call.get("id") or new_id("call_")),
                str(fn.get("name") or ""),
                str(fn.get("arguments") or ""),
                "completed",
            )
        )
    out = {
        "id": response_id,
        "created_at": int(time.time()),
        "model": str(completion.get("model") or body["model"]),
        "status": "in_progress",
    }
    if not _ECHO_FIELDS.isdisjoint(body):  # most requests set nothing a Response repeats
        out.update(echoes(body))
    out["output"] = output
    finish(out, choice.get("finish_reason"), completion.get("usage"))
    return out


def whole(own_bytes: bytes, own: dict[str, Any]) -> bytes:
    """The JSON of a whole Response from the JSON of its `own` fields: the defaults it lacks put in
    front (made once per set of fields present: a request echoes the same few settings every time)."""
    present = tuple(own)
    defaults = _DEFAULTS.get(present)
    if defaults is None:
        if len(_DEFAULTS) >= 256:
            _DEFAULTS.clear()
        missing = {name: value for name, value in _SHELL.items() if name not in own}
        defaults = _DEFAULTS[present] = orjson.dumps(missing)[1:-1] + b"," if missing else b""
    return b"{" + defaults + own_bytes[1:]


def stored_whole(stored: bytes) -> bytes:
    """A stored Response as the client gets it: a translated answer is stored without its defaults
    (and so without "object", which every whole Response has); OpenAI's own answers as they came."""
    own = orjson.loads(stored)
    return whole(stored, own) if isinstance(own, dict) and "object" not in own else stored


_DEFAULTS: dict[tuple[str, ...], bytes] = {}


def finish(out: dict[str, Any], finish_reason: str | None, internal: Usage | None) -> None:
    """The end of a Response: its status from the chat finish reason, and its usage."""
    reason = INCOMPLETE.get(finish_reason or "")
    out["status"] = "incomplete" if reason else "completed"
    out["incomplete_details"] = {"reason": reason} if reason else None
    out["usage"] = usage(internal)
    if out["status"] == "incomplete":
        for item in out["output"]:
            if item.get("status") == "completed" and item["type"] == "message":
                item["status"] = "incomplete"


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)] if status != "in_progress" else [],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}


def usage(internal: Usage | None) -> dict[str, Any]:
    """The Responses usage from the internal one."""
    internal = internal or {}
    prompt = internal.get("prompt_tokens_details") or {}
    completion = internal.get("completion_tokens_details") or {}
    inputs, outputs = int(internal.get("prompt_tokens") or 0), int(internal.get("completion_tokens") or 0)
    return {
        "input_tokens": inputs,
        "input_tokens_details": {
            "cached_tokens": int(prompt.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt.get("cache_creation_tokens") or 0),
        },
        "output_tokens": outputs,
        "output_tokens_details": {"reasoning_tokens": int(completion.get("reasoning_tokens") or 0)},
        "total_tokens": inputs + outputs,
    }
