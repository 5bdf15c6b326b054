"""A fake OpenAI-compatible server whose every answer is two tool calls, streamed the way OpenAI
streams them (name first, arguments in fragments), for the cache's tool-call replay tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

MODEL = "tool-model"
CALLS = [("call_w1", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']), ("call_t2", "get_time", ['{"tz": "CET"}'])]
USAGE = {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}


@dataclass
class ToolState:
    requests: list[dict[str, Any]] = field(default_factory=list)


def create_app(state: ToolState) -> Starlette:
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        state.requests.append(body)
        base = {"id": "chatcmpl-tools", "created": 1700000000, "model": MODEL}
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": "".join(a)}} for i, n, a in CALLS
                ],
            }
            return Response(
                orjson.dumps(
                    {
                        **base,
                        "object": "chat.completion",
                        "usage": USAGE,
                        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                    }
                ),
                media_type="application/json",
            )
        return StreamingResponse(_stream(base, body), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def _stream(base: dict[str, Any], body: dict[str, Any]):
    base = {**base, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (
            b"data: "
            + orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            + b"\n\n"
        )

    yield chunk({"role": "assistant", "content": None})
    for n, (call_id, name, parts) in enumerate(CALLS):
        yield chunk(
            {
                "tool_calls": [
                    {"index": n, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                ]
            }
        )
        for part in parts:
            yield chunk({"tool_calls": [{"index": n, "function": {"arguments": part}}]})
    yield chunk({}, "tool_calls")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": USAGE}) + b"\n\n"
    yield b"data: [DONE]\n\n"
