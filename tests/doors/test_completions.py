"""POST /v1/completions end to end with the official openai SDK: passed through to a legacy model
(OpenAI's gpt-3.5-turbo-instruct, an OpenAI-compatible server), translated through chat for every
other model (OpenAI, Anthropic, Gemini), streamed and not; what chat cannot honour refused clearly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from llmproxy.config import CacheSettings
from tests.doors.conftest import MASTER
from tests.integration._providers import fake_anthropic, fake_gemini, upstreams  # noqa: F401 - fixtures by name

CHAT_MODELS = [
    ("gpt-4o-mini", "echo: Say hi"),
    ("claude-sonnet-4-5", "You said: Say hi"),
    ("gemini-2.5-flash", "You said: Say hi"),
]


@pytest.fixture
def start(door_gateway: Callable[..., str], openai_upstream: Any) -> Callable[..., str]:
    """The doors' gateway on the fakes, with the fake's earlier completion requests forgotten."""
    openai_upstream[1].completion_requests.clear()
    return door_gateway


@pytest.fixture
def client(start: Callable[..., str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=start() + "/v1", api_key=MASTER, max_retries=0) as c:
        yield c


def test_a_legacy_model_gets_the_request_as_it_is(client: openai.OpenAI, openai_upstream: Any) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=5, logprobs=2, echo=True, suffix="!"
    )
    answer = raw.parse()
    assert answer.object == "text_completion" and answer.choices[0].text == "Say hiecho: Say hi!"
    assert answer.choices[0].logprobs is not None and answer.usage is not None and answer.usage.total_tokens > 0
    assert openai_upstream[1].completion_requests[-1] == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say hi",
        "max_tokens": 5,
        "logprobs": 2,
        "echo": True,
        "suffix": "!",
    }
    assert raw.headers["x-llmproxy-model"] == "gpt-3.5-turbo-instruct"
    assert float(raw.headers["x-llmproxy-cost-usd"]) == pytest.approx(
        (5 * 1.5 + answer.usage.completion_tokens * 2) / 1e6
    )


def test_a_legacy_stream_is_relayed_and_the_usage_asked_for_on_the_gateways_behalf(
    client: openai.OpenAI, openai_upstream: Any
) -> None:
    chunks = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two three", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: one two three"
    assert chunks[-1].choices[0].finish_reason == "stop" and all(c.usage is None for c in chunks)
    assert openai_upstream[1].completion_requests[-1]["stream_options"] == {"include_usage": True}
    with_usage = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="x", stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None


def test_an_openai_compatible_server_gets_the_legacy_request_for_any_model(
    client: openai.OpenAI, openai_upstream: Any
) -> None:
    answer = client.completions.create(model="llama3.3", prompt=["first", "second"], max_tokens=3)
    assert [c.text for c in answer.choices] == ["echo: first", "echo: second"]
    assert openai_upstream[1].completion_requests[-1]["model"] == "llama3.3"


@pytest.mark.parametrize("model, text", CHAT_MODELS)
def test_a_chat_model_answers_as_a_text_completion(
    client: openai.OpenAI, openai_upstream: Any, model: str, text: str
) -> None:
    answer = client.completions.create(model=model, prompt="Say hi", max_tokens=20, temperature=0)
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.choices[0].text == text and answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    assert openai_upstream[1].completion_requests == []


@pytest.mark.parametrize("model, text", CHAT_MODELS)
def test_a_chat_model_streams_text_completion_chunks(client: openai.OpenAI, model: str, text: str) -> None:
    chunks = list(
        client.completions.create(model=model, prompt="Say hi", stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_chat_translation_sends_the_prompt_as_one_user_message(client: openai.OpenAI, openai_upstream: Any) -> None:
    client.completions.create(model="gpt-4o-mini", prompt="Tell me", max_tokens=7, stop=["\n"], user="u1")
    sent = openai_upstream[1].requests[-1]
    assert sent == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Tell me"}],
        "max_completion_tokens": 7,
        "stop": ["\n"],
        "user": "u1",
    }


@pytest.mark.parametrize("field, value", [("echo", True), ("logprobs", 1), ("suffix", "end"), ("best_of", 2)])
def test_what_chat_cannot_honour_is_refused_with_a_400_naming_the_field(
    client: openai.OpenAI, openai_upstream: Any, field: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="gpt-4o-mini", prompt="x", **{field: value})
    assert refused.value.body["param"] == field and "gpt-4o-mini" in refused.value.body["message"]
    assert openai_upstream[1].requests == []


def test_several_prompts_and_token_prompts_are_refused_for_chat_models(client: openai.OpenAI) -> None:
    for prompt in (["a", "b"], [1, 2, 3]):
        with pytest.raises(openai.BadRequestError) as refused:
            client.completions.create(model="claude-sonnet-4-5", prompt=prompt)
        assert refused.value.body["param"] == "prompt"


def test_auto_serves_completions_through_a_chat_model(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="auto", prompt="What is 2+2?")
    assert raw.parse().choices[0].text and raw.headers["x-llmproxy-model"] != "gpt-3.5-turbo-instruct"
    assert raw.headers["x-llmproxy-complexity"]


def test_a_legacy_model_is_no_chat_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-3.5-turbo-instruct", messages=[{"role": "user", "content": "x"}])
    assert "/v1/completions" in refused.value.body["message"] and refused.value.body["param"] == "model"


def test_the_cache_keeps_completions_apart_from_chat_and_replays_a_stream(
    start: Callable[..., str], openai_upstream: Any
) -> None:
    url = start(cache=CacheSettings(enabled=True))
    with openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0) as client:
        chat = client.chat.completions.create(
            model="gpt-4o-mini", temperature=0, messages=[{"role": "user", "content": "Same"}]
        )
        first = client.completions.with_raw_response.create(model="gpt-4o-mini", prompt="Same", temperature=0)
        streamed = list(client.completions.create(model="gpt-4o-mini", prompt="Same", temperature=0, stream=True))
    assert chat.choices[0].message.content == "echo: Same"
    assert first.headers["x-llmproxy-cache"] == "miss" and first.parse().choices[0].text == "echo: Same"
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "echo: Same"
    assert len(openai_upstream[1].requests) == 2  # the stream was a hit on the completion


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "gpt-4o-mini"}, "prompt"),
        ({"model": "gpt-4o-mini", "prompt": []}, "prompt"),
        ({"model": "gpt-4o-mini", "prompt": [[1], "a"]}, "prompt[1]"),
        ({"model": "gpt-4o-mini", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o-mini", "prompt": "x", "temperature": 3}, "temperature"),
        ({"model": "gpt-4o-mini", "prompt": "x", "n": 0}, "n"),
        ({"model": "gpt-4o-mini", "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": "gpt-4o-mini", "prompt": "x", "echo": "yes"}, "echo"),
        ({"model": "gpt-4o-mini", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "gpt-4o-mini", "prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "gpt-4o-mini", "prompt": "x", "best_of": 1, "n": 2}, "best_of"),
        ({"prompt": "x"}, "model"),
    ],
)
def test_a_malformed_request_gets_a_400_naming_the_field(
    start: Callable[..., str], openai_upstream: Any, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(start() + "/v1/completions", headers={"authorization": f"Bearer {MASTER}"}, json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert openai_upstream[1].requests == [] and openai_upstream[1].completion_requests == []
