"""The internal answer -> an Anthropic Message, and gateway errors -> Anthropic's error shape.

The Message a non-Claude model's completion becomes, the usage and stop reason in Anthropic's
terms, and `{"type": "error", "error": {"type", "message"}}` with Anthropic's statuses (a provider
that is down or overloaded answers 529 overloaded_error, as Anthropic itself does).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..context import ChatCompletion, Usage
from ..errors import GatewayError, UpstreamUnavailable
from ..providers import anthropic

# finish_reason -> stop_reason. A stop sequence cannot be told from a natural end in the chat
# format, so both are end_turn.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# HTTP status -> Anthropic error type (the inverse of the adapter's type -> status table).
ERROR_TYPES = {status: etype for etype, status in anthropic.ERROR_STATUS.items()}
ERROR_TYPES.update({402: "billing_error", 422: "invalid_request_error", 502: "api_error", 503: "overloaded_error"})
OVERLOADED = 529


def stop_reason(finish: str | None, tool_calls: bool) -> str:
    """A message that carries tool calls stopped for them, whatever the provider's reason said."""
    if tool_calls:
        return "tool_use"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def usage(internal: Usage | None) -> dict[str, int]:
    """Anthropic's usage from the internal one: input_tokens excludes cache reads and writes."""
    if not internal:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    prompt_details = internal.get("prompt_tokens_details") or {}
    cached = int(prompt_details.get("cached_tokens") or 0)
    created = int(prompt_details.get("cache_creation_tokens") or 0)
    return {
        "input_tokens": max(0, int(internal.get("prompt_tokens") or 0) - cached - created),
        "output_tokens": int(internal.get("completion_tokens") or 0),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
    }


def message_id(internal_id: Any) -> str:
    text = str(internal_id or "")
    return "msg_" + (text.removeprefix("chatcmpl-") or "llmproxy")


def message(completion: ChatCompletion, requested_model: str) -> dict[str, Any]:
    """The Anthropic Message for an internal completion."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if msg.get("reasoning_content"):
        # Thinking of a model that is not Claude carries no signature; an empty one says so.
        content.append({"type": "thinking", "thinking": msg["reasoning_content"], "signature": ""})
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = msg.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_llmproxy",
                "name": fn.get("name", ""),
                "input": tool_input(fn.get("arguments")),
            }
        )
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or requested_model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), bool(calls)),
        "stop_sequence": None,
        "usage": usage(completion.get("usage")),
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` is (empty arguments: {})."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}  # kept, not lost: the model wrote something that is not JSON
    return value if isinstance(value, dict) else {"_value": value}


def error_status(exc: GatewayError) -> int:
    """Anthropic's status for a gateway error: a provider down or overloaded is 529."""
    return OVERLOADED if isinstance(exc, UpstreamUnavailable) else exc.status


def error_payload(status: int, message: str) -> dict[str, Any]:
    etype = (
        "overloaded_error"
        if status == OVERLOADED
        else ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    )
    return {"type": "error", "error": {"type": etype, "message": message}}


def error_body(exc: GatewayError) -> tuple[int, bytes]:
    status = error_status(exc)
    return status, orjson.dumps(error_payload(status, exc.message))


def error_event_from_internal(payload: dict[str, Any]) -> bytes:
    """An Anthropic `error` event for the gateway's own (OpenAI-shaped) error event."""
    raw = payload.get("error")
    err: dict[str, Any] = raw if isinstance(raw, dict) else {}
    etype = str(err.get("type") or "api_error")
    code = str(err.get("code") or "")
    status = (
        OVERLOADED
        if code == "upstream_unavailable"
        else 429
        if etype == "rate_limit_error"
        else 400
        if etype == "invalid_request_error"
        else 500
    )
    return event("error", error_payload(status, str(err.get("message") or "error")))


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
