"""The hand-written check of a chat completions request: a clear 400 naming the field, fast.

It checks what the gateway itself relies on and the types a provider would reject anyway; it does
not drop or rewrite anything, so unknown fields still reach OpenAI-compatible providers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .context import ChatRequest
from .errors import InvalidRequest

ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))


def parse_request(raw: bytes) -> ChatRequest:
    """The request dict from the raw body, or InvalidRequest saying what is wrong with it."""
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object with 'model' and 'messages'")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc.msg} at position {exc.pos})",
                             code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    check_request(body)
    return body


def check_request(body: ChatRequest) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    if len(model) > 256 or not (model.isascii() and model.isprintable()):
        # it goes into URLs, response headers and log lines: printable ASCII only
        raise InvalidRequest("'model' must be at most 256 printable ASCII characters", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        _check_message(message, i)
    # Only the fields the request has are looked at: most carry two or three of them.
    for name, value in body.items():
        check = _FIELD_CHECKS.get(name)
        if check is not None and value is not None:
            check(name, value)


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean", param=name)


def _object(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{name}' must be an object", param=name)


def _number(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a number", param=name)


def _integer(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be an integer", param=name)


def _count(name: str, value: Any) -> None:
    _integer(name, value)
    if value < 1:
        raise InvalidRequest(f"'{name}' must be at least 1", param=name)


def _stop(name: str, value: Any) -> None:
    if not isinstance(value, str) and not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")


def _tool_choice(name: str, value: Any) -> None:
    if not isinstance(value, (str, dict)):
        raise InvalidRequest("'tool_choice' must be a string or an object", param="tool_choice")


def _response_format(name: str, value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise InvalidRequest("'response_format' must be an object with a 'type'", param="response_format")


def _check_message(message: Any, i: int) -> None:
    # The common message (a known role, string content) costs two lookups; error text is built
    # only for an error.
    if not isinstance(message, dict):
        raise InvalidRequest(f"messages[{i}] must be an object with 'role' and 'content'", param=f"messages[{i}]")
    role = message.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}; got {role!r}",
                             param=f"messages[{i}].role")
    content = message.get("content")
    if content.__class__ is str:
        return
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call") or "content" in message):
            return
        raise InvalidRequest(f"messages[{i}].content is required for role '{role}'", param=f"messages[{i}].content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or an array of content parts",
                             param=f"messages[{i}].content")
    for j, part in enumerate(content):
        _check_part(part, f"messages[{i}].content[{j}]")


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise InvalidRequest(f"{where} must be an object with a 'type'", param=where)
    if part["type"] == "text" and not isinstance(part.get("text"), str):
        raise InvalidRequest(f"{where}.text must be a string", param=f"{where}.text")
    if part["type"] == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.image_url.url must be a string", param=f"{where}.image_url")


def _check_tools(name: str, tools: Any) -> None:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools[{i}] must be an object", param=f"tools[{i}]")
        if tool.get("type", "function") == "function":
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise InvalidRequest(f"tools[{i}].function.name is required", param=f"tools[{i}].function.name")


_FIELD_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "stream": _boolean, "stream_options": _object,
    "temperature": _number, "top_p": _number, "frequency_penalty": _number, "presence_penalty": _number,
    "seed": _integer, "top_logprobs": _integer,
    "max_tokens": _count, "max_completion_tokens": _count, "n": _count,
    "stop": _stop, "tools": _check_tools, "tool_choice": _tool_choice, "response_format": _response_format,
}
