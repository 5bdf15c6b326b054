"""The fake OpenAI upstream's /v1/responses: the Responses API's wire format, as strict as the real one.

Requests are validated with pydantic over the openai SDK's own ResponseCreateParams TypedDicts
(unknown top-level fields refused, as OpenAI refuses them), plus the rules the types do not carry:
the key, a known model, max_output_tokens >= 16, reasoning.effort only on reasoning models, a
function_call_output that answers a call before it (or of the previous response), a
previous_response_id or reasoning item id that this fake stored, tool_choice naming a tool.
Answers are built from the request: an echo of the last user text, function calls made from the
tools' schemas (two, one when parallel_tool_calls is false, the named one when forced), JSON
sampled from a text.format schema; reasoning models add a reasoning item. Streams send the real
event sequence with increasing sequence numbers.

Model names pick failures as in openai_server: fail-<status>, cut-stream (ends before
response.completed), error-first (an `error` event right after response.created).
"""

from __future__ import annotations

import asyncio
import os
import time
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)

FAILING = {"cut-stream", "error-first"}


def _error(status: int, message: str, code: str | None = None, param: str | None = None) -> Response:
    type_ = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Response(
        orjson.dumps(body),
        status,
        media_type="application/json",
        headers={"retry-after": "1"} if status == 429 else None,
    )


def _force(value: Any) -> Any:
    if isinstance(value, Iterator):  # pydantic's lazy ValidatorIterator
        return [_force(v) for v in value]
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_force(v) for v in value]
    return value


def _reasoning_model(model: str) -> bool:
    return model.startswith(("gpt-5", "o1", "o3", "o4"))


class Validator:
    def __init__(self) -> None:
        self.plain = TypeAdapter(ResponseCreateParamsNonStreaming)
        self.streaming = TypeAdapter(ResponseCreateParamsStreaming)
        self.fields = set(typing.get_type_hints(ResponseCreateParamsStreaming))

    def check(self, body: dict[str, Any], stored: dict[str, dict[str, Any]]) -> tuple[int, str, str | None] | None:
        unknown = sorted(set(body) - self.fields)
        if unknown:
            return 400, f"Unrecognized request argument supplied: {unknown[0]}", unknown[0]
        # The SDK's types mark a function tool's `strict` required; the API itself defaults it (true).
        typed = (
            {**body, "tools": [{"strict": True, **t} if t.get("type") == "function" else t for t in body["tools"]]}
            if isinstance(body.get("tools"), list)
            else body
        )
        try:
            _force((self.streaming if body.get("stream") else self.plain).validate_python(typed))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return 400, f"Invalid '{where}': {first['msg']}", where
        tokens = body.get("max_output_tokens")
        if tokens is not None and tokens < 16:
            return (
                400,
                (
                    f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
                    f"but got {tokens} instead."
                ),
                "max_output_tokens",
            )
        if (body.get("reasoning") or {}).get("effort") and not _reasoning_model(body["model"]):
            return (
                400,
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "reasoning.effort",
            )
        calls: set[str] = set()
        previous = body.get("previous_response_id")
        if previous is not None:
            if previous not in stored:
                return 404, f"Previous response with id '{previous}' not found.", "previous_response_id"
            calls = {i["call_id"] for i in stored[previous]["output"] if i["type"] == "function_call"}
        items = body["input"] if isinstance(body.get("input"), list) else []
        known_items = {i["id"] for r in stored.values() for i in r["output"]}
        for k, item in enumerate(items):
            kind = item.get("type", "message")
            if kind == "function_call":
                calls.add(item["call_id"])
            elif kind == "function_call_output" and item["call_id"] not in calls:
                return (
                    400,
                    (f"No tool call found for function call output with call_id {item['call_id']}."),
                    f"input[{k}]",
                )
            elif kind == "reasoning" and item["id"] not in known_items:
                return 404, f"Item with id '{item['id']}' not found.", f"input[{k}]"
        names = {t.get("name") for t in body.get("tools") or () if t.get("type") == "function"}
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name") not in names:
            return 400, f"Tool choice '{choice.get('name')}' not found in 'tools' parameter.", "tool_choice"
        return None


