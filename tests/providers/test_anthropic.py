"""Anthropic's quirks, on recorded-style payloads (tests/fixtures/providers/anthropic)."""

from __future__ import annotations

import orjson
import pytest

from llmproxy.errors import InvalidRequest, UpstreamRejected, UpstreamUnavailable
from llmproxy.providers import anthropic
from tests.providers.conftest import entry, fixture, fixture_bytes, merge_tool_calls, relay, sse

SONNET = entry("anthropic", "claude-sonnet-4-5-20250929")


def body(req: dict, model=SONNET) -> dict:
    return anthropic.build_body({"messages": [{"role": "user", "content": "hi"}], **req}, model)


def test_parse_tool_call_response_with_thinking_and_cache_usage() -> None:
    completion = anthropic.parse_response(fixture_bytes("anthropic", "tool_call.response.json"), SONNET)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["id"] for c in choice["message"]["tool_calls"]] == [
        "toolu_01A09q90qw90lq917835lq9",
        "toolu_01B19q90qw90lq917835lq9",
    ]
    assert orjson.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris",
        "unit": "celsius",
    }
    assert choice["message"]["reasoning_content"].startswith("The user wants")
    assert choice["message"]["thinking_blocks"][0]["signature"]
    assert completion["usage"] == {
        "prompt_tokens": 472 + 2048 + 100,
        "completion_tokens": 159,
        "total_tokens": 2779,
        "prompt_tokens_details": {"cached_tokens": 2048, "cache_creation_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 41},
    }


def test_stream_fixture_tool_calls_thinking_usage() -> None:
    payloads, state = relay(anthropic, sse(fixture("anthropic", "tool_call.stream.json")), SONNET, size=3)
    chunks = [p for p in payloads if p != "[DONE]"]
    calls = merge_tool_calls(chunks)
    assert calls == [
        {"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"id": "toolu_01U2y2gK45rBnl3uOUsO8Vq7", "name": "get_time", "arguments": "{}"},
    ]
    assert (
        "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
        == "Two cities, two calls."
    )
    assert state.usage["prompt_tokens"] == 472 + 2048 and state.usage["completion_tokens"] == 89
    assert state.usage["completion_tokens_details"]["reasoning_tokens"] == 12
    assert state.finish_reason == "tool_calls" and payloads[-1] == "[DONE]"


@pytest.mark.parametrize(
    "reason,expected",
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    assert anthropic.finish_reason(reason) == expected


def test_errors_from_fixtures() -> None:
    over = anthropic.map_error(529, fixture_bytes("anthropic", "overloaded.error.json"), {})
    assert isinstance(over, UpstreamUnavailable) and over.retryable
    bad = anthropic.map_error(400, fixture_bytes("anthropic", "invalid.error.json"), {})
    assert isinstance(bad, UpstreamRejected) and "must be non-empty" in bad.message


def test_max_tokens_defaults_and_sampling_rules() -> None:
    assert body({})["max_tokens"] == 64000
    assert (
        body(
            {},
            entry(
                "anthropic",
                "claude-x",
            ),
        )["max_tokens"]
        == 64000
    )
    both = body({"temperature": 1.7, "top_p": 0.5})
    assert both["temperature"] == 1.0 and "top_p" not in both
    assert "temperature" not in body({"temperature": 0.2}, entry("anthropic", "claude-opus-4-7"))
    assert body({"top_p": 0.5})["top_p"] == 0.5


def test_thinking_forms_by_generation() -> None:
    old = body({"reasoning_effort": "medium", "max_tokens": 4000, "temperature": 0.3})
    assert old["thinking"] == {"type": "enabled", "budget_tokens": 2000} and "temperature" not in old
    new = body({"reasoning_effort": "high"}, entry("anthropic", "claude-opus-4-7"))
    assert new["thinking"] == {"type": "adaptive"} and new["output_config"] == {"effort": "high"}
    off = body({"reasoning_effort": "none"}, entry("anthropic", "claude-opus-5"))
    assert off["thinking"] == {"type": "disabled"}
    assert "thinking" not in body({"reasoning_effort": "high"}, entry("anthropic", "claude-3-5-haiku", reasoning=False))
    assert "thinking" not in body({"reasoning_effort": "low", "max_tokens": 1024})


def test_messages_merge_and_start_with_user() -> None:
    b = anthropic.build_body(
        {
            "messages": [
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "prefill "},
            ]
        },
        SONNET,
    )
    assert [m["role"] for m in b["messages"]] == ["user", "assistant", "user", "assistant"]
    assert b["messages"][2]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert b["messages"][-1]["content"][-1]["text"] == "prefill"


def test_json_object_uses_forced_tool_and_returns_content() -> None:
    b = body({"response_format": {"type": "json_object"}})
    assert b["tool_choice"] == {"type": "tool", "name": "llmproxy_json_response"}
    message = {
        "id": "msg_1",
        "model": "m",
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "llmproxy_json_response", "input": {"a": 1}}],
    }
    choice = anthropic.parse_response(orjson.dumps(message), SONNET)["choices"][0]
    assert choice["message"]["content"] == '{"a":1}' and choice["finish_reason"] == "stop"


def test_refusals_are_clear_400s() -> None:
    with pytest.raises(InvalidRequest) as info:
        body({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})
    assert info.value.param == "messages[0].content[0]"
    with pytest.raises(InvalidRequest):
        body(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,SUkqAAgAAAA="}}],
                    }
                ]
            }
        )
    with pytest.raises(InvalidRequest):
        body(
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "g"}},
            }
        )
