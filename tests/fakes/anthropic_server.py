"""A fake Anthropic Messages API that speaks the real wire format and refuses what the real API refuses.

Requests are validated with pydantic over the anthropic SDK's own MessageCreateParams TypedDicts
(its lazy Iterable fields forced, unknown top-level fields refused), plus the rules the types do not
carry: x-api-key / anthropic-version headers, first turn from the user, strict user/assistant
alternation, non-empty text, tool_use ids and their tool_result answers, thinking budgets, and the
sampling rules of newer models. Answers are built from the request (echo, tool call, JSON, thinking).

The model name picks a failure: fail-<status>, overloaded (529), stream-error (error event after the
first text), cut-stream (the connection drops mid-stream).
"""

from __future__ import annotations

import re
import typing
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming, MessageCreateParamsStreaming

API_KEY = "sk-ant-test-0123456789"
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
# The SDK dropped temperature/top_p/top_k from its types (anthropic 1.0) but the API still takes them
# on models that sample; they are checked by hand below.
_SAMPLING = {"temperature", "top_p", "top_k"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class FakeState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def error(status: int, message: str, type_: str | None = None) -> Response:
    body = {
        "type": "error",
        "error": {"type": type_ or _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": "req_fake",
    }
    return Response(
        orjson.dumps(body),
        status,
        media_type="application/json",
        headers={"retry-after": "1"} if status == 429 else None,
    )


def _force(value: Any) -> Any:
    """Consume pydantic's lazy ValidatorIterators so nested validation errors surface now."""
    if isinstance(value, Iterator):  # pydantic's ValidatorIterator, not importable by name
        return [_force(v) for v in value]
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_force(v) for v in value]
    return value


def _version(model: str) -> tuple[int, int]:
    numbers = [int(t) for t in model.split("-") if t.isdigit() and len(t) < 8]
    return (numbers[0], numbers[1] if len(numbers) > 1 else 0) if numbers else (99, 0)


class Validator:
    def __init__(self) -> None:
        self.plain = TypeAdapter(MessageCreateParamsNonStreaming)
        self.streaming = TypeAdapter(MessageCreateParamsStreaming)
        self.fields = set(typing.get_type_hints(MessageCreateParamsStreaming)) | _SAMPLING

    def check(self, body: dict[str, Any]) -> str | None:
        """The API's error message for this body, or None when it is acceptable."""
        unknown = sorted(set(body) - self.fields)
        if unknown:
            return f"{unknown[0]}: Extra inputs are not permitted"
        try:
            _force((self.streaming if body.get("stream") else self.plain).validate_python(body))
        except ValidationError as exc:
            first = exc.errors()[0]
            return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return self._rules(body)

    def _rules(self, body: dict[str, Any]) -> str | None:
        version = _version(body["model"])
        thinking = body.get("thinking") or {}
        if version >= (4, 7) and "temperature" in body:
            return "`temperature` is deprecated for this model."
        if version >= (4, 0) and "temperature" in body and "top_p" in body:
            return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
        if thinking.get("type") == "enabled":
            if version >= (4, 7):
                return '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
            if thinking["budget_tokens"] < 1024:
                return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            if thinking["budget_tokens"] >= body["max_tokens"]:
                return "`max_tokens` must be greater than `thinking.budget_tokens`."
        if thinking.get("type") == "adaptive" and version < (4, 6):
            return "adaptive thinking is not supported on this model"
        if thinking.get("type") in ("enabled", "adaptive"):
            if "temperature" in body and body["temperature"] != 1:
                return "`temperature` may only be set to 1 when thinking is enabled."
            if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
                return "Thinking may not be enabled when tool_choice forces tool use."
        names = {t.get("name") for t in body.get("tools") or ()}
        choice = body.get("tool_choice")
        if choice and choice.get("type") == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: tool '{choice.get('name')}' not found in tools"
        if body.get("stop_sequences") and any(not s.strip() for s in body["stop_sequences"]):
            return "stop_sequences: each stop sequence must contain non-whitespace"
        return self._messages(body["messages"], body)

    @staticmethod
    def _messages(messages: list[dict[str, Any]], body: dict[str, Any]) -> str | None:
        if not messages:
            return "messages: at least one message is required"
        if messages[0]["role"] != "user":
            return 'messages: first message must use the "user" role'
        pending: set[str] = set()
        for i, msg in enumerate(messages):
            if i and msg["role"] == messages[i - 1]["role"]:
                return f'messages: roles must alternate between "user" and "assistant", but found multiple "{msg["role"]}" roles in a row'
            content = msg["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not blocks:
                return f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
            if pending and results != pending:
                return f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(sorted(pending - results))}"
            if not pending and results:
                return f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {sorted(results)[0]}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            if results and blocks[0].get("type") != "tool_result":
                return f"messages.{i}: tool_result blocks must come first in the user message"
            pending = set()
            for j, block in enumerate(blocks):
                if block.get("type") == "text" and not block["text"]:
                    return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                if block.get("type") == "tool_use":
                    if msg["role"] != "assistant":
                        return f"messages.{i}.content.{j}: tool_use blocks are only allowed in assistant messages"
                    if not _TOOL_ID.match(block["id"]):
                        return f"messages.{i}.content.{j}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                    pending.add(block["id"])
            if i == len(messages) - 1 and msg["role"] == "assistant":
                last = blocks[-1]
                if last.get("type") == "text" and last["text"] != last["text"].rstrip():
                    return "messages: final assistant content cannot end with trailing whitespace"
        thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        if thinking:
            for msg in reversed(messages):
                if msg["role"] == "assistant":
                    blocks = msg["content"] if isinstance(msg["content"], list) else []
                    if any(b.get("type") == "tool_use" for b in blocks) and blocks[0].get("type") not in (
                        "thinking",
                        "redacted_thinking",
                    ):
                        return (
                            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                            "`tool_use`. When `thinking` is enabled, a final `assistant` message must start "
                            "with a thinking block."
                        )
                    break
        return None


def sample(schema: dict[str, Any]) -> Any:
    """A value that fits a JSON schema (enough for the fakes' answers)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample(schema[key][0])
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {name: sample(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample(schema.get("items") or {"type": "string"})]
    return {"string": "Paris", "integer": 3, "number": 1.5, "boolean": True, "null": None}.get(kind, "x")


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The Message the fake model produces for a valid request."""
    messages = body["messages"]
    last = messages[-1]
    blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
    answered_tools = any(b.get("type") == "tool_result" for b in blocks)
    text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        content.append(
            {"type": "thinking", "thinking": "Let me think about this.", "signature": "EqQBCkYIARgCKkBzaWc="}
        )
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    stop = "end_turn"
    if tools and not answered_tools and choice.get("type") != "none":
        forced = choice.get("name") if choice.get("type") == "tool" else None
        wanted = [t for t in tools if t["name"] == forced] or tools[:2]
        if choice.get("disable_parallel_tool_use"):
            wanted = wanted[:1]
        for k, tool in enumerate(wanted):
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_01Fake{k}{len(messages)}",
                    "name": tool["name"],
                    "input": sample(tool["input_schema"]),
                }
            )
        stop = "tool_use"
    elif (body.get("output_config") or {}).get("format"):
        content.append(
            {"type": "text", "text": orjson.dumps(sample(body["output_config"]["format"]["schema"])).decode()}
        )
    else:
        content.append({"type": "text", "text": f"You said: {text}" if text else "Thanks for the results."})
    cached = 1024 if body.get("system") else 0
    return {
        "id": "msg_01FakeAnthropic",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 25,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": 12,
            "output_tokens_details": {"thinking_tokens": 5} if content[0]["type"] == "thinking" else None,
        },
    }


