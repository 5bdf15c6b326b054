"""A fake OpenAI chat completions server whose models answer badly on purpose, for the cascade tests.

It speaks the real wire format (JSON completions, SSE chunks with tool-call deltas, the usage chunk
when stream_options.include_usage is set) and rejects a missing or wrong key like the real API.
`FlawedState.flaws` maps an upstream model name to a flaw; every other model answers well: text, a
JSON object matching the requested schema, or a call to the first tool with valid arguments.

Flaws: "length" (cut at max_tokens: finish_reason "length"), "empty", "refusal", "bad_json" (not
JSON), "schema" (JSON missing a required field / with a wrong type), "bad_tool" (tool arguments that
do not match the tool's parameters), "error" (a 503).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-upstream-test-key-0123456789"
USAGE = {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}


@dataclass
class FlawedState:
    flaws: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    chunk_delay_s: float = 0.0  # pause before each streamed event after the first


def example(schema: Any) -> Any:
    """A small value that satisfies `schema` (the subset the tests use)."""
    if not isinstance(schema, dict):
        return "x"
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {k: example(v) for k, v in (schema.get("properties") or {}).items()}
    return {"array": [], "string": "ok", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "x")


def _answer(body: dict[str, Any], flaw: str | None) -> tuple[dict[str, Any], str]:
    """(assistant message, finish_reason) for this request and flaw."""
    tools = body.get("tools") or []
    fmt = body.get("response_format") or {}
    if flaw == "length":
        return {"role": "assistant", "content": "The answer starts here and then"}, "length"
    if flaw == "empty":
        return {"role": "assistant", "content": ""}, "stop"
    if flaw == "refusal":
        return {"role": "assistant", "content": "I'm sorry, but I can't help with that."}, "stop"
    if tools:
        fn = tools[0]["function"]
        args = example(fn.get("parameters")) if flaw != "bad_tool" else {"unexpected": [1, 2]}
        if flaw == "bad_tool" and not (fn.get("parameters") or {}).get("required"):
            args = "not an object"
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_fake1",
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": orjson.dumps(args).decode()},
                }
            ],
        }, "tool_calls"
    if fmt.get("type") in ("json_object", "json_schema"):
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object", "properties": {"answer": {}}}
        if flaw == "bad_json":
            return {"role": "assistant", "content": '{"answer": "unterminated'}, "stop"
        value = example(schema)
        if flaw == "schema":
            value = {"wrong": 1}
        return {"role": "assistant", "content": orjson.dumps(value).decode()}, "stop"
    return {"role": "assistant", "content": f"A good answer from {body['model']}."}, "stop"


def create_app(state: FlawedState) -> Starlette:
    async def chat(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = orjson.loads(await request.body())
        state.requests.append(body)
        if not body.get("messages"):
            return _error(
                400, "Missing required parameter: 'messages'.", "invalid_request_error", "missing_required_parameter"
            )
        flaw = state.flaws.get(body.get("model", ""))
        if flaw == "error":
            return _error(503, "The server is overloaded.", "server_error", None)
        message, finish = _answer(body, flaw)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _stream(body["model"], message, finish, include_usage, state.chunk_delay_s),
                media_type="text/event-stream",
            )
        return Response(
            orjson.dumps(
                {
                    "id": "chatcmpl-flawed",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {**message, "refusal": None}, "logprobs": None, "finish_reason": finish}
                    ],
                    "usage": USAGE,
                }
            ),
            media_type="application/json",
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def _error(status: int, message: str, type_: str, code: str | None) -> Response:
    return Response(
        orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}),
        status,
        media_type="application/json",
    )


async def _stream(model: str, message: dict[str, Any], finish: str, include_usage: bool, delay_s: float):
    base = {"id": "chatcmpl-flawed", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return (
            b"data: "
            + orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]})
            + b"\n\n"
        )

    yield chunk({"role": "assistant", "content": ""})
    text = message.get("content") or ""
    for i in range(0, len(text), 8):
        if delay_s:
            await asyncio.sleep(delay_s)
        yield chunk({"content": text[i : i + 8]})
    for call in message.get("tool_calls") or ():
        args = call["function"]["arguments"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        for i in range(0, len(args), 8):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]})
    yield chunk({}, finish)
    if include_usage:
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": USAGE}) + b"\n\n"
    yield b"data: [DONE]\n\n"
