"""The cache key: what makes two requests the same question, and what keeps tenants apart."""

from __future__ import annotations

import orjson
import pytest

from llmproxy.cache_key import request_key
from llmproxy.validation import parse_request

BASE = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    "temperature": 0.2,
    "max_tokens": 50,
}


def key(body: dict, tenant: str = "key:a") -> str:
    return request_key(tenant, body)[0]


def test_field_order_and_whitespace_do_not_change_the_key() -> None:
    compact = orjson.dumps(BASE)
    spaced = (
        b'{ "max_tokens" : 50,\n  "temperature": 0.2,\n\t"messages": [ {"content": "be brief", "role": "system"},'
        b' {"role":"user",   "content":"hi"} ],  "model":"gpt-4o-mini" }'
    )
    assert key(parse_request(compact)) == key(parse_request(spaced))


@pytest.mark.parametrize(
    "extra",
    [
        {"stream": True},
        {"stream": False},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"user": "alice"},
        {"metadata": {"trace": "1"}},
        {"store": True},
    ],
)
def test_delivery_and_caller_fields_do_not_change_the_key(extra: dict) -> None:
    assert key({**BASE, **extra}) == key(BASE)


def test_integer_and_float_temperature_are_the_same() -> None:
    assert key({**BASE, "temperature": 1}) == key({**BASE, "temperature": 1.0})


@pytest.mark.parametrize(
    "change",
    [
        {"model": "auto"},
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"temperature": 0.3},
        {"top_p": 0.9},
        {"max_tokens": 51},
        {"max_completion_tokens": 50},
        {"stop": ["\n"]},
        {"seed": 7},
        {"n": 2},
        {"frequency_penalty": 0.1},
        {"presence_penalty": 0.1},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        {"tool_choice": "required"},
        {"parallel_tool_calls": False},
        {"response_format": {"type": "json_object"}},
        {"reasoning_effort": "low"},
        {"some_future_field": 1},  # unknown fields count: a needless miss beats a wrong hit
    ],
)
def test_every_answer_changing_field_changes_the_key(change: dict) -> None:
    assert key({**BASE, **change}) != key(BASE)


def test_nested_key_order_does_not_matter_but_message_order_does() -> None:
    a = {**BASE, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"a": 1, "b": 2}}}}
    b = {**BASE, "response_format": {"json_schema": {"schema": {"b": 2, "a": 1}, "name": "x"}, "type": "json_schema"}}
    assert key(a) == key(b)
    assert key({**BASE, "messages": BASE["messages"][::-1]}) != key(BASE)


def test_tenants_get_different_keys() -> None:
    assert key(BASE, "key:a") != key(BASE, "key:b")
    assert key(BASE, "*") != key(BASE, "key:a")


def test_id_is_the_first_64_bits_of_the_key() -> None:
    hex_key, id_ = request_key("key:a", BASE)
    assert len(hex_key) == 32
    assert id_ == int.from_bytes(bytes.fromhex(hex_key[:16]), "big", signed=True)


def test_the_request_itself_is_left_untouched() -> None:
    body = {**BASE, "temperature": 1, "stream": True, "user": "u"}
    before = orjson.dumps(body)
    key(body)
    assert orjson.dumps(body) == before and type(body["temperature"]) is int
