"""The Responses door on the pipeline's stages: bad input refused before any provider (OpenAI's
error shape, the field named), failures mid-stream, the cache, `auto`, usage rows and cost."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from llmproxy.config import CacheSettings, RouterSettings
from tests.doors.conftest import CLAUDE, GEMINI, GPT, MASTER

AUTH = {"authorization": f"Bearer {MASTER}"}
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def _sent(upstreams: dict[str, Any], openai_upstream: Any) -> int:
    return len(openai_upstream[1].requests) + sum(len(s.requests) for _, s in upstreams.values())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": CLAUDE}, "input"),
        ({"model": CLAUDE, "input": 5}, "input"),
        ({"model": CLAUDE, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": CLAUDE, "input": [{"role": "user", "content": [{"type": "image", "url": "x"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": CLAUDE, "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
            "input[0].content[0].type",
        ),
        ({"model": CLAUDE, "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        (
            {"model": CLAUDE, "input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]},
            "input[0].call_id",
        ),
        ({"model": CLAUDE, "input": [{"type": "teleport"}]}, "input[0].type"),
        ({"model": GPT, "input": "x", "max_output_tokens": 5}, "max_output_tokens"),
        ({"model": GEMINI, "input": "x", "temperature": 3}, "temperature"),
        ({"model": GEMINI, "input": "x", "top_p": "high"}, "top_p"),
        (
            {"model": CLAUDE, "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
        ),
        ({"model": CLAUDE, "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": CLAUDE, "input": "x", "tools": [{"type": "function", "parameters": {}}]}, "tools[0].name"),
        (
            {"model": CLAUDE, "input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "other"}},
            "tool_choice.name",
        ),
        ({"model": CLAUDE, "input": "x", "reasoning": {"effort": "maximal"}}, "reasoning.effort"),
        ({"model": CLAUDE, "input": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"model": CLAUDE, "input": "x", "store": "yes"}, "store"),
        ({"model": CLAUDE, "input": "x", "background": True}, "background"),
        ({"model": CLAUDE, "input": "x", "previous_response_id": "resp_never"}, "previous_response_id"),
    ],
)
def test_bad_requests_are_refused_before_any_provider(
    gateway_url: str, body: dict[str, Any], param: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    r = httpx.post(gateway_url + "/v1/responses", json=body, headers=AUTH)
    assert r.status_code in (400, 404), r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert _sent(upstreams, openai_upstream) == 0


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'{"model": "a", "model": "b", "input": "x"}'])
def test_unreadable_bodies_get_a_400(
    gateway_url: str, raw: bytes, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    r = httpx.post(gateway_url + "/v1/responses", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
    assert _sent(upstreams, openai_upstream) == 0


def test_no_key_no_answer(gateway_url: str) -> None:
    r = httpx.post(gateway_url + "/v1/responses", json={"model": CLAUDE, "input": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(gateway_url + "/v1/responses/resp_x").status_code == 401


def test_hosted_tools_go_to_openai_and_nowhere_else(
    gateway_url: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    body = {"input": "news?", "tools": [{"type": "web_search"}]}
    r = httpx.post(gateway_url + "/v1/responses", json={"model": CLAUDE, **body}, headers=AUTH)
    assert r.status_code == 400 and "web_search" in r.json()["error"]["message"]
    assert _sent(upstreams, openai_upstream) == 0
    r = httpx.post(gateway_url + "/v1/responses", json={"model": GPT, **body}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert openai_upstream[1].requests[-1]["tools"] == [{"type": "web_search"}]


def test_a_stream_cut_short_ends_with_error_and_response_failed(client: openai.OpenAI) -> None:
    kinds, numbers = [], []
    with client.responses.stream(model="openai/cut-stream", input="one two three") as stream:
        for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
        with pytest.raises(RuntimeError):
            stream.get_final_response()
    assert "response.output_text.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    assert numbers == list(range(len(numbers)))


def test_a_translated_stream_that_fails_midway(client: openai.OpenAI) -> None:
    kinds = []
    with client.responses.stream(model="anthropic/stream-error", input="one two three") as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]


def test_a_stream_that_fails_up_front_is_an_error(client: openai.OpenAI) -> None:
    """An HTTP error when the failure came with the stream's first bytes, else the failure events."""
    try:
        with client.responses.stream(model="openai/error-first", input="x") as stream:
            kinds = [event.type for event in stream]
    except openai.APIStatusError as exc:
        assert exc.status_code >= 500
    else:
        assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]


@pytest.mark.parametrize(("first", "then"), [("openai/error-first", CLAUDE), ("anthropic/overloaded", GPT)])
def test_a_stream_that_falls_back_keeps_one_response(door_gateway: Any, first: str, then: str) -> None:
    url = door_gateway(router=RouterSettings(fallbacks={first: (then,)}))
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    numbers = []
    with client.responses.stream(model=first, input="one two") as stream:
        for event in stream:
            numbers.append(event.sequence_number)
        final = stream.get_final_response()  # the SDK refuses a response whose id changed
    assert final.output_text.endswith("one two") and final.status == "completed"
    assert numbers == list(range(len(numbers)))
    assert client.responses.retrieve(final.id).output_text == final.output_text


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER, max_retries=0)


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_cache_hits_answer_new_stored_responses(door_gateway: Any, model: str) -> None:
    client = openai.OpenAI(
        base_url=door_gateway(cache=CacheSettings(enabled=True)) + "/v1", api_key=MASTER, max_retries=0
    )
    first = client.responses.with_raw_response.create(model=model, input="cache me", temperature=0)
    hit = client.responses.with_raw_response.create(model=model, input="cache me", temperature=0)
    assert first.headers["x-llmproxy-cache"] == "miss" and hit.headers["x-llmproxy-cache"] == "hit"
    one, two = first.parse(), hit.parse()
    assert two.id != one.id and two.output_text == one.output_text
    assert client.responses.retrieve(two.id).output_text == one.output_text
    with client.responses.stream(model=model, input="cache me", temperature=0) as stream:
        kinds = [e.type for e in stream]
        assert stream.get_final_response().output_text == one.output_text
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_auto_is_classified_and_routed(gateway_url: str) -> None:
    r = httpx.post(gateway_url + "/v1/responses", json={"model": "auto", "input": "What is 2 + 2?"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["x-llmproxy-complexity"] in ("simple", "medium", "complex")
    assert r.json()["status"] == "completed"


def test_usage_rows_and_cost_are_recorded(gateway_url: str) -> None:
    for model in (GPT, CLAUDE, GEMINI):
        r = httpx.post(gateway_url + "/v1/responses", json={"model": model, "input": "count me"}, headers=AUTH)
        assert r.status_code == 200
    deadline = time.monotonic() + 5
    while True:
        doc = httpx.get(gateway_url + "/admin/usage", params={"group_by": "provider"}, headers=AUTH).json()
        if doc["totals"]["requests"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    rows = {row["provider"]: row for row in doc["data"]}
    assert set(rows) == {"openai", "anthropic", "gemini"}
    assert all(
        row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["cost_usd"] > 0 for row in rows.values()
    )
