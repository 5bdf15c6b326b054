"""OpenAI chat-completions building blocks shared by the adapters that translate (Anthropic, Gemini).

Reading the parts of an OpenAI request the same way everywhere (message text, stop sequences,
the output-token limit, the fields nobody upstream can honour) and writing the OpenAI response
shapes (completion, chunk, usage) in one place keeps the two translations symmetrical.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..context import ChatChunk, ChatCompletion, ChatRequest, Usage
from ..errors import InvalidRequest

log = logging.getLogger("llmproxy.providers")

# Used when neither the client nor the registry gives an output limit and the provider needs one.
SAFE_MAX_TOKENS = 4096

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def push_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Append a turn, merging it into the previous one of the same role: both providers require
    user and assistant turns to alternate, where OpenAI allows several in a row."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def tool_arguments(raw: Any, param: str) -> dict[str, Any]:
    """An assistant tool call's `arguments` (a JSON object string in OpenAI's format) as a dict."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest(f"{param} must be a JSON object string", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param} must encode a JSON object", param=param)
    return value


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def now() -> int:
    return int(time.time())


def drop(provider: str, fields: Iterable[str], why: str = "not supported") -> None:
    """Note request fields left out of the upstream call. Debug level: a client library that sends
    defaults (e.g. logprobs=false) must not fill the logs."""
    names = sorted(fields)
    if names:
        log.debug("%s: request fields dropped (%s): %s", provider, why, ", ".join(names))


def text_of(content: Any, *, param: str) -> str:
    """The text of a message content that may only hold text (system, developer, tool)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "refusal"):
                raise InvalidRequest(f"{param}[{i}] must be a text part here", param=f"{param}[{i}]")
            texts.append(str(part.get("text") if part.get("type") != "refusal" else part.get("refusal") or ""))
        return "\n".join(texts)
    raise InvalidRequest(f"{param} must be a string or a list of text parts", param=param)


def stop_list(req: ChatRequest) -> list[str] | None:
    stop = req.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop] if stop else None
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s] or None
    raise InvalidRequest("stop must be a string or a list of strings", param="stop")


def requested_max_tokens(req: ChatRequest) -> int | None:
    """max_completion_tokens (the current name) wins over max_tokens (the deprecated one)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = req.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"{name} must be a positive integer", param=name)
        return value
    return None


def choice_count(req: ChatRequest) -> int:
    n = req.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidRequest("n must be a positive integer", param="n")
    return n


def reasoning_effort(req: ChatRequest) -> str | None:
    effort = req.get("reasoning_effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in REASONING_EFFORTS:
        raise InvalidRequest(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}", param="reasoning_effort"
        )
    return effort


def tool_choice(req: ChatRequest) -> tuple[str, str | None]:
    """("auto" | "none" | "required" | "named", function name when named)."""
    choice = req.get("tool_choice")
    if choice is None:
        return "auto", None
    if choice in ("auto", "none", "required"):
        return choice, None
    if isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return "named", fn["name"]
    raise InvalidRequest(
        "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}",
        param="tool_choice",
    )


def functions(req: ChatRequest) -> list[dict[str, Any]]:
    """The request's function tools as {name, description?, parameters?, strict?} dicts."""
    tools = req.get("tools")
    if not tools:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict):
            raise InvalidRequest(f"tools[{i}] must be a function tool", param=f"tools[{i}]")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f"tools[{i}].function.name is required", param=f"tools[{i}].function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest(
                f"tools[{i}].function.parameters must be an object", param=f"tools[{i}].function.parameters"
            )
        out.append(fn)
    return out


def response_format(req: ChatRequest) -> tuple[str, dict[str, Any] | None, str]:
    """("text" | "json_object" | "json_schema", the schema, its name)."""
    rf = req.get("response_format")
    if rf is None:
        return "text", None, ""
    kind = rf.get("type") if isinstance(rf, dict) else None
    if kind in ("text", "json_object"):
        return kind, None, ""
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest(
                "response_format.json_schema.schema must be an object", param="response_format.json_schema.schema"
            )
        return kind, spec["schema"], str(spec.get("name") or "response")
    raise InvalidRequest(
        "response_format.type must be 'text', 'json_object' or 'json_schema'", param="response_format.type"
    )


def tool_call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call id -> function name, over the assistant messages of a history."""
    names: dict[str, str] = {}
    for msg in messages:
        if msg.get("role") == "assistant":
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(call.get("id"), str):
                    names[call["id"]] = str(fn.get("name", ""))
    return names


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> Usage:
    out: Usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    return out


def completion(
    id_: str, model: str, choices: list[dict[str, Any]], usage_: Usage | None, created: int | None = None
) -> ChatCompletion:
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created or now(),
        "model": model,
        "choices": choices,
        "usage": usage_,
        "system_fingerprint": None,
    }


def message_choice(
    index: int,
    text: str | None,
    tool_calls: list[dict[str, Any]],
    finish: str | None,
    reasoning: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning  # the de facto field (DeepSeek, vLLM) for thinking text
    if extra:
        message.update(extra)
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def chunk(
    id_: str, model: str, created: int, delta: dict[str, Any], *, index: int = 0, finish: str | None = None
) -> ChatChunk:
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(id_: str, model: str, created: int, usage_: Usage) -> ChatChunk:
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_,
    }


def tool_call(id_: str, name: str, arguments: str, index: int | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
    if index is not None:
        call["index"] = index
    return call
