"""POST /v1/messages driven by the official anthropic SDK against a Claude, an OpenAI and a Gemini
model behind the gateway (fake upstreams on loopback)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.doors.conftest import CLAUDE, GEMINI, GPT, MASTER, MODELS

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Local time of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "format": {"type": "string", "enum": ["24h", "12h"]}},
    },
}


def _upstream_args(model: str, upstreams: dict[str, Any], openai_upstream: Any) -> dict[str, dict[str, Any]]:
    """What the fake upstream generated for the tool calls of the last request, by tool name (the
    fakes make arguments from the schemas with the same sampler)."""
    from tests.fakes.anthropic_server import sample

    return {t["name"]: sample(t["input_schema"]) for t in (WEATHER, TIME)}


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_in_anthropic_shape(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model, max_tokens=256, system="Be brief.", messages=[{"role": "user", "content": "hello there"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text in ("You said: hello there", "echo: hello there")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_claude_gets_the_clients_bytes_and_headers(gateway_url: str, upstreams: dict[str, Any]) -> None:
    body = orjson.dumps(
        {
            "model": CLAUDE,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
            "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
            "top_k": 5,
        }
    )
    r = httpx.post(
        gateway_url + "/v1/messages",
        content=body,
        headers={
            "x-api-key": MASTER,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
            "content-type": "application/json",
        },
    )
    assert r.status_code == 200, r.text
    state = upstreams["anthropic"][1]
    assert orjson.dumps(state.requests[-1]) == body  # as sent: cache_control and top_k kept
    assert state.headers[-1]["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert state.headers[-1]["x-api-key"] != MASTER
    assert r.json()["id"] == "msg_01FakeAnthropic"  # Claude's answer, as it sent it
    assert r.headers["x-llmproxy-provider"] == "anthropic" and float(r.headers["x-llmproxy-cost-usd"]) > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_text_and_final_message(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": "one two three four"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text in ("You said: one two three four", "echo: one two three four")
    assert final.content[-1].text == text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_streamed_parallel_tool_calls_arrive_whole(
    client: anthropic.Anthropic, model: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    expected = _upstream_args(model, upstreams, openai_upstream)
    pieces: dict[int, list[str]] = {}
    starts: list[Any] = []
    with client.messages.stream(
        model=model,
        max_tokens=2048,
        tools=[WEATHER, TIME],
        messages=[{"role": "user", "content": "Weather and time in Paris?"}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_start" and event.content_block.type == "tool_use":
                starts.append(event.content_block)
            elif event.type == "input_json":
                pass
            elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                pieces.setdefault(event.index, []).append(event.delta.partial_json)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"] and len(starts) == 2
    assert len({u.id for u in uses}) == 2 and all(u.id for u in uses)
    for use in uses:
        assert use.input == expected[use.name]
    # the raw input_json_delta pieces, joined per block, are the upstream's arguments exactly
    joined = {final.content[i].name: orjson.loads("".join(p)) for i, p in pieces.items() if "".join(p)}
    assert joined == expected


@pytest.mark.parametrize("model", MODELS)
def test_tool_round_trip(
    client: anthropic.Anthropic, model: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model=model,
        max_tokens=2048,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[question],
    )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    history = [
        question,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21C"}]},
    ]
    with client.messages.stream(model=model, max_tokens=2048, tools=[WEATHER], messages=history) as stream:
        text = "".join(stream.text_stream)
    assert text == "Thanks for the results." or text.startswith("echo")
    assert upstreams["anthropic"][1].rejected == [] and upstreams["gemini"][1].rejected == []
    if model == GEMINI:
        # the Gemini thought signature rode in the tool id and went back with the result
        sent = upstreams["gemini"][1].requests[-1]["contents"][1]["parts"][0]
        assert sent.get("thoughtSignature")
    if model == GPT:
        sent = openai_upstream[1].requests[-1]["messages"]
        assert sent[-1] == {"role": "tool", "tool_call_id": use.id, "content": "21C"}


def test_parallel_calls_off_gives_one_call(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=GPT,
        max_tokens=512,
        tools=[WEATHER, TIME],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather?"}],
    )
    assert [b.name for b in message.content if b.type == "tool_use"] == ["get_weather"]


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(client: anthropic.Anthropic, model: str, upstreams: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "count these words please"}]
    counted = client.messages.count_tokens(model=model, messages=messages, system="Be brief.")
    if model == CLAUDE:
        assert counted.input_tokens == 7 + len(orjson.dumps(messages)) // 3  # Anthropic's own count
        assert upstreams["anthropic"][1].requests[-1]["model"] == CLAUDE
    else:
        assert counted.input_tokens == len(orjson.dumps({"system": "Be brief.", "messages": messages})) // 4


def test_errors_raise_the_sdks_exceptions(gateway_url: str, client: anthropic.Anthropic) -> None:
    hello = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.AuthenticationError) as auth:
        anthropic.Anthropic(base_url=gateway_url, api_key="sk-wrong", max_retries=0).messages.create(
            model=CLAUDE, max_tokens=10, messages=hello
        )
    assert auth.value.body["type"] == "error" and auth.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=hello)
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="anthropic/fail-429", max_tokens=10, messages=hello)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="openai/fail-429", max_tokens=10, messages=hello)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.create(model="anthropic/overloaded", max_tokens=10, messages=hello)
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"


def test_bearer_key_works_too(gateway_url: str) -> None:
    r = httpx.post(
        gateway_url + "/v1/messages",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"model": GPT, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "echo: hi"


def test_error_event_mid_stream(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(
            model="anthropic/stream-error", max_tokens=64, messages=[{"role": "user", "content": "a b c"}]
        ) as stream:
            for _ in stream:
                pass
    assert "Overloaded" in str(info.value)
    with pytest.raises(anthropic.APIStatusError) as cut:
        with client.messages.stream(
            model="openai/error-after-text", max_tokens=64, messages=[{"role": "user", "content": "a b c"}]
        ) as stream:
            for _ in stream:
                pass
    assert "broke mid-way" in str(cut.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": GPT, "max_tokens": 10, "messages": []}, "messages"),
        (
            {
                "model": GEMINI,
                "max_tokens": 10,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}]}
                ],
            },
            "messages.0.content.0",
        ),
        (
            {
                "model": CLAUDE,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "texte", "text": "x"}]}],
            },
            "messages.0.content.0.type",
        ),
    ],
)
def test_bad_requests_are_refused_before_any_provider(
    raw: httpx.Client, body: dict[str, Any], field: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    r = raw.post("/v1/messages", json=body)
    assert r.status_code == 400
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(field)
    assert not upstreams["anthropic"][1].requests and not upstreams["gemini"][1].requests
    assert not openai_upstream[1].requests


def test_sdk_raises_bad_request_for_an_empty_conversation(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=GPT, max_tokens=10, messages=[])
    assert "messages" in str(info.value)


def test_thinking_is_dropped_for_a_model_that_does_not_reason(
    client: anthropic.Anthropic, openai_upstream: Any
) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    message = client.messages.create(
        model="gpt-4o", max_tokens=4096, thinking=thinking, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "echo: hi" and "reasoning_effort" not in openai_upstream[1].requests[-1]
    client.messages.create(model=GPT, max_tokens=4096, thinking=thinking, messages=[{"role": "user", "content": "hi"}])
    assert openai_upstream[1].requests[-1]["reasoning_effort"] == "low"
