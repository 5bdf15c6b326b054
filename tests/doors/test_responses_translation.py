"""The Responses door's pure parts on recorded shapes: request -> internal request, chat chunks ->
Responses events, OpenAI's Response -> internal completion. The stored responses' behaviour
(tenants, write-behind, delete, retention) is tested on both backends in tests/scale/test_store_backends.py."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from llmproxy.doors import responses_request as request
from llmproxy.doors import responses_response as rr
from llmproxy.doors.responses_stream import ResponseStream, relay, replay
from llmproxy.providers.responses_passthrough import completion

CONVERSATION = [
    {"role": "developer", "content": "Answer in French."},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is in this picture?"},
            {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
        ],
    },
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Un chat.", "annotations": []}],
    },
    {"type": "function_call", "call_id": "call_a", "name": "zoom", "arguments": '{"x": 1}'},
    {"type": "function_call", "call_id": "call_b", "name": "crop", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_a", "output": "zoomed"},
    {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "cropped"}]},
]


def test_a_conversation_becomes_chat_messages() -> None:
    body = {
        "model": "m",
        "input": CONVERSATION,
        "instructions": "Be brief.",
        "max_output_tokens": 100,
        "temperature": 0.2,
        "reasoning": {"effort": "low"},
        "parallel_tool_calls": False,
        "tools": [{"type": "function", "name": "zoom", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "zoom"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "metadata": {"a": "b"},
        "include": ["x"],
    }
    request.check(body)
    req = request.to_chat(body, request.input_items(body))
    assert req["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Un chat.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "zoom", "arguments": '{"x": 1}'}},
                {"id": "call_b", "type": "function", "function": {"name": "crop", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "zoomed"},
        {"role": "tool", "tool_call_id": "call_b", "content": "cropped"},
    ]
    assert req["max_completion_tokens"] == 100 and req["temperature"] == 0.2 and req["reasoning_effort"] == "low"
    assert req["tools"] == [
        {"type": "function", "function": {"name": "zoom", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert req["tool_choice"] == {"type": "function", "function": {"name": "zoom"}}
    assert req["parallel_tool_calls"] is False
    assert req["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert "metadata" not in req and "include" not in req


def test_input_items_get_ids_and_the_list_form() -> None:
    items = request.input_items({"input": "hi"})
    assert items[0]["id"].startswith("msg_") and items[0]["content"] == [{"type": "input_text", "text": "hi"}]
    given = request.input_items({"input": CONVERSATION})
    assert [i["id"][:3] for i in given] == ["msg", "msg", "rs_", "msg", "fc_", "fc_", "fco", "fco"]
    assert given[3]["id"] == "msg_1"  # an id the client gave stays


def test_stored_turns_go_to_openai_without_ids_or_reasoning() -> None:
    sent = request.as_openai_input(request.input_items({"input": CONVERSATION}))
    assert all("id" not in item and "status" not in item for item in sent)
    assert {"role": "assistant", "content": "Un chat."} in sent
    assert not [i for i in sent if i.get("type") == "reasoning"]


def test_what_only_openai_serves_is_named() -> None:
    assert request.untranslatable({"input": CONVERSATION}, []) is None
    assert "web_search" in str(request.untranslatable({"input": "x", "tools": [{"type": "web_search"}]}, []))
    assert "item_reference" in str(request.untranslatable({"input": [{"type": "item_reference", "id": "x"}]}, []))
    by_file = [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]
    assert "file_id" in str(request.untranslatable({"input": by_file}, []))


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "c",
        "model": "m-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        out = {"id": "c", "model": "m-1", "choices": [], "usage": usage}
    return out


def _events(pieces: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for block in b"".join(pieces).split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            event = orjson.loads(data[5:])
            assert name == b"event: " + event["type"].encode()
            out.append(event)
    return out


def test_chunks_become_the_event_sequence_with_interleaved_calls() -> None:
    machine = ResponseStream(rr.shell({"model": "m", "input": "x"}, "resp_1", "m"))
    pieces: list[bytes] = []
    for chunk in (
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "hmm"}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),  # before its name
        _chunk({"tool_calls": [{"index": 0, "id": "call_0", "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_1", "function": {"name": "g", "arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),  # back to the first
        _chunk({}, "tool_calls"),
        _chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 9}),
    ):
        pieces += machine.feed(chunk)
    pieces += machine.end()
    events = _events(pieces)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index("response.output_text.delta")
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "Hello"
    assert [(i["call_id"], i["name"], i["arguments"]) for i in final["output"][2:]] == [
        ("call_0", "f", '{"a": 1}'),
        ("call_1", "g", "{}"),
    ]
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["output_tokens"] == 9
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert [e["output_index"] for e in deltas] == [2, 3, 2]  # each delta names its own item


def test_a_length_cut_is_incomplete() -> None:
    machine = ResponseStream(rr.shell({"model": "m"}, "resp_1", "m"))
    events = _events(machine.feed(_chunk({"content": "abc"}, "length")) + machine.end())
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_replay_of_a_whole_response() -> None:
    whole = rr.response(
        {"model": "m"},
        {
            "model": "m",
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        },
        "resp_9",
    )
    events = _events([replay(whole)])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"] == whole


def test_a_response_stored_without_its_defaults_reads_back_whole() -> None:
    body = {"model": "m", "input": "x", "temperature": 0.2, "text": {"format": {"type": "json_object"}}}
    completion = {
        "model": "m",
        "choices": [{"message": {"content": "{}"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    own = rr.own(body, completion, "resp_7")
    stored = orjson.dumps(own)
    sent = orjson.loads(rr.whole(stored, own))
    again = rr.response(body, completion, "resp_7")
    again["output"][0]["id"] = own["output"][0]["id"]  # a new item id each time
    assert sent == {**again, "created_at": own["created_at"]}
    assert sent["temperature"] == 0.2 and sent["status"] == "incomplete" and sent["store"] is True
    assert len(stored) < len(orjson.dumps(sent)) / 2 + 100  # the defaults are not stored
    assert orjson.loads(rr.stored_whole(stored)) == sent
    whole = orjson.dumps(sent)
    assert rr.stored_whole(whole) == whole  # a whole one (OpenAI's own, a stream's) is read as it is


async def _pieces(blocks: list[bytes]) -> Any:
    for block in blocks:
        yield block


def test_relay_keeps_the_final_response_before_the_end_goes_out() -> None:
    kept: list[dict[str, Any]] = []
    machine = ResponseStream(rr.shell({"model": "m"}, "resp_1", "m"))
    data = [b"data: " + orjson.dumps(_chunk({"content": "x"}, "stop")) + b"\n\n", b"data: [DONE]\n\n"]

    async def run() -> list[bytes]:
        out = []
        async for piece in relay(_pieces(data), machine, None, kept.append):
            assert b"response.completed" not in piece or kept  # stored before the client can ask for it
            out.append(piece)
        return out

    events = _events(asyncio.run(run()))
    assert events[-1]["type"] == "response.completed" and kept[0]["id"] == "resp_1"


def test_openai_response_as_internal_completion() -> None:
    response = {
        "id": "resp_1",
        "model": "gpt-5",
        "created_at": 1,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        ],
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 6,
            "output_tokens_details": {"reasoning_tokens": 2},
        },
    }
    done = completion(response, "gpt-5")
    choice = done["choices"][0]
    assert choice["message"]["content"] == "Hi" and choice["message"]["reasoning_content"] == "think"
    assert choice["finish_reason"] == "length"
    assert done["usage"]["prompt_tokens"] == 10 and done["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert done["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2


def test_relay_keeps_one_id_when_openai_takes_over_a_translated_stream() -> None:
    """A translated stream opened (its created / in_progress out), failed before content, and OpenAI's
    stream took over (its own opening already dropped by the fallback): OpenAI's lifecycle events
    carry the id the client has, and the numbering goes on."""
    kept: list[dict[str, Any]] = []
    machine = ResponseStream(rr.shell({"model": "m"}, "resp_ours", "m"))
    native_item = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "hi", "annotations": []}],
    }
    final = {"id": "resp_openai", "object": "response", "status": "completed", "output": [native_item], "usage": None}

    def ev(kind: str, seq: int, **data: Any) -> bytes:
        return (
            b"event: "
            + kind.encode()
            + b"\ndata: "
            + orjson.dumps({"type": kind, "sequence_number": seq, **data})
            + b"\n\n"
        )

    pieces = [
        b"data: " + orjson.dumps(_chunk({"role": "assistant", "content": ""})) + b"\n\n",
        ev("response.output_item.added", 2, output_index=0, item=native_item),
        ev("response.output_item.done", 3, output_index=0, item=native_item),
        ev("response.completed", 4, response=final),
    ]

    async def run() -> list[bytes]:
        return [piece async for piece in relay(_pieces(pieces), machine, None, kept.append)]

    events = _events(asyncio.run(run()))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["id"] == events[-1]["response"]["id"] == "resp_ours"