def _id(prefix: str) -> str:
    return prefix + os.urandom(8).hex()


def _last_user_text(body: dict[str, Any]) -> str:
    given = body.get("input")
    if isinstance(given, str):
        return given
    for item in reversed(given or []):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            content = item["content"]
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "input_text")
    return ""


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The Response the fake model produces for a valid request."""
    from tests.fakes.anthropic_server import sample

    model = body["model"]
    output: list[dict[str, Any]] = []
    if _reasoning_model(model):
        output.append({"id": _id("rs_"), "type": "reasoning", "summary": []})
    items = body["input"] if isinstance(body.get("input"), list) else []
    answered = bool(items) and items[-1].get("type") == "function_call_output"
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    choice = body.get("tool_choice") or "auto"
    fmt = (body.get("text") or {}).get("format") or {}
    if tools and not answered and choice != "none":
        if isinstance(choice, dict):
            tools = [t for t in tools if t["name"] == choice["name"]]
        for tool in tools[:1] if body.get("parallel_tool_calls") is False else tools[:2]:
            output.append(
                {
                    "id": _id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": _id("call_"),
                    "name": tool["name"],
                    "arguments": orjson.dumps(sample(tool.get("parameters") or {})).decode(),
                }
            )
    else:
        if fmt.get("type") == "json_schema":
            text = orjson.dumps(sample(fmt["schema"])).decode()
        elif fmt.get("type") == "json_object":
            text = orjson.dumps({"echo": _last_user_text(body)}).decode()
        else:
            text = f"echo: {_last_user_text(body)}" if not answered else "Thanks for the results."
        output.append(
            {
                "id": _id("msg_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        )
    return {
        "id": _id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": f"{model}-2025-01-01",
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": fmt or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 3 if _reasoning_model(model) else 0},
            "total_tokens": 19,
        },
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def events(response: dict[str, Any], model: str) -> Iterator[bytes]:
    """The response as OpenAI streams it."""
    seq = iter(range(10_000))

    def ev(kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(seq), **data}
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    yield ev("response.created", response=opening)
    if model == "error-first":
        yield ev("error", code="server_error", message="The server had an error", param=None)
        return
    yield ev("response.in_progress", response=opening)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield ev(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield ev("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part)
            words = text.split(" ")
            for k, word in enumerate(words):
                yield ev(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=word + (" " if k < len(words) - 1 else ""),
                    logprobs=[],
                )
                if model == "cut-stream":
                    return
            yield ev(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            yield ev(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part={**part, "text": text},
            )
        elif item["type"] == "function_call":
            yield ev(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            args = item["arguments"]
            for k in range(0, len(args), 6):
                yield ev(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=args[k : k + 6],
                )
            yield ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=args,
            )
        else:
            yield ev("response.output_item.added", output_index=index, item=item)
        yield ev("response.output_item.done", output_index=index, item=item)
    yield ev("response.completed", response=response)


def routes(state: Any) -> list[Route]:
    """The /v1/responses routes, recording into the fake OpenAI server's state."""
    from tests.fakes.openai_server import API_KEY, MODELS

    validator = Validator()
    stored: dict[str, dict[str, Any]] = {}

    async def create(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        model = str(body.get("model", ""))
        if model.startswith("fail-") and model[5:].isdigit():
            return _error(
                int(model[5:]), f"fake failure {model[5:]}", "rate_limit_exceeded" if model == "fail-429" else None
            )
        if model not in MODELS and model not in FAILING:
            return _error(
                404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found"
            )
        problem = validator.check(body, stored)
        if problem is not None:
            status, message, param = problem
            return _error(status, message, None, param)
        response = answer(body)
        if body.get("store", True):
            stored[response["id"]] = response
        if not body.get("stream"):
            return Response(orjson.dumps(response), media_type="application/json")

        async def gen() -> AsyncIterator[bytes]:
            for i, piece in enumerate(events(response, model)):
                yield piece
                if i == 0 and model == "error-first":
                    await asyncio.sleep(0.05)  # the failure after the opening, not in the same read

        return StreamingResponse(gen(), media_type="text/event-stream")

    return [Route("/v1/responses", create, methods=["POST"])]
