"""The gateway in front of a fake Anthropic API, driven by the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.integration._providers import TOOLS, fake_anthropic, fake_gemini, provider_gateway, upstreams  # noqa: F401 - fixtures requested by name

MODEL = "claude-sonnet-4-5-20250929"


def test_completion_with_system_and_usage(provider_gateway: Any, upstreams: dict[str, Any]) -> None:
    client = provider_gateway()
    done = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        temperature=0.2,
    )
    assert done.choices[0].message.content == "You said: hello there"
    assert done.choices[0].finish_reason == "stop"
    assert done.model == MODEL
    assert done.usage.prompt_tokens == 25 + 1024 and done.usage.prompt_tokens_details.cached_tokens == 1024
    sent = upstreams["anthropic"][1].requests[-1]
    assert sent["system"] == [{"type": "text", "text": "Be brief."}] and sent["max_tokens"] == 64000
    headers = upstreams["anthropic"][1].headers[-1]
    assert headers["anthropic-version"] == "2023-06-01" and "authorization" not in headers


def test_stream_through_sdk(provider_gateway: Any) -> None:
    client = provider_gateway()
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_tool_loop_and_stream_tool_calls(provider_gateway: Any, upstreams: dict[str, Any]) -> None:
    client = provider_gateway()
    first = client.chat.completions.create(
        model=MODEL, tools=TOOLS, tool_choice="required", messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and orjson.loads(call.function.arguments) == {"city": "Paris"}
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21C"},
    ]
    second = client.chat.completions.create(model=MODEL, tools=TOOLS, messages=messages)
    assert second.choices[0].message.content == "Thanks for the results."
    assert upstreams["anthropic"][1].rejected == []
    stream = client.chat.completions.create(
        model=MODEL,
        tools=TOOLS,
        tool_choice="required",
        stream=True,
        messages=[{"role": "user", "content": "Weather?"}],
    )
    args = "".join(
        tc.function.arguments or "" for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or ()
    )
    assert orjson.loads(args) == {"city": "Paris"}


def test_overloaded_is_503_and_bad_request_keeps_message(provider_gateway: Any) -> None:
    client = provider_gateway()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="anthropic/overloaded", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=2)
    assert "n > 1" in str(bad.value)


def test_error_event_mid_stream_reaches_the_client(provider_gateway: Any) -> None:
    client = provider_gateway()
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="anthropic/stream-error", stream=True, messages=[{"role": "user", "content": "a b c"}]
        ):
            pass
