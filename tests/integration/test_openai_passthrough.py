"""The gateway in front of a fake OpenAI upstream, driven by the official openai SDK and raw httpx."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest

from tests.fakes.openai_server import FakeState


def client(base: str, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def test_plain_completion_through_sdk(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    completion = client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.model == "gpt-4o-mini-2025-01-01"  # the model that actually answered
    assert completion.usage.prompt_tokens == 12
    assert openai_upstream[1].requests[-1]["model"] == "gpt-4o-mini"


def test_unknown_fields_reach_upstream(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        temperature=0.3,
        extra_body={"my_custom_field": {"a": [1, 2]}, "metadata": {"team": "x"}},
    )
    sent = openai_upstream[1].requests[-1]
    assert sent["my_custom_field"] == {"a": [1, 2]}
    assert sent["metadata"] == {"team": "x"}
    assert sent["temperature"] == 0.3


def test_with_raw_response_headers(gateway: str) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "req-abc"}
    )
    assert raw.headers["x-request-id"] == "req-abc"
    assert raw.headers["x-llmproxy-model"] == "gpt-4o-mini"
    assert raw.headers["x-llmproxy-provider"] == "openai"
    assert float(raw.headers["x-llmproxy-overhead-ms"]) >= 0
    assert float(raw.headers["x-llmproxy-cost-usd"]) > 0
    assert raw.parse().choices[0].message.content == "echo: hi"


def test_request_id_is_generated_when_absent(gateway: str) -> None:
    r = httpx.post(
        gateway + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 200
    assert len(r.headers["x-request-id"]) >= 16
    assert "x-llmproxy-overhead-ms" in r.headers


def test_stream_through_sdk_without_usage(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert all(c.choices for c in chunks), "the usage chunk the gateway asked for must not reach the client"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert openai_upstream[1].requests[-1]["stream_options"] == {"include_usage": True}


def test_stream_with_usage_when_asked(gateway: str) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3


def test_stream_ends_with_done(gateway: str) -> None:
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "a"}]},
    ) as r:
        body = r.read()
    assert r.headers["content-type"].startswith("text/event-stream")
    assert body.endswith(b"data: [DONE]\n\n")


def test_stream_chunks_arrive_as_they_are_produced(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    openai_upstream[1].chunk_delay_s = 0.3
    arrivals = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "w1 w2 w3"}]},
    ) as r:
        for _ in r.iter_raw():
            arrivals.append(time.monotonic() - started)
    # the role chunk comes at once, not after the 4 x 0.3 s the whole stream takes
    assert arrivals[0] < 0.25
    assert len(arrivals) >= 4
    assert arrivals[-1] > 1.0


def test_client_disconnect_closes_upstream(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "openai/endless", "stream": True, "messages": [{"role": "user", "content": "go"}]},
    ) as r:
        for i, _ in enumerate(r.iter_raw()):
            if i >= 2:
                break
    deadline = time.monotonic() + 3
    while openai_upstream[1].disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert openai_upstream[1].disconnects == 1


def test_cut_stream_ends_with_error_event(gateway: str) -> None:
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "openai/cut-stream", "stream": True, "messages": [{"role": "user", "content": "a b"}]},
    ) as r:
        body = r.read()
    last = body.strip().split(b"\n\n")[-1]
    assert last.startswith(b"data: ")
    assert "error" in orjson.loads(last[6:])
    with pytest.raises(openai.APIError):
        list(
            client(gateway).chat.completions.create(
                model="openai/cut-stream", messages=[{"role": "user", "content": "a"}], stream=True
            )
        )


def test_provider_slash_model_reaches_unknown_models(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="openai/some-new-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert openai_upstream[1].requests[-1]["model"] == "some-new-model"
    assert "x-llmproxy-cost-usd" not in raw.headers  # unknown price: no made-up zero


def test_openai_compatible_provider_by_declared_name(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="llama3.3", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-llmproxy-provider"] == "ollama"
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="ollama/llama3.3", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-llmproxy-provider"] == "ollama"


def test_models_list_and_retrieve(gateway: str) -> None:
    c = client(gateway)
    models = {m.id: m for m in c.models.list()}
    assert models["gpt-4o-mini"].owned_by == "openai"
    assert any(m.owned_by == "anthropic" for m in models.values())
    assert any(m.owned_by == "gemini" for m in models.values())
    assert models["llama3.3"].owned_by == "ollama"
    assert c.models.retrieve("gpt-4o-mini").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")


def test_health_and_readiness(gateway: str) -> None:
    assert httpx.get(gateway + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "registry": True}