def events(message: dict[str, Any], *, fail: str | None = None) -> list[bytes]:
    """The SSE events of a streamed Message, split the way the API splits them."""

    def ev(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"

    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    out = [ev("message_start", {"message": start}), ev("ping", {})]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            out.append(ev("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}}))
            words = block["text"].split(" ")
            for k, word in enumerate(words):
                out.append(
                    ev(
                        "content_block_delta",
                        {
                            "index": i,
                            "delta": {"type": "text_delta", "text": word + (" " if k < len(words) - 1 else "")},
                        },
                    )
                )
                if fail == "stream-error" and k == 0:
                    out.append(ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
                    return out
                if fail == "cut-stream" and k == 0:
                    return out
        elif block["type"] == "tool_use":
            out.append(ev("content_block_start", {"index": i, "content_block": {**block, "input": {}}}))
            raw = orjson.dumps(block["input"]).decode()
            out.append(
                ev("content_block_delta", {"index": i, "delta": {"type": "input_json_delta", "partial_json": ""}})
            )
            for k in range(0, len(raw), 7):
                out.append(
                    ev(
                        "content_block_delta",
                        {"index": i, "delta": {"type": "input_json_delta", "partial_json": raw[k : k + 7]}},
                    )
                )
        elif block["type"] == "thinking":
            out.append(
                ev(
                    "content_block_start",
                    {"index": i, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
                )
            )
            out.append(
                ev(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}},
                )
            )
            out.append(
                ev(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "signature_delta", "signature": block["signature"]}},
                )
            )
        out.append(ev("content_block_stop", {"index": i}))
    usage = {k: v for k, v in message["usage"].items() if k in ("output_tokens", "output_tokens_details")}
    out.append(
        ev("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}, "usage": usage})
    )
    out.append(ev("message_stop", {}))
    return out


def create_app(state: FakeState) -> Starlette:
    validator = Validator()

    async def messages(request: Request) -> Response:
        key = request.headers.get("x-api-key")
        if key != API_KEY:
            return error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "anthropic-version: header is required")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "There was an issue with your request body: invalid JSON")
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        model = str(body.get("model", ""))
        if model.startswith("fail-") and model[5:].isdigit():
            return error(int(model[5:]), f"fake failure {model[5:]}")
        if model == "overloaded":
            return error(529, "Overloaded")
        problem = validator.check(body)
        if problem:
            state.rejected.append(problem)
            return error(400, problem)
        message = answer(body)
        if not body.get("stream"):
            return Response(orjson.dumps(message), media_type="application/json")
        fail = model if model in ("stream-error", "cut-stream") else None
        chunks = events(message, fail=fail)

        async def gen() -> AsyncIterator[bytes]:
            for piece in chunks:
                yield piece

        return StreamingResponse(gen(), media_type="text/event-stream")

    count_fields = set(typing.get_type_hints(MessageCountTokensParams))

    async def count_tokens(request: Request) -> Response:
        if request.headers.get("x-api-key") != API_KEY:
            return error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "anthropic-version: header is required")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "There was an issue with your request body: invalid JSON")
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        unknown = sorted(set(body) - count_fields)
        if unknown:
            return error(400, f"{unknown[0]}: Extra inputs are not permitted")
        problem = Validator._messages(body.get("messages") or [], body)
        if problem:
            return error(400, problem)
        # A count that differs from the gateway's own estimate, so a test can tell who counted.
        return Response(
            orjson.dumps({"input_tokens": 7 + len(orjson.dumps(body["messages"])) // 3}), media_type="application/json"
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        ]
    )
