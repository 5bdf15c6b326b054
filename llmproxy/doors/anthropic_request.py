"""Anthropic Messages request -> the internal (OpenAI chat) request, checked first as Anthropic checks it.

`check` refuses, before any provider is called, what the Messages API would refuse with a 400
naming the field (missing max_tokens, empty messages, a tool_result without its tool_use, an
unknown block type...). `to_chat` is the one translation into the internal request; what the chat
format cannot carry (cache_control, top_k, server tools, thinking blocks of past turns) is dropped
with a debug log, since a Claude model never sees this translation: it gets the client's bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..context import ChatRequest
from ..errors import InvalidRequest
from ..providers import chat

NAME = "anthropic-messages"
ROLES = ("user", "assistant")
USER_BLOCKS = frozenset(("text", "image", "document", "tool_result", "search_result"))
ASSISTANT_BLOCKS = frozenset(
    (
        "text",
        "tool_use",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
    )
)
TOOL_CHOICES = frozenset(("auto", "any", "tool", "none"))
THINKING = frozenset(("enabled", "disabled", "adaptive"))
MIN_THINKING_BUDGET = 1024
# Thinking budget -> the reasoning effort with the largest budget not above it (the same ladder the
# Anthropic adapter uses the other way round).
_EFFORTS = ((32000, "xhigh"), (16384, "high"), (8192, "medium"), (2048, "low"), (0, "minimal"))


def invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param)


def parse(raw: bytes, *, counting: bool = False) -> dict[str, Any]:
    """The Messages request from the client's bytes, checked; InvalidRequest names what is wrong."""
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object with model, max_tokens and messages")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    check(body, counting=counting)
    return body


def check(body: dict[str, Any], *, counting: bool = False) -> None:
    """Anthropic's own 400s. `counting`: a count_tokens request, which has no max_tokens."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "Field required")
    if len(model) > 256 or not (model.isascii() and model.isprintable()):
        raise invalid("model", "must be at most 256 printable ASCII characters")
    if not counting:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise invalid("max_tokens", "Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise invalid("max_tokens", "Input should be an integer greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("messages", "Field required" if messages is None else "Input should be a valid list")
    if not messages:
        raise invalid("messages", "at least one message is required")
    _check_system(body.get("system"))
    _check_messages(messages)
    tools = _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"), tools)
    _check_thinking(body.get("thinking"), body.get("max_tokens"))
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise invalid(name, "Input should be a valid number")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise invalid("top_k", "Input should be a valid integer")
    stop = body.get("stop_sequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise invalid("stop_sequences", "Input should be a valid list of strings")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise invalid("stream", "Input should be a valid boolean")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise invalid("metadata", "Input should be a valid dictionary")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("system", "Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"system.{i}", "system blocks must be text blocks with a string 'text'")


def _check_messages(messages: list[Any]) -> None:
    previous_calls: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise invalid(where, "Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ROLES:
            raise invalid(f"{where}.role", f"Input should be 'user' or 'assistant', got {role!r}")
        content = msg.get("content")
        if isinstance(content, str):
            previous_calls = set()
            continue
        if not isinstance(content, list):
            raise invalid(f"{where}.content", "Input should be a valid string or a list of content blocks")
        if not content and not (role == "assistant" and i == len(messages) - 1):
            raise invalid(
                f"{where}.content",
                "all messages must have non-empty content except for the optional final assistant message",
            )
        allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
        calls: set[str] = set()
        for j, block in enumerate(content):
            param = f"{where}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in allowed:
                raise invalid(
                    f"{param}.type",
                    f"{kind!r} is not a valid content block type in a {role} message "
                    f"(expected one of {', '.join(sorted(allowed))})",
                )
            _check_block(block, kind, param)
            if kind == "tool_use":
                calls.add(block["id"])
            elif kind == "tool_result" and block["tool_use_id"] not in previous_calls:
                raise invalid(
                    param,
                    f"unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                    f"`tool_use` block in the previous message.",
                )
        previous_calls = calls


def _check_block(block: dict[str, Any], kind: str, param: str) -> None:
    if kind == "text" and not isinstance(block.get("text"), str):
        raise invalid(f"{param}.text", "Field required")
    elif kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, dict):
            source = {}
        stype = source.get("type")
        if stype == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
            return
        if stype == "url" and isinstance(source.get("url"), str):
            return
        if kind == "document" and stype in ("text", "content", "file"):
            return
        raise invalid(f"{param}.source", "Input should be a base64 or url source")
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise invalid(param, "tool_use blocks need a string id and name")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{param}.input", "Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{param}.tool_use_id", "Field required")
        content = block.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise invalid(f"{param}.content", "Input should be a valid string or list of blocks")
    elif kind == "thinking" and not isinstance(block.get("thinking"), str):
        raise invalid(f"{param}.thinking", "Field required")


def _check_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise invalid("tools", "Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid(f"tools.{i}.name", "Field required")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"tools.{i}.input_schema", "Field required")
        if tool["name"] in names:
            raise invalid("tools", f"Tool names must be unique: {tool['name']!r} appears twice")
        names.add(tool["name"])
    return names


def _check_tool_choice(choice: Any, tools: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
        raise invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool" and choice.get("name") not in tools:
        raise invalid("tool_choice.name", f"tool {choice.get('name')!r} not found in tools")


def _check_thinking(thinking: Any, max_tokens: Any) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING:
        raise invalid("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET:
            raise invalid("thinking.enabled.budget_tokens", "Input should be greater than or equal to 1024")
        if isinstance(max_tokens, int) and budget >= max_tokens:
            raise invalid("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`")


def to_chat(body: dict[str, Any]) -> ChatRequest:
    """The internal request for a checked Messages request."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else "\n\n".join(b["text"] for b in system if b["text"])
        messages.append({"role": "system", "content": text})
    for msg in body["messages"]:
        if msg["role"] == "user":
            messages += _user(msg["content"])
        else:
            messages.append(_assistant(msg["content"]))
    req: ChatRequest = {"model": body["model"], "messages": messages}
    if body.get("max_tokens") is not None:
        req["max_completion_tokens"] = body["max_tokens"]
    if body.get("stream"):
        req["stream"] = True
        req["stream_options"] = {"include_usage": True}  # the door needs the usage for message_delta
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            req[name] = body[name]
    if body.get("stop_sequences"):
        req["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        req["user"] = user
    _tools(body, req)
    effort = reasoning_effort(body)
    if effort is not None:
        req["reasoning_effort"] = effort
    dropped = [k for k in ("top_k", "service_tier", "container", "mcp_servers", "context_management") if k in body]
    if dropped:
        chat.drop(NAME, dropped, "not expressible in the chat format")
    return req


def reasoning_effort(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None
    if thinking["type"] == "enabled":
        return next(effort for floor, effort in _EFFORTS if thinking["budget_tokens"] >= floor)
    if thinking["type"] == "adaptive":
        effort = (body.get("output_config") or {}).get("effort")
        return effort if effort in chat.REASONING_EFFORTS else "medium"
    return None


def _user(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One user turn -> tool messages (its tool_result blocks, which come first) and a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block["type"]
        if kind == "tool_result":
            text, images = _tool_result(block)
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts += images  # chat tool messages hold text only: their images follow in the user turn
        elif kind == "text":
            if block["text"]:
                parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image(block["source"]))
        elif kind == "document":
            parts.append(_document(block))
        else:
            chat.drop(NAME, [f"{kind} block"], "not expressible in the chat format")
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts) if only_text else parts})
    return out


