"""OpenAI Responses request -> the internal (OpenAI chat) request, checked first as OpenAI checks it.

`parse` refuses, before any provider is called, what the Responses API would refuse with a 400
naming the field (a message without a role, a function_call_output that answers no call, a JSON
schema without a name...). `input_items` makes the request's input a list of items with ids (what
is stored, and listed by /input_items); `to_chat` is the one translation of a conversation of
items into the internal request. Item and tool types that only OpenAI serves (hosted tools,
computer calls, item references) are named by `untranslatable`: an OpenAI model gets them in
the client's bytes, any other model refuses the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from ..context import ChatRequest
from ..errors import InvalidRequest
from ..providers import chat
from ..validation import parse_object
from .responses_response import new_id

NAME = "openai-responses"
ROLES = frozenset(("user", "assistant", "system", "developer"))
INPUT_PARTS = frozenset(("input_text", "input_image", "input_file"))
ASSISTANT_PARTS = frozenset(("output_text", "refusal"))
TRANSLATED_ITEMS = frozenset(("message", "function_call", "function_call_output", "reasoning"))
# Item types the Responses API takes that only OpenAI itself can serve.
OPENAI_ITEMS = frozenset(
    (
        "item_reference",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "compaction",
        "tool_search_call",
        "tool_search_output",
    )
)
TOOL_CHOICES = frozenset(("none", "auto", "required"))
DETAILS = frozenset(("low", "high", "auto", "original"))
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MIN_OUTPUT_TOKENS = 16  # OpenAI refuses fewer
# Fields this door refuses outright: the gateway does not run OpenAI's background jobs or conversations.
REFUSED = {
    "background": "background responses are not served by this gateway; poll-free requests only",
    "conversation": "the Conversations API is not served by this gateway; chain turns with previous_response_id",
}
# Fields of a Responses request that the chat translation reads; the others reach OpenAI models only.
READ = frozenset(
    (
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "parallel_tool_calls",
        "metadata",
        "user",
        "store",
        "stream",
        "previous_response_id",
        "stream_options",
        "include",
        "truncation",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "top_logprobs",
    )
)


def invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {message}", param=param)


def parse(raw: bytes) -> dict[str, Any]:
    """The Responses request from the client's bytes, checked; InvalidRequest names what is wrong."""
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object with 'model' and 'input'")
    body = parse_object(raw)
    check(body)
    return body


