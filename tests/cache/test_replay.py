"""Streams folded into a stored completion, and stored completions unfolded into streams."""

from __future__ import annotations

from typing import Any

import orjson

from llmproxy.cache_replay import StreamCollector, assemble, replay_bytes

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
BASE = {
    "id": "chatcmpl-9",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o-2024",
    "system_fingerprint": "fp_1",
}


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    out = b"".join(b"data: " + orjson.dumps({**BASE, **c}) + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def delta(d: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": d, "logprobs": None, "finish_reason": finish}]}


TOOL_STREAM = sse(
    delta({"role": "assistant", "content": None}),
    delta(
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]
        }
    ),
    delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    delta(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
                }
            ]
        }
    ),
    delta({}, "tool_calls"),
)


def test_a_text_stream_becomes_one_completion() -> None:
    raw = sse(
        delta({"role": "assistant", "content": ""}),
        delta({"content": "Hel"}),
        delta({"content": "lo!"}),
        delta({}, "stop"),
    )
    completion = assemble(raw, USAGE)
    assert completion == {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "system_fingerprint": "fp_1",
    }


def test_tool_call_arguments_are_concatenated_per_call() -> None:
    completion = assemble(TOOL_STREAM, USAGE)
    assert completion is not None
    message = completion["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    ]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"


def test_cut_or_failed_streams_are_not_assembled() -> None:
    text = (delta({"role": "assistant", "content": ""}), delta({"content": "Hel"}))
    assert assemble(sse(*text, done=False), USAGE) is None
    error = b'data: {"error": {"message": "stream broke", "type": "api_error"}}\n\n'
    assert assemble(sse(*text, done=False) + error, USAGE) is None
    assert assemble(sse(*text, done=False) + error + b"data: [DONE]\n\n", USAGE) is None
    assert assemble(b"data: {not json\n\ndata: [DONE]\n\n", USAGE) is None


def test_replay_has_openais_shape_and_round_trips() -> None:
    completion = assemble(TOOL_STREAM, USAGE)
    assert completion is not None
    raw = replay_bytes(completion, include_usage=True)
    events = [block[6:] for block in raw.split(b"\n\n") if block]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1] == {**BASE, "choices": [], "usage": USAGE}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-9" for c in chunks)
    assert assemble(raw, USAGE) == completion


def test_replay_splits_content_and_leaves_usage_out_unless_asked() -> None:
    text = "The quick brown fox jumps over the lazy dog, again and again and again."
    completion = {
        "id": "x",
        "created": 1,
        "model": "m",
        "usage": USAGE,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
    }
    raw = replay_bytes(completion, include_usage=False)
    chunks = [orjson.loads(b[6:]) for b in raw.split(b"\n\n") if b and b != b"data: [DONE]"]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert len(pieces) == 4 and "".join(pieces) == text
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_replay_of_several_choices() -> None:
    completion = {
        "id": "x",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": f"answer {i}"}, "finish_reason": "stop"}
            for i in range(2)
        ],
    }
    again = assemble(replay_bytes(completion, include_usage=False), None)
    assert again is not None
    assert [c["message"]["content"] for c in again["choices"]] == ["answer 0", "answer 1"]


def test_collector_gives_up_past_its_bound() -> None:
    collector = StreamCollector(limit=10)
    collector.add(b"12345")
    assert collector.pieces == [b"12345"]
    collector.add(b"678901")
    assert collector.pieces is None
    collector.add(b"x")
    assert collector.pieces is None
