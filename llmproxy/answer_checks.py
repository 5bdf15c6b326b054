"""Cheap checks on an answer, for the cascade: was it cut, empty, a refusal, or JSON / tool arguments
that do not match what the request asked for?

Pure functions over OpenAI-shaped dicts; microseconds for ordinary answers. The JSON-schema check is a
small hand-written subset (type, properties, required, additionalProperties, items, enum, const,
anyOf/oneOf, string/array/number bounds); keywords outside it pass, so a valid answer is never failed
for a schema feature this module does not know.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

ChatRequest = dict[str, Any]
Message = dict[str, Any]

# Openings of a refusal, matched on the start of a short answer only (a long answer that opens with an
# apology is usually an answer).
REFUSALS = (
    "i'm sorry, but i can",
    "i am sorry, but i can",
    "sorry, but i can",
    "sorry, i can't",
    "sorry, i cannot",
    "i can't help with",
    "i cannot help with",
    "i can't assist",
    "i cannot assist",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i won't be able to help",
    "i can't provide",
    "i cannot provide",
    "i'm sorry, i can't",
    "i’m sorry, but i can",
    "i can’t help",
)
REFUSAL_MAX_CHARS = 400
MAX_DEPTH = 32
HEAD_EVENTS, TAIL_EVENTS = 64, 8  # a plain-text stream is checked on its first and last events only


def failure(body: ChatRequest, message: Message, finish_reason: str | None, partial: bool = False) -> str | None:
    """Why the answer fails the cheap checks ("length", "empty", "refusal", "invalid_json",
    "invalid_tool_arguments"), or None when it passes. `partial`: the message holds only the start and
    end of a longer text (see stream_message), so it is long enough not to be a refusal."""
    if finish_reason == "length":
        return "length"
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    calls = message.get("tool_calls") or []
    if message.get("refusal"):
        return "refusal"
    if not text.strip() and not calls:
        return "empty"
    if calls:
        return None if tool_calls_valid(body, calls) else "invalid_tool_arguments"
    if not partial and len(text) <= REFUSAL_MAX_CHARS and text.lstrip().lower().startswith(REFUSALS):
        return "refusal"
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        value = _parse(text)
        if not isinstance(value, dict):
            return "invalid_json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict) and not matches(value, schema):
            return "invalid_json"
    return None


def tool_calls_valid(body: ChatRequest, calls: list[Any]) -> bool:
    """Every call names a tool of the request and its arguments are a JSON object matching its parameters."""
    schemas: dict[str, Any] = {}
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            schemas[fn["name"]] = fn.get("parameters")
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or (schemas and fn.get("name") not in schemas):
            return False
        args = _parse(fn.get("arguments") or "{}") if isinstance(fn.get("arguments"), str) else None
        if not isinstance(args, dict):
            return False
        name = fn.get("name")
        schema = schemas.get(name) if isinstance(name, str) else None
        if isinstance(schema, dict) and not matches(args, schema):
            return False
    return True


def _parse(text: str) -> Any:
    text = text.strip()
    if text.startswith("```"):  # a fenced answer: the JSON inside the fence
        text = text.strip("`").removeprefix("json").strip()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def matches(value: Any, schema: Any, depth: int = 0) -> bool:
    """Whether `value` satisfies the JSON-schema subset of `schema`."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return True
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            return False
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and not any(matches(value, o, depth + 1) for o in options):
            return False
    if isinstance(value, dict):
        declared = schema.get("properties")
        props: dict[str, Any] = declared if isinstance(declared, dict) else {}
        for name in schema.get("required") or ():
            if name not in value:
                return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        return all(matches(v, props[k], depth + 1) for k, v in value.items() if k in props)
    if isinstance(value, list):
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            return False
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            return False
        items = schema.get("items")
        return all(matches(v, items, depth + 1) for v in value) if isinstance(items, dict) else True
    if isinstance(value, str):
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            return False
        return not (isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, (int, float)) and value < low:
            return False
        return not (isinstance(high, (int, float)) and value > high)
    return True


class StreamAnswer(NamedTuple):
    message: Message  # the assistant message of choice 0
    finish_reason: str | None
    errored: bool  # an error event came
    partial: bool  # only the first and last events were read (a long plain-text answer)


def needs_whole_answer(body: ChatRequest) -> bool:
    """JSON and tool calls are checked whole; plain text only needs its start and its end."""
    fmt = body.get("response_format")
    return bool(body.get("tools")) or (isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"))


def stream_message(pieces: list[bytes], whole: bool = True) -> StreamAnswer:
    """The answer rebuilt from the SSE bytes of a chat.completions stream (OpenAI wire format). With
    whole=False only the first HEAD_EVENTS and last TAIL_EVENTS data events are parsed (~50x less work
    on a long answer): enough for the finish reason, emptiness and a refusal's opening."""
    lines = [line for line in b"".join(pieces).split(b"\n") if line.startswith(b"data:")]
    partial = not whole and len(lines) > HEAD_EVENTS + TAIL_EVENTS
    if partial:
        lines = lines[:HEAD_EVENTS] + lines[-TAIL_EVENTS:]
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    errored = False
    refusal: list[str] = []
    for line in lines:
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            errored = True
            continue
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(
                    call.get("index", 0), {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    message: Message = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if refusal:
        message["refusal"] = "".join(refusal)
    return StreamAnswer(message, finish, errored, partial)
