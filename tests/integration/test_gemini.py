"""The gateway in front of a fake Gemini API, driven by the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.integration._providers import TOOLS, fake_anthropic, fake_gemini, provider_gateway, upstreams  # noqa: F401 - fixtures requested by name

MODEL = "gemini-3-flash-preview"


def test_completion_and_wire_format(provider_gateway: Any, upstreams: dict[str, Any]) -> None:
    client = provider_gateway()
    done = client.chat.completions.create(
        model=MODEL,
        seed=3,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
    )
    assert done.choices[0].message.content == "You said: hello there"
    assert done.usage.prompt_tokens == 31 and done.usage.prompt_tokens_details.cached_tokens == 16
    state = upstreams["gemini"][1]
    assert state.urls[-1].endswith(f"/v1beta/models/{MODEL}:generateContent")
    assert state.headers[-1]["x-goog-api-key"] and state.requests[-1]["generationConfig"]["seed"] == 3
    assert state.requests[-1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_stream_through_sdk(provider_gateway: Any, upstreams: dict[str, Any]) -> None:
    client = provider_gateway()
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream me please"}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: stream me please"
    assert chunks[-1].usage.total_tokens == 40
    assert upstreams["gemini"][1].urls[-1].endswith(":streamGenerateContent?alt=sse")


def test_thought_signature_survives_the_tool_loop(provider_gateway: Any, upstreams: dict[str, Any]) -> None:
    client = provider_gateway()
    first = client.chat.completions.create(model=MODEL, tools=TOOLS, messages=[{"role": "user", "content": "Paris?"}])
    call = first.choices[0].message.tool_calls[0]
    messages = [
        {"role": "user", "content": "Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
    ]
    second = client.chat.completions.create(model=MODEL, tools=TOOLS, messages=messages)
    assert second.choices[0].message.content == "Thanks for the results."
    sent = upstreams["gemini"][1].requests[-1]["contents"][1]["parts"][0]
    from tests.fakes.gemini_server import SIGNATURE

    assert sent["thoughtSignature"] == SIGNATURE
    # the same history, sent to Anthropic, has the signature stripped from the ids
    third = client.chat.completions.create(model="claude-sonnet-4-5-20250929", tools=TOOLS, messages=messages)
    assert third.choices[0].message.content == "Thanks for the results."
    assert upstreams["anthropic"][1].rejected == []


def test_streamed_tool_call_arguments(provider_gateway: Any) -> None:
    client = provider_gateway()
    stream = client.chat.completions.create(
        model=MODEL,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
        messages=[{"role": "user", "content": "Weather?"}],
    )
    args = "".join(
        tc.function.arguments or "" for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or ()
    )
    assert orjson.loads(args) == {"city": "Paris"}


def test_unavailable_is_503_and_wrong_key_is_gateway_error(provider_gateway: Any) -> None:
    client = provider_gateway()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gemini/unavailable", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    client = provider_gateway(gemini_key="wrong")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502


def test_cut_stream_ends_with_error(provider_gateway: Any) -> None:
    client = provider_gateway()
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="gemini/cut-stream", stream=True, messages=[{"role": "user", "content": "a long answer please"}]
        ):
            pass
