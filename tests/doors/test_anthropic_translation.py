"""The Messages door's pure translations alone: request checks and translation, the stream state
machine (tool calls above all), the answer and the errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llmproxy.doors import anthropic_request as request
from llmproxy.doors import anthropic_response as response
from llmproxy.doors.anthropic_stream import MessageStream, StreamBroken, message_events, relay
from llmproxy.errors import InvalidRequest, RateLimited, UpstreamUnavailable

BASE = {"model": "gpt-5-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            out.append((name[7:].decode(), orjson.loads(data[6:])))
    return out


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages.0.content.0.type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}]},
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2"}]},
                ]
            },
            "messages.2.content.0",
        ),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({"tool_choice": {"type": "tool", "name": "g"}}, "tool_choice.name"),
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "thinking.enabled.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "max_tokens"),
    ],
)
def test_check_refuses_what_anthropic_refuses(change: dict[str, Any], param: str) -> None:
    body = {**BASE, **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidRequest) as info:
        request.check(body)
    assert info.value.param == param and info.value.message.startswith(param)


def test_to_chat_translates_every_part() -> None:
    body = {
        "model": "m",
        "max_tokens": 10000,
        "stream": True,
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "top_k": 4,
        "metadata": {"user_id": "u1"},
        "system": [
            {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "B"},
        ],
        "thinking": {"type": "enabled", "budget_tokens": 9000},
        "tools": [
            {"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1]}},
                    {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [{"type": "text", "text": "bad"}],
                    },
                    {"type": "text", "text": "go on"},
                ],
            },
        ],
    }
    request.check(body)
    chat = request.to_chat(body)
    assert chat["messages"][0] == {"role": "system", "content": "A\n\nB"}
    assert chat["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}
    assert chat["messages"][2] == {
        "role": "assistant",
        "content": "calling",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":[1]}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ],
    }
    assert chat["messages"][3:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: bad"},
        {"role": "user", "content": "go on"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["reasoning_effort"] == "medium" and chat["stop"] == ["END"] and chat["user"] == "u1"
    assert chat["max_completion_tokens"] == 10000 and chat["stream_options"] == {"include_usage": True}
    assert "top_k" not in chat and "cache_control" not in orjson.dumps(chat).decode()


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call(index: int, id_: str | None = None, name: str | None = None, args: str = "") -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id_:
        piece["id"], piece["function"]["name"] = id_, name
    return chunk({"tool_calls": [piece]})


def run(chunks: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    machine = MessageStream("m")
    out: list[bytes] = []
    for c in chunks:
        out += machine.feed(c)
    if usage:
        out += machine.feed({"choices": [], "usage": usage})
    out += machine.end()
    return events(b"".join(out))


def test_parallel_tool_calls_each_get_a_block_with_their_pieces_in_order() -> None:
    got = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Let me check."}),
            call(0, "call_a", "weather"),
            call(0, args='{"ci'),
            call(0, args='ty": "Paris"}'),
            call(1, "call_b", "time", '{"tz"'),
            call(1, args=': "CET"}'),
            chunk({}, "tool_calls"),
        ],
        {"prompt_tokens": 30, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 10}},
    )
    names = [name for name, _ in got]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [d for n, d in got if n == "content_block_start"]
    assert [s["content_block"].get("id") for s in starts] == [None, "call_a", "call_b"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    for index, expected in ((1, {"city": "Paris"}), (2, {"tz": "CET"})):
        pieces = [d["delta"]["partial_json"] for n, d in got if n == "content_block_delta" and d["index"] == index]
        assert orjson.loads("".join(pieces)) == expected
    delta = got[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
    }


def test_tool_calls_stop_for_tool_use_even_when_the_provider_says_stop() -> None:
    got = run([call(0, "c1", "f", "{}"), chunk({}, "stop")])
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_arguments_before_the_name_wait_for_it() -> None:
    got = run([call(0, args='{"a"'), call(0, "c1", "f", ": 1}"), chunk({}, "tool_calls")])
    pieces = [d["delta"]["partial_json"] for n, d in got if n == "content_block_delta"]
    assert pieces == ['{"a"', ": 1}"]


def test_interleaved_arguments_end_in_an_error_not_a_wrong_call() -> None:
    machine = MessageStream("m")
    machine.feed(call(0, "c1", "f", '{"a":'))
    machine.feed(call(1, "c2", "g", "{}"))
    with pytest.raises(StreamBroken):
        machine.feed(call(0, args=" 1}"))


def test_thinking_then_text_and_stop_reasons() -> None:
    got = run([chunk({"reasoning_content": "hmm"}), chunk({"content": "Hi"}), chunk({}, "length")])
    starts = [d["content_block"]["type"] for n, d in got if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert got[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_relay_turns_gateway_errors_into_anthropic_error_events() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"data: " + orjson.dumps(chunk({"content": "par"})) + b"\n\n"
        yield b'data: {"error": {"message": "gone", "type": "api_error", "code": "upstream_unavailable"}}\n\n'

    async def collect() -> bytes:
        return b"".join([p async for p in relay(pieces(), "m")])

    got = events(asyncio.run(collect()))
    assert got[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "gone"}})


def test_message_and_replayed_events_agree() -> None:
    completion = {
        "id": "chatcmpl-9",
        "model": "gpt-x",
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "content": "ok",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"x":1}'}}],
                },
            }
        ],
    }
    message = response.message(completion, "gpt")
    assert message["id"] == "msg_9" and message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "text", "text": "ok"},
        {"type": "tool_use", "id": "c", "name": "f", "input": {"x": 1}},
    ]
    replayed = events(b"".join(message_events(message)))
    assert replayed[0][0] == "message_start" and replayed[-1][0] == "message_stop"


def test_errors_have_anthropics_shape_and_statuses() -> None:
    status, body = response.error_body(UpstreamUnavailable("anthropic is unavailable (529): Overloaded"))
    assert status == 529 and orjson.loads(body)["error"]["type"] == "overloaded_error"
    status, body = response.error_body(RateLimited("slow down"))
    assert status == 429 and orjson.loads(body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }


def test_a_hand_over_between_a_claude_stream_and_a_translated_one_keeps_one_message_start() -> None:
    native_opening = response.event(
        "message_start", {"type": "message_start", "message": {"id": "msg_1"}}
    ) + response.event("ping", {"type": "ping"})

    async def claude_then_chat() -> AsyncIterator[bytes]:
        yield native_opening
        yield b"data: " + orjson.dumps(chunk({"role": "assistant", "content": ""})) + b"\n\n"
        yield b"data: " + orjson.dumps(chunk({"content": "hi"}, "stop")) + b"\n\ndata: [DONE]\n\n"

    async def chat_then_claude() -> AsyncIterator[bytes]:
        yield b"data: " + orjson.dumps(chunk({"role": "assistant", "content": ""})) + b"\n\n"
        yield native_opening + response.event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )

    async def collect(pieces: AsyncIterator[bytes]) -> list[str]:
        return [name for name, _ in events(b"".join([p async for p in relay(pieces, "m")]))]

    first = asyncio.run(collect(claude_then_chat()))
    assert first.count("message_start") == 1 and first[-1] == "message_stop"
    second = asyncio.run(collect(chat_then_claude()))
    assert second.count("message_start") == 1 and second[-1] == "content_block_start"