def _tool_result(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image" and isinstance(part.get("source"), dict):
                images.append(_image(part["source"]))
    text = "\n".join(texts)
    if block.get("is_error"):
        text = "Error: " + text
    return text, images


def _image(source: dict[str, Any]) -> dict[str, Any]:
    if source["type"] == "url":
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}


def _document(block: dict[str, Any]) -> dict[str, Any]:
    source = block["source"]
    if source["type"] == "base64":
        return {
            "type": "file",
            "file": {
                "filename": block.get("title") or "document.pdf",
                "file_data": f"data:{source['media_type']};base64,{source['data']}",
            },
        }
    if source["type"] == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    if source["type"] == "content" and isinstance(source.get("content"), list):
        return {
            "type": "text",
            "text": "\n".join(str(b.get("text", "")) for b in source["content"] if isinstance(b, dict)),
        }
    raise InvalidRequest(
        f"a {source['type']} document reaches Claude models only; send it inline (base64) for other models",
        param="messages",
    )


def _assistant(content: str | list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(chat.tool_call(block["id"], block["name"], orjson.dumps(block["input"]).decode()))
        # thinking blocks are signed for Claude alone; other models neither take nor need them back
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tools(body: dict[str, Any], req: ChatRequest) -> None:
    tools = []
    for tool in body.get("tools") or ():
        if tool.get("type") not in (None, "custom"):
            chat.drop(NAME, [f"server tool {tool['name']}"], "Anthropic's server tools run on Claude models only")
            continue
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            fn["description"] = tool["description"]
        tools.append({"type": "function", "function": fn})
    if not tools:
        return
    req["tools"] = tools
    choice = body.get("tool_choice")
    if not choice:
        return
    kind = choice["type"]
    if kind == "any":
        req["tool_choice"] = "required"
    elif kind == "tool":
        req["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind == "none":
        req["tool_choice"] = "none"
    if choice.get("disable_parallel_tool_use") and kind != "none":
        req["parallel_tool_calls"] = False
