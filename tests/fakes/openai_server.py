"""A fake OpenAI chat completions server that speaks the real wire format and rejects what the real
API rejects (no key, wrong key, missing messages, unknown model).

The model name picks a behaviour, so a test reaches it through the gateway as `openai/<name>`:
  any known name     a normal answer (stream or not) echoing the last user message
  fail-<status>      that HTTP status with OpenAI's error body (429 carries retry-after: 1)
  slow-<ms>          answers after a delay
  endless            a stream that never ends, for client-disconnect tests
  cut-stream         a stream that breaks off before [DONE]
  error-first        a stream whose first event after the role chunk is an error event
  error-after-text   a stream that sends content, then an error event
  redirect           a 307 to /v1/redirect-target, which counts who follows it
Every answer sets a cookie, as Cloudflare in front of the real API does (`__cf_bm`); the gateway
must never send one back.
A last user message "please cut" makes any model's stream break off before its usage and [DONE].
With `tools` (and no tool result last, tool_choice not "none") the answer calls the first two tools
(one when parallel_tool_calls is false, the named one when forced), arguments made from their
schemas and streamed in small pieces; tool definitions and tool messages are checked as OpenAI does.
The known names are the registry's OpenAI models plus a few test names. /v1/responses is served
by openai_responses.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import openai_legacy, openai_responses

API_KEY = "sk-upstream-test-key-0123456789"
_REGISTRY = Path(__file__).resolve().parents[2] / "registry" / "models.json"
MODELS = {m["provider_model"] for m in orjson.loads(_REGISTRY.read_bytes())["models"] if m["provider"] == "openai"} | {
    "some-new-model",
    "fake-model",
    "llama3.3",
    "endless",
    "cut-stream",
    "error-first",
    "error-after-text",
}


# What Cloudflare sets on the real API's answers (its bot-management cookie), abridged.
_COOKIE = {"set-cookie": "__cf_bm=fake-bot-token; path=/; HttpOnly; SameSite=None"}


async def sleep_at_least(seconds: float) -> None:
    """Sleep `seconds` by the clock the gateway times requests with: a loop's timer may fire up to
    a millisecond early (libuv counts in whole milliseconds from its cached time)."""
    until = time.perf_counter() + seconds
    await asyncio.sleep(seconds)
    left = until - time.perf_counter()
    if left > 0:  # woken early: the rest, and the millisecond the timer may round away
        await asyncio.sleep(left + 0.001)


@dataclass
class FakeState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    disconnects: int = 0
    redirected: int = 0
    chunk_delay_s: float = 0.0
    embedding_requests: list[dict[str, Any]] = field(default_factory=list)  # openai_legacy.py's routes
    completion_requests: list[dict[str, Any]] = field(default_factory=list)


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def create_app(state: FakeState) -> Starlette:
    async def chat(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "You didn't provide an API key.", "invalid_request_error", None)
        if auth != f"Bearer {API_KEY}":
            return _error(
                401, f"Incorrect API key provided: {auth[7:10]}***.", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        model = body.get("model")
        if not body.get("messages"):
            return _error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
                "messages",
            )
        if isinstance(model, str) and model.startswith("fail-"):
            status = int(model.split("-")[1])
            headers = {"retry-after": "1"} if status == 429 else None
            type_ = "requests" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
            return _error(
                status,
                f"fake failure {status}",
                type_,
                "rate_limit_exceeded" if status == 429 else None,
                headers=headers,
            )
        if model == "redirect":
            return Response(status_code=307, headers={"location": "/v1/redirect-target"})
        if isinstance(model, str) and model.startswith("slow-"):
            await sleep_at_least(int(model.split("-")[1]) / 1000)
        elif model in openai_legacy.NOT_CHAT:
            return _error(
                404,
                "This is not a chat model and thus not supported in the v1/chat/completions "
                "endpoint. Did you mean to use v1/completions?",
                "invalid_request_error",
                None,
                "model",
            )
        elif model not in MODELS:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        if body.get("reasoning_effort") is not None and str(model).startswith(("gpt-4", "gpt-3")):
            return _error(
                400,
                "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                "invalid_request_error",
                "unsupported_parameter",
                "reasoning_effort",
            )
        problem = _check_tools(body)
        if problem:
            return _error(400, problem, "invalid_request_error", None)
        calls = _tool_calls(body)
        if calls:
            if body.get("stream"):
                return StreamingResponse(_stream_calls(body, calls), media_type="text/event-stream")
            return Response(orjson.dumps(_completion(body, None, calls)), media_type="application/json")
        text = _reply(body)
        if body.get("stream"):
            return StreamingResponse(_stream(state, body, text), media_type="text/event-stream", headers=_COOKIE)
        completion = {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{model}-2025-01-01",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 7,
                "total_tokens": 19,
                "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        return Response(orjson.dumps(completion), media_type="application/json", headers=_COOKIE)

    async def redirect_target(request: Request) -> Response:
        state.redirected += 1
        return _error(418, "followed a redirect with the key", "invalid_request_error", None)

    async def authorized(request: Request) -> Response | dict[str, Any]:
        """The key and JSON checks of every route, for the routes in other modules."""
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
        state.headers.append(dict(request.headers))
        return (
            body
            if isinstance(body, dict)
            else _error(400, "The body must be an object.", "invalid_request_error", None)
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/redirect-target", redirect_target, methods=["POST"]),
            *openai_legacy.routes(state, _error, authorized),
            *openai_responses.routes(state),
        ]
    )


def _reply(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            content = message.get("content")
            return f"echo: {content}" if isinstance(content, str) else "echo: parts"
    return "hello"


async def _stream(state: FakeState, body: dict[str, Any], text: str):
    model = body["model"]
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": f"{model}-2025-01-01",
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            payload["usage"] = None
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    try:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if model == "endless":
            while True:
                yield chunk({"content": "tick "})
                await asyncio.sleep(0.05)
        if model == "error-first":
            yield b'data: {"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}}\n\n'
            return
        if model == "error-after-text":
            yield chunk({"content": "partial "})
            yield b'data: {"error": {"message": "broke mid-way", "type": "server_error", "param": null, "code": null}}\n\n'
            return
        words = text.split(" ")
        parts = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        for part in parts:
            if state.chunk_delay_s:
                await asyncio.sleep(state.chunk_delay_s)
            yield chunk({"content": part})
        if model == "cut-stream" or text == "echo: please cut":
            return
        yield chunk({}, "stop")
        if include_usage:
            yield (
                b"data: "
                + orjson.dumps(
                    {
                        **base,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 12,
                            "completion_tokens": len(parts),
                            "total_tokens": 12 + len(parts),
                            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                            "completion_tokens_details": {
                                "reasoning_tokens": 0,
                                "audio_tokens": 0,
                                "accepted_prediction_tokens": 0,
                                "rejected_prediction_tokens": 0,
                            },
                        },
                    }
                )
                + b"\n\n"
            )
        yield b"data: [DONE]\n\n"
    except asyncio.CancelledError:
        state.disconnects += 1
        raise
    except GeneratorExit:
        state.disconnects += 1
        raise


def _check_tools(body: dict[str, Any]) -> str | None:
    """What OpenAI refuses about tools: malformed definitions, a tool message that answers no call
    of the assistant turn before it, tool call arguments that are not a string."""
    names = set()
    for i, tool in enumerate(body.get("tools") or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return f"Invalid value for 'tools[{i}]': expected a function tool with a name."
        if set(fn) - {"name", "description", "parameters", "strict"}:
            return f"Unrecognized request argument supplied: tools[{i}].function.{sorted(set(fn) - {'name', 'description', 'parameters', 'strict'})[0]}"
        names.add(fn["name"])
    answerable: set[str] = set()  # the calls of the last assistant turn
    pending: set[str] = set()  # ...not answered yet
    for i, msg in enumerate(body["messages"]):
        role = msg.get("role")
        if role == "tool":
            if msg.get("tool_call_id") not in answerable:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    f"with 'tool_calls'. (messages[{i}])"
                )
            if not isinstance(msg.get("content"), (str, list)):
                return f"Invalid value for 'messages[{i}].content'."
            pending.discard(msg["tool_call_id"])
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(pending)[0]}"
            )
        answerable = set()
        for call in msg.get("tool_calls") or ():
            if not isinstance(call.get("function", {}).get("arguments"), str):
                return f"Invalid type for 'messages[{i}].tool_calls[].function.arguments': expected a string."
            answerable.add(call["id"])
        pending = set(answerable)
    for name in ("parallel_tool_calls", "tool_choice"):
        if name in body and not body.get("tools"):
            return f"Invalid value for '{name}': only allowed when 'tools' are specified."
    return None


def _tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    from tests.fakes.anthropic_server import sample

    tools = body.get("tools") or []
    choice = body.get("tool_choice") or "auto"
    if not tools or choice == "none" or body["messages"][-1].get("role") == "tool":
        return []
    if isinstance(choice, dict):
        tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
    wanted = tools[:1] if body.get("parallel_tool_calls") is False else tools[:2]
    return [
        {
            "id": f"call_fake{k}",
            "type": "function",
            "function": {
                "name": t["function"]["name"],
                "arguments": orjson.dumps(sample(t["function"].get("parameters") or {})).decode(),
            },
        }
        for k, t in enumerate(wanted)
    ]


def _completion(body: dict[str, Any], text: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{body['model']}-2025-01-01",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "tool_calls": calls,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 40,
            "completion_tokens": 15,
            "total_tokens": 55,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


async def _stream_calls(body: dict[str, Any], calls: list[dict[str, Any]]):
    """Tool calls as OpenAI streams them: per call one chunk with index, id and name, then its
    arguments in pieces; finish_reason tool_calls; the usage chunk if asked."""
    base = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": f"{body['model']}-2025-01-01",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (
            b"data: "
            + orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            + b"\n\n"
        )

    yield chunk({"role": "assistant", "content": None})
    for k, call in enumerate(calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": k,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        args = call["function"]["arguments"]
        for i in range(0, len(args), 5):
            yield chunk({"tool_calls": [{"index": k, "function": {"arguments": args[i : i + 5]}}]})
    yield chunk({}, "tool_calls")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield (
            b"data: "
            + orjson.dumps(
                {**base, "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 15, "total_tokens": 55}}
            )
            + b"\n\n"
        )
    yield b"data: [DONE]\n\n"