def check(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    if len(model) > 256 or not (model.isascii() and model.isprintable()):
        raise invalid("model", "must be at most 256 printable ASCII characters")
    value = body.get("input")
    if value is None and body.get("prompt") is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if value is not None and not isinstance(value, (str, list)):
        raise invalid("input", "expected a string or an array of input items")
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_item(item, f"input[{i}]")
    # Only the fields the request has are looked at: most carry two or three.
    for name, field in body.items():
        checker = _FIELDS.get(name)
        if checker is not None and field is not None:
            checker(name, field)
    if "tools" in body or "tool_choice" in body:
        _tool_choice(body.get("tool_choice"), _tools(body.get("tools")))
    if isinstance(value, list) and body.get("previous_response_id") is None:
        _calls_answered(value, known=set())  # a follow-up's are checked against the stored turns too


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise invalid(name, "expected a string")


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise invalid(name, "expected a boolean")


def _between(low: float, high: float) -> Callable[[str, Any], None]:
    def check_number(name: str, value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise invalid(name, "expected a number")
        if not low <= value <= high:
            raise invalid(name, f"expected a number between {low} and {high}, got {value}")

    return check_number


def _tokens(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(name, "expected an integer")
    if value < MIN_OUTPUT_TOKENS:
        raise invalid(
            name, f"integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, but got {value} instead."
        )


def _refused(name: str, value: Any) -> None:
    if value:
        raise invalid(name, REFUSED[name])


def _metadata(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid("metadata", "expected an object of string keys and values")
    if len(value) > 16:
        raise invalid("metadata", "at most 16 keys")
    for key, text in value.items():
        if len(key) > 64 or not isinstance(text, str) or len(text) > 512:
            raise invalid(f"metadata.{key[:64]}", "keys are at most 64 characters, values strings of at most 512")


def _reasoning(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid("reasoning", "expected an object")
    effort = value.get("effort")
    if effort is not None and effort not in chat.REASONING_EFFORTS:
        raise invalid("reasoning.effort", f"expected one of {', '.join(chat.REASONING_EFFORTS)}, got {effort!r}")


def _text(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid("text", "expected an object")
    fmt = value.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid("text.format.type", f"expected 'text', 'json_object' or 'json_schema', got {kind!r}")
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not SCHEMA_NAME.match(fmt["name"]):
            raise invalid("text.format.name", "required: 1 to 64 letters, digits, '_' or '-'")
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("Missing required parameter: 'text.format.schema'.", param="text.format.schema")
        if fmt.get("strict") is not None and not isinstance(fmt["strict"], bool):
            raise invalid("text.format.strict", "expected a boolean")


_FIELDS: dict[str, Callable[[str, Any], None]] = {
    **dict.fromkeys(("instructions", "previous_response_id", "user", "safety_identifier", "prompt_cache_key"), _string),
    **dict.fromkeys(("stream", "store", "parallel_tool_calls"), _boolean),
    **dict.fromkeys(REFUSED, _refused),
    "temperature": _between(0, 2),
    "top_p": _between(0, 1),
    "max_output_tokens": _tokens,
    "metadata": _metadata,
    "reasoning": _reasoning,
    "text": _text,
}


def _tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise invalid("tools", "expected an array of tools")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            raise InvalidRequest(f"Missing required parameter: 'tools[{i}].type'.", param=f"tools[{i}].type")
        if kind != "function":
            continue  # a hosted tool: OpenAI checks it
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"Missing required parameter: 'tools[{i}].name'.", param=f"tools[{i}].name")
        if name in names:
            raise invalid(f"tools[{i}].name", f"duplicate function name {name!r}")
        names.add(name)
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise invalid(f"tools[{i}].parameters", "expected a JSON schema object")
        if tool.get("strict") is not None and not isinstance(tool["strict"], bool):
            raise invalid(f"tools[{i}].strict", "expected a boolean")
    return names


def _tool_choice(choice: Any, names: set[str]) -> None:
    if choice is None or _one_of(choice, TOOL_CHOICES):
        return
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise invalid("tool_choice", "expected 'none', 'auto', 'required' or an object with a 'type'")
    if choice["type"] == "function" and choice.get("name") not in names:
        raise invalid("tool_choice.name", f"no function named {choice.get('name')!r} in tools")


def check_item(item: Any, where: str) -> None:
    """One input item, as the Responses API checks it."""
    if not isinstance(item, dict):
        raise invalid(where, "expected an input item object")
    kind = item.get("type", "message" if "role" in item else None)
    if not isinstance(kind, str):
        raise InvalidRequest(f"Missing required parameter: '{where}.type'.", param=f"{where}.type")
    if kind == "message":
        role = item.get("role")
        if not _one_of(role, ROLES):
            raise invalid(f"{where}.role", f"expected one of assistant, developer, system, user, got {role!r}")
        content = item.get("content")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise invalid(f"{where}.content", "expected a string or an array of content parts")
        allowed = ASSISTANT_PARTS if role == "assistant" else INPUT_PARTS
        for j, part in enumerate(content):
            _check_part(part, f"{where}.content[{j}]", allowed)
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.{name}' (a string).", param=f"{where}.{name}"
                )
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise InvalidRequest(f"Missing required parameter: '{where}.call_id'.", param=f"{where}.call_id")
        output = item.get("output")
        if isinstance(output, list):
            for j, part in enumerate(output):
                _check_part(part, f"{where}.output[{j}]", INPUT_PARTS)
        elif not isinstance(output, str):
            raise invalid(f"{where}.output", "expected a string or an array of content parts")
    elif kind == "reasoning":
        if not isinstance(item.get("summary"), list):
            raise InvalidRequest(f"Missing required parameter: '{where}.summary'.", param=f"{where}.summary")
    elif kind == "item_reference":
        if not isinstance(item.get("id"), str):
            raise InvalidRequest(f"Missing required parameter: '{where}.id'.", param=f"{where}.id")
    elif kind not in OPENAI_ITEMS:
        raise invalid(f"{where}.type", f"unknown input item type {kind!r}")


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def _check_part(part: Any, where: str, allowed: frozenset[str]) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    if not _one_of(kind, allowed):
        raise invalid(f"{where}.type", f"expected one of {', '.join(sorted(allowed))}, got {kind!r}")
    if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
        raise InvalidRequest(f"Missing required parameter: '{where}.text'.", param=f"{where}.text")
    elif kind == "refusal" and not isinstance(part.get("refusal"), str):
        raise InvalidRequest(f"Missing required parameter: '{where}.refusal'.", param=f"{where}.refusal")
    elif kind == "input_image":
        if not isinstance(part.get("image_url"), str) and not isinstance(part.get("file_id"), str):
            raise invalid(where, "an input_image needs an image_url or a file_id")
        if part.get("detail") is not None and not _one_of(part["detail"], DETAILS):
            raise invalid(f"{where}.detail", f"expected one of {', '.join(sorted(DETAILS))}")
    elif kind == "input_file":
        if not any(isinstance(part.get(k), str) for k in ("file_data", "file_id", "file_url")):
            raise invalid(where, "an input_file needs file_data, file_id or file_url")


def _calls_answered(items: list[dict[str, Any]], known: set[str]) -> None:
    """Every function_call_output answers a function_call that came before it."""
    if any(item.get("type") == "item_reference" for item in items):
        return  # a referenced call is OpenAI's to find
    calls = set(known)
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output" and item["call_id"] not in calls:
            raise invalid(
                f"input[{i}].call_id", f"No tool call found for function call output with call_id {item['call_id']}."
            )


def check_against(history: list[dict[str, Any]], body: dict[str, Any]) -> None:
    """The function_call_outputs of a follow-up turn may answer the calls of the stored turns."""
    value = body.get("input")
    if isinstance(value, list):
        _calls_answered(value, {i["call_id"] for i in history if i.get("type") == "function_call"})


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's input as items with ids, as stored and listed (a string is one user message)."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [
            {
                "id": new_id("msg_"),
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": value}],
            }
        ]
    items = []
    for item in value:
        kind = item.get("type", "message")
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item["role"] == "assistant" else "input_text"
            item = {**item, "content": [{"type": part, "text": item["content"]}]}
        if "id" not in item or "type" not in item:
            prefix = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}.get(kind, "item_")
            item = {"id": new_id(prefix), **item, "type": kind}
        items.append(item)
    return items


def untranslatable(body: dict[str, Any], history: list[dict[str, Any]]) -> str | None:
    """What only an OpenAI model can serve in this request (named for the 400), or None."""
    if (
        not history
        and isinstance(body.get("input"), str)
        and "tools" not in body
        and "tool_choice" not in body
        and "prompt" not in body
    ):
        return None  # the common request: a prompt, nothing else to look at
    for where, items in (("input", body.get("input")), ("previous_response_id", history)):
        for i, item in enumerate(items if isinstance(items, list) else ()):
            kind = item.get("type", "message")
            if kind not in TRANSLATED_ITEMS:
                return f"{where}[{i}] is a {kind} item"
            if kind == "message" and isinstance(item.get("content"), list):
                for part in item["content"]:
                    if part.get("type") == "input_image" and not isinstance(part.get("image_url"), str):
                        return f"{where}[{i}] holds an image by file_id"
                    if part.get("type") == "input_file" and not isinstance(part.get("file_data"), str):
                        return f"{where}[{i}] holds a file by file_id or file_url"
    for i, tool in enumerate(body.get("tools") or ()):
        if tool["type"] != "function":
            return f"tools[{i}] is the hosted tool {tool['type']!r}"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice["type"] != "function":
        return f"tool_choice is {choice['type']!r}"
    if body.get("prompt") is not None:
        return "prompt (a stored prompt template)"
    return None


def to_chat(body: dict[str, Any], items: list[dict[str, Any]]) -> ChatRequest:
    """The internal request for a checked Responses request whose whole conversation is `items`
    (the stored turns, then this request's input)."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    given = body.get("input")
    if isinstance(given, str) and len(items) == 1:
        messages.append({"role": "user", "content": given})  # a plain prompt (no stored turns)
        items = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            _message(item, messages)
        elif kind == "function_call":
            call = chat.tool_call(item["call_id"], item["name"], item["arguments"])
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = (
                output
                if isinstance(output, str)
                else "\n".join(p.get("text", "") for p in output if p.get("type") == "input_text")
            )
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        # reasoning items are the provider's own; other providers neither take nor need them back
    req: ChatRequest = {"model": body["model"], "messages": messages}
    dropped = []
    for name, value in body.items():  # one pass over the fields the request has
        if value is None:
            continue
        if name in _SAME:
            req[name] = value
        elif name == "max_output_tokens":
            req["max_completion_tokens"] = value
        elif name == "stream":
            if value:
                req["stream"] = True
                req["stream_options"] = {"include_usage": True}  # the door needs it for response.completed
        elif name == "reasoning":
            if value.get("effort") is not None:
                req["reasoning_effort"] = value["effort"]
        elif name == "text":
            _format(value.get("format") or {}, req)
        elif name == "tools":
            _tools_to_chat(body, req)
        elif name not in READ:
            dropped.append(name)
    if dropped:
        chat.drop(NAME, dropped, "served by OpenAI models only")
    return req


_SAME = frozenset(("temperature", "top_p", "user", "safety_identifier"))


def _format(fmt: dict[str, Any], req: ChatRequest) -> None:
    if fmt.get("type") == "json_object":
        req["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        req["response_format"] = {"type": "json_schema", "json_schema": schema}


def _message(item: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    role, content = item["role"], item["content"]
    if isinstance(content, str):
        messages.append({"role": role, "content": content})
        return
    if role == "assistant":
        text = "".join(p["text"] if p["type"] == "output_text" else p["refusal"] for p in content)
        messages.append({"role": "assistant", "content": text})
        return
    parts = [_part(p) for p in content]
    if role != "user" or all(p["type"] == "text" for p in parts):
        messages.append({"role": role, "content": "\n".join(p.get("text", "") for p in parts)})
    else:
        messages.append({"role": role, "content": parts})


def _part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "input_text":
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        # by file_id only for OpenAI (untranslatable says so); the internal request still needs vision
        image: dict[str, Any] = {"url": part.get("image_url") or f"openai-file:{part.get('file_id')}"}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if not isinstance(part.get("file_data"), str):
        return {"type": "file", "file": {"file_id": part.get("file_id") or part.get("file_url")}}
    return {"type": "file", "file": {"file_data": part["file_data"], "filename": part.get("filename") or "file"}}


def _tools_to_chat(body: dict[str, Any], req: ChatRequest) -> None:
    tools = []
    for tool in body.get("tools") or ():
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        tools.append({"type": "function", "function": fn})
    if not tools:
        return
    req["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        req["tool_choice"] = choice
    elif isinstance(choice, dict):
        req["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if body.get("parallel_tool_calls") is not None:
        req["parallel_tool_calls"] = body["parallel_tool_calls"]


def as_openai_input(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items as input for OpenAI's /v1/responses: without the gateway's ids and statuses (OpenAI
    would look ids up in its own store), assistant text as a plain message, reasoning left out (it
    may come from another provider, and OpenAI resolves its own only by id)."""
    out = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning":
            continue
        if kind == "message" and item["role"] == "assistant" and isinstance(item["content"], list):
            text = "".join(p.get("text") or p.get("refusal") or "" for p in item["content"])
            out.append({"role": "assistant", "content": text})
            continue
        out.append({k: v for k, v in item.items() if k not in ("id", "status")})
    return out


def dumps_items(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(items)
