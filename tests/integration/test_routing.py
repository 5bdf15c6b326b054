"""Routing through a real gateway: auto, fallbacks on every retryable failure, the circuit breaker,
and streams that are never retried once they sent content."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from llmproxy.config import ProviderSettings, RouterSettings, Secret
from tests.conftest import base_settings
from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import free_port

MSG = [{"role": "user", "content": "hello"}]


def start(
    gateway_factory: Callable[..., str],
    tmp_path: Path,
    upstream: str,
    *,
    fallbacks: dict | None = None,
    extra: tuple[ProviderSettings, ...] = (),
    **router: object,
) -> str:
    settings = base_settings(tmp_path, upstream)
    settings = replace(
        settings, providers=settings.providers + extra, router=RouterSettings(fallbacks=fallbacks or {}, **router)
    )
    return gateway_factory(settings=settings)


def call(base: str, model: str, **kw: object) -> httpx.Response:
    return httpx.post(
        base + "/v1/chat/completions",
        json={"model": model, "messages": MSG, **kw},
        timeout=30,
        headers={"cache-control": "no-store"},
    )  # every call must reach the router


def upstream_models(state: FakeState) -> list[str]:
    return [r["model"] for r in state.requests]


@pytest.mark.parametrize("failing", ["fail-429", "fail-500", "fail-503", "fail-529", "slow-3000", "error-first"])
def test_falls_back_on_each_retryable_failure(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState], failing: str
) -> None:
    base_url, state = openai_upstream
    slow = ProviderSettings(
        name="slowpoke", kind="openai-compatible", base_url=base_url, api_key=Secret(API_KEY), timeout_s=0.5
    )
    primary = f"slowpoke/{failing}" if failing.startswith("slow") else f"openai/{failing}"
    base = start(gateway_factory, tmp_path, base_url, fallbacks={primary: ["ollama/llama3.3"]}, extra=(slow,))
    stream = failing == "error-first"
    r = call(base, primary, stream=stream)
    assert r.status_code == 200, r.text
    assert r.headers["x-llmproxy-provider"] == "ollama"
    assert upstream_models(state) == [failing, "llama3.3"]
    if stream:
        # the role chunk of the failed stream went out at once; the fallback continues it
        assert "error" not in r.text and r.text.endswith("data: [DONE]\n\n")
        events = [orjson.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]
        deltas = [e["choices"][0]["delta"] for e in events if e.get("choices")]
        assert sum("role" in d for d in deltas) == 1
        assert "".join(d.get("content") or "" for d in deltas) == "echo: hello"


def test_falls_back_on_refused_connection(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    dead = ProviderSettings(name="dead", kind="openai-compatible", base_url=f"http://127.0.0.1:{free_port()}/v1")
    base = start(gateway_factory, tmp_path, openai_upstream[0], fallbacks={"dead/x": ["gpt-4o-mini"]}, extra=(dead,))
    r = call(base, "dead/x")
    assert r.status_code == 200 and r.headers["x-llmproxy-model"] == "gpt-4o-mini"


def test_caller_errors_are_not_retried(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    base = start(gateway_factory, tmp_path, openai_upstream[0], fallbacks={"openai/fail-400": ["ollama/llama3.3"]})
    assert call(base, "openai/fail-400").status_code == 400
    assert upstream_models(openai_upstream[1]) == ["fail-400"]


def test_stream_that_sent_content_is_never_retried(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    base = start(
        gateway_factory, tmp_path, openai_upstream[0], fallbacks={"openai/error-after-text": ["ollama/llama3.3"]}
    )
    r = call(base, "openai/error-after-text", stream=True)
    assert "partial" in r.text and "broke mid-way" in r.text
    assert r.text.count('"error"') == 1  # the provider's error event, not a second one of ours
    assert upstream_models(openai_upstream[1]) == ["error-after-text"]
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="openai/error-after-text", messages=MSG, stream=True))


def test_circuit_breaker_opens_and_closes(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    base_url, state = openai_upstream
    flaky = ProviderSettings(name="flaky", kind="openai-compatible", base_url=base_url, api_key=Secret(API_KEY))
    base = start(
        gateway_factory,
        tmp_path,
        base_url,
        fallbacks={"flaky/fail-503": ["ollama/llama3.3"]},
        extra=(flaky,),
        breaker_failures=2,
        breaker_cooldown_s=0.5,
    )
    for _ in range(2):
        assert call(base, "flaky/fail-503").headers["x-llmproxy-provider"] == "ollama"
    assert upstream_models(state).count("fail-503") == 2
    for _ in range(3):  # open: the failing provider is skipped straight away
        assert call(base, "flaky/fail-503").status_code == 200
    assert upstream_models(state).count("fail-503") == 2
    time.sleep(0.6)  # cool-down over: one trial goes to it again
    call(base, "flaky/fail-503")
    assert upstream_models(state).count("fail-503") == 3


def test_auto_routes_and_says_why(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert raw.headers["x-llmproxy-strategy"] == "cost"
    assert raw.headers["x-llmproxy-complexity"] in ("simple", "medium", "complex")
    assert raw.headers["x-llmproxy-provider"] == "openai"  # the only provider with a key in the tests
    assert raw.parse().choices[0].message.content == "echo: hello"
    hard = [
        {
            "role": "user",
            "content": "Prove that there are infinitely many primes p such that p + 2 is also "
            "prime, or explain precisely why this remains open, with a rigorous survey of sieve methods.",
        }
    ]
    quality = client.chat.completions.with_raw_response.create(model="auto:quality", messages=hard)
    assert quality.headers["x-llmproxy-strategy"] == "quality"
    cheap = raw.headers["x-llmproxy-model"]
    assert quality.headers["x-llmproxy-model"] != cheap
    models = {m.id for m in client.models.list()}
    assert {"auto", "auto:cost", "auto:quality", "auto:latency"} <= models


def test_auto_without_a_fitting_model_is_a_clear_400(gateway: str) -> None:
    r = call(gateway, "auto", max_tokens=10_000_000)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "no_model_available"
    assert "context window too small" in r.json()["error"]["message"]
