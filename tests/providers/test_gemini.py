"""Gemini's quirks, on recorded-style payloads (tests/fixtures/providers/gemini)."""

from __future__ import annotations

import orjson
import pytest

from llmproxy.errors import UpstreamAuthError, UpstreamRejected, UpstreamUnavailable
from llmproxy.providers import gemini
from llmproxy.providers.toolids import split
from tests.providers.conftest import creds, entry, fixture, fixture_bytes, relay, sse

FLASH3 = entry("gemini", "gemini-3-flash-preview")
FLASH25 = entry("gemini", "gemini-2.5-flash")


def test_tool_call_response_signature_usage() -> None:
    completion = gemini.parse_response(fixture_bytes("gemini", "tool_call.response.json"), FLASH3)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    first, second = choice["message"]["tool_calls"]
    assert split(first["id"])[1] == "CiQB0e2Kb7zUvQ2yV+pc1fP4h5q0aGVsbG8vc2lnbmF0dXJlPT0="
    assert split(second["id"])[1] is None and first["id"] != second["id"]
    assert choice["message"]["reasoning_content"].startswith("**Checking")
    assert completion["usage"] == {
        "prompt_tokens": 2218,
        "completion_tokens": 181,
        "total_tokens": 2399,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 140},
    }
    assert completion["model"] == "gemini-3-flash-preview" and completion["id"] == "hU9caIjqHtq6nvgPq8OP0Ak"


def test_signature_goes_back_on_the_function_call() -> None:
    completion = gemini.parse_response(fixture_bytes("gemini", "tool_call.response.json"), FLASH3)
    message = completion["choices"][0]["message"]
    body = gemini.build_body(
        {
            "messages": [
                {"role": "user", "content": "x"},
                message,
                *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in message["tool_calls"]),
            ]
        },
        FLASH3,
    )
    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "CiQB0e2Kb7zUvQ2yV+pc1fP4h5q0aGVsbG8vc2lnbmF0dXJlPT0="
    assert "thoughtSignature" not in parts[1]
    assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]] == ["get_weather", "get_weather"]


def test_stream_fixture_thoughts_text_usage() -> None:
    payloads, state = relay(gemini, sse(fixture("gemini", "text.stream.json")), FLASH25, size=11)
    chunks = [p for p in payloads if p != "[DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello there!"
    assert any(c["choices"][0]["delta"].get("reasoning_content") for c in chunks if c["choices"])
    assert state.usage["completion_tokens"] == 23 and state.usage["completion_tokens_details"]["reasoning_tokens"] == 20


def test_safety_and_errors() -> None:
    done = gemini.parse_response(fixture_bytes("gemini", "safety.response.json"), FLASH25)
    assert done["choices"][0]["finish_reason"] == "content_filter"
    assert isinstance(gemini.map_error(503, fixture_bytes("gemini", "unavailable.error.json"), {}), UpstreamUnavailable)
    bad = gemini.map_error(400, fixture_bytes("gemini", "invalid.error.json"), {})
    assert isinstance(bad, UpstreamRejected) and "non-empty for OBJECT" in bad.message
    key = gemini.map_error(
        400,
        b'{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}',
        {},
    )
    assert isinstance(key, UpstreamAuthError)


@pytest.mark.parametrize(
    "model,effort,expected",
    [
        ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini-3.1-pro-preview", "medium", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ],
)
def test_thinking_config_by_generation(model: str, effort: str, expected: dict) -> None:
    body = gemini.build_body(
        {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}, entry("gemini", model)
    )
    assert body["generationConfig"]["thinkingConfig"] == expected


def test_url_and_tool_config() -> None:
    up = gemini.build_request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        entry("gemini", "models/gemini-2.5-flash"),
        creds("gemini"),
        stream=True,
    )
    assert (
        up.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    body = orjson.loads(up.body)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}
    assert body["tools"] == [{"functionDeclarations": [{"name": "f"}]}] and up.headers["x-goog-api-key"] == "test-key"
