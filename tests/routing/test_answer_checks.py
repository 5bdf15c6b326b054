"""The cascade's cheap checks on an answer, on hand-made answers."""

from __future__ import annotations

import orjson

from llmproxy.answer_checks import HEAD_EVENTS, failure, matches, stream_message

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "kind": {"enum": ["trip", "stay"]},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
JSON_BODY = {"response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}}
TOOLS_BODY = {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
}


def msg(content: object = None, **extra: object) -> dict:
    return {"role": "assistant", "content": content, **extra}


def test_plain_answers() -> None:
    assert failure({}, msg("Paris."), "stop") is None
    assert failure({}, msg("Paris, and then"), "length") == "length"
    assert failure({}, msg("   "), "stop") == "empty"
    assert failure({}, msg(None), "stop") == "empty"
    assert failure({}, msg("I'm sorry, but I can't help with that."), "stop") == "refusal"
    assert failure({}, msg(None, refusal="I can't do that"), "stop") == "refusal"
    long_apology = "I'm sorry, but I can't be sure of the exact year; here is what is known. " + "Detail. " * 80
    assert failure({}, msg(long_apology), "stop") is None  # a long answer that opens with an apology


def test_json_answers_against_the_schema() -> None:
    good = {"city": "Lisbon", "days": 3, "tags": ["food"], "kind": "trip"}
    assert failure(JSON_BODY, msg(orjson.dumps(good).decode()), "stop") is None
    assert failure(JSON_BODY, msg("```json\n" + orjson.dumps(good).decode() + "\n```"), "stop") is None
    for bad in (
        {"city": "Lisbon"},
        {"city": "Lisbon", "days": "3"},
        {"city": "Lisbon", "days": 0},
        {"city": "Lisbon", "days": 2, "extra": 1},
        {"city": "L", "days": 2, "tags": ["a", "b", "c"]},
        {"city": "L", "days": 2, "kind": "cruise"},
        [1, 2],
    ):
        assert failure(JSON_BODY, msg(orjson.dumps(bad).decode()), "stop") == "invalid_json", bad
    assert failure(JSON_BODY, msg('{"city": "Lis'), "stop") == "invalid_json"
    assert failure({"response_format": {"type": "json_object"}}, msg('{"a": 1}'), "stop") is None
    assert failure({"response_format": {"type": "json_object"}}, msg("sure! here"), "stop") == "invalid_json"


def test_schema_subset_passes_what_it_does_not_know() -> None:
    assert matches({"a": 1}, {"type": "object", "patternProperties": {"^b": {"type": "string"}}})
    assert matches(2.0, {"type": "integer"}) and not matches(True, {"type": "integer"})
    assert matches(None, {"type": ["string", "null"]}) and not matches(3, {"type": ["string", "null"]})
    assert matches("x", {"anyOf": [{"type": "integer"}, {"type": "string"}]})


def test_tool_calls() -> None:
    def call(name: str, args: str) -> dict:
        return msg(None, tool_calls=[{"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}])

    assert failure(TOOLS_BODY, call("get_order", '{"order_id": "A1"}'), "tool_calls") is None
    assert failure(TOOLS_BODY, call("get_order", '{"id": "A1"}'), "tool_calls") == "invalid_tool_arguments"
    assert failure(TOOLS_BODY, call("get_order", '{"order_id": 7}'), "tool_calls") == "invalid_tool_arguments"
    assert failure(TOOLS_BODY, call("get_order", "order A1"), "tool_calls") == "invalid_tool_arguments"
    assert failure(TOOLS_BODY, call("cancel_order", '{"order_id": "A1"}'), "tool_calls") == "invalid_tool_arguments"


def test_stream_message_rebuilds_content_and_tool_calls() -> None:
    def event(delta: dict, finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"

    pieces = [
        event({"role": "assistant", "content": ""}),
        event({"content": "Hel"}),
        event({"content": "lo"}),
        event({}, "stop"),
        b"data: [DONE]\n\n",
    ]
    assert stream_message(pieces) == ({"role": "assistant", "content": "Hello"}, "stop", False, False)
    calls = [
        event({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "get_order", "arguments": ""}}]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": '{"order_'}}]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": 'id": "A1"}'}}]}),
        event({}, "tool_calls"),
    ]
    message, finish, errored, _ = stream_message(calls)
    assert message["tool_calls"][0]["function"] == {"name": "get_order", "arguments": '{"order_id": "A1"}'}
    assert failure(TOOLS_BODY, message, finish) is None and not errored
    broken = [event({"content": "par"}), b'data: {"error": {"message": "x", "type": "server_error"}}\n\n']
    assert stream_message(broken)[2] is True


def test_a_long_plain_stream_is_checked_on_its_ends() -> None:
    def event(delta: dict, finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"

    refusal = [event({"content": "I'm sorry, but I can't help with that."})]
    long = refusal + [event({"content": " more"}) for _ in range(2 * HEAD_EVENTS)] + [event({}, "length")]
    got = stream_message(long, whole=False)
    assert got.partial and got.finish_reason == "length"
    assert failure({}, got.message, got.finish_reason, got.partial) == "length"
    got = stream_message(long[:-1] + [event({}, "stop")], whole=False)
    assert failure({}, got.message, got.finish_reason, got.partial) is None  # long: not a refusal
    short = stream_message(refusal + [event({}, "stop")], whole=False)
    assert not short.partial and failure({}, short.message, short.finish_reason, short.partial) == "refusal"
