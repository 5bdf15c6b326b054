"""POST /v1/embeddings end to end: the official openai SDK against the gateway in front of the fake
OpenAI, Gemini and OpenAI-compatible upstreams (float and base64, dimensions, batches split at the
provider's limit and joined in order, the cache, fallbacks, usage and cost, and clear 400s)."""

from __future__ import annotations

import base64
import time
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmproxy.config import CacheSettings, ProviderSettings, RouterSettings, Secret
from tests.conftest import base_settings
from tests.fakes import anthropic_server, gemini_server, openai_server
from tests.fakes.openai_legacy import vector
from tests.integration._providers import fake_anthropic, fake_gemini, upstreams  # noqa: F401 - fixtures by name

MASTER = "sk-master-embeddings-0123456789"


def unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-5 for x, y in zip(a, b, strict=True))


@pytest.fixture
def start(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: Any, upstreams: dict[str, Any]
) -> Callable[..., str]:
    """A gateway (master key) whose openai, gemini and "tei" (OpenAI-compatible) providers are fakes."""
    openai_upstream[1].embedding_requests.clear()
    openai_upstream[1].completion_requests.clear()
    upstreams["gemini"][1].embed_requests.clear()

    def run(**changes: Any) -> str:
        settings = base_settings(tmp_path, openai_upstream[0], master_key=Secret(MASTER), **changes)
        others = tuple(p for p in settings.providers if p.name not in ("anthropic", "gemini"))
        providers = others + (
            ProviderSettings(
                name="anthropic",
                kind="anthropic",
                base_url=upstreams["anthropic"][0].url,
                api_key=Secret(anthropic_server.API_KEY),
            ),
            ProviderSettings(
                name="gemini", kind="gemini", base_url=upstreams["gemini"][0].url, api_key=Secret(gemini_server.API_KEY)
            ),
            ProviderSettings(
                name="tei",
                kind="openai-compatible",
                base_url=openai_upstream[0],
                api_key=Secret(openai_server.API_KEY),
                models=("nomic-embed-text",),
            ),
        )
        return gateway_factory(settings=replace(settings, providers=providers))

    return run


@pytest.fixture
def client(start: Callable[..., str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=start() + "/v1", api_key=MASTER, max_retries=0) as c:
        yield c


@pytest.mark.parametrize(
    "model, size", [("text-embedding-3-small", 1536), ("gemini-embedding-001", 3072), ("nomic-embed-text", 768)]
)
def test_the_sdk_gets_floats_and_base64_from_each_kind_of_provider(
    client: openai.OpenAI, model: str, size: int
) -> None:
    texts = ["the first text", "a second one"]
    floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == size
    assert close(floats.data[1].embedding, vector("a second one", size))
    assert floats.usage.prompt_tokens > 0 and floats.usage.total_tokens == floats.usage.prompt_tokens
    # The SDK asks base64 by default and decodes it itself: the same vectors, to float32 precision.
    packed = client.embeddings.create(model=model, input=texts)
    assert close(packed.data[0].embedding, floats.data[0].embedding)


def test_base64_is_little_endian_float32_as_openai_sends_it(start: Callable[..., str]) -> None:
    url = start()
    for model in ("gemini-embedding-001", "nomic-embed-text", "text-embedding-3-small"):
        answer = httpx.post(
            url + "/v1/embeddings",
            headers={"authorization": f"Bearer {MASTER}"},
            json={"model": model, "input": "pack me", "encoding_format": "base64"},
        ).json()
        raw = base64.b64decode(answer["data"][0]["embedding"])
        values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        assert close(values, vector("pack me", len(values))), model


def test_dimensions_reach_each_provider_in_its_own_terms(
    client: openai.OpenAI, openai_upstream: Any, upstreams: dict[str, Any]
) -> None:
    small = client.embeddings.create(
        model="text-embedding-3-small", input="cut", dimensions=256, encoding_format="float"
    )
    assert len(small.data[0].embedding) == 256 and openai_upstream[1].embedding_requests[-1]["dimensions"] == 256
    cut = client.embeddings.create(model="gemini-embedding-001", input="cut", dimensions=768)
    sent = upstreams["gemini"][1].embed_requests[-1]["requests"][0]
    assert sent == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "cut"}]},
        "outputDimensionality": 768,
    }
    # Gemini's cut vectors are not unit length; the gateway scales them as OpenAI's dimensions does.
    assert close(cut.data[0].embedding, unit(vector("cut", 3072)[:768]))
    assert abs(sum(v * v for v in cut.data[0].embedding) - 1.0) < 1e-4


def test_a_compatible_server_is_asked_for_floats_and_the_gateway_packs_base64(
    client: openai.OpenAI, openai_upstream: Any
) -> None:
    client.embeddings.create(model="nomic-embed-text", input="x", encoding_format="base64")
    assert openai_upstream[1].embedding_requests[-1]["encoding_format"] == "float"
    client.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="base64")
    assert openai_upstream[1].embedding_requests[-1]["encoding_format"] == "base64"  # OpenAI packs its own


def test_large_batches_are_split_at_the_provider_limit_and_joined_in_order(
    client: openai.OpenAI, openai_upstream: Any, upstreams: dict[str, Any]
) -> None:
    texts = [f"text number {i}" for i in range(250)]
    gemini = client.embeddings.create(model="gemini-embedding-001", input=texts, encoding_format="float")
    # the parts go out together, so they may arrive in any order; the answer's order is checked below
    assert sorted(len(r["requests"]) for r in upstreams["gemini"][1].embed_requests) == [50, 100, 100]
    assert [d.index for d in gemini.data] == list(range(250))
    assert all(close(d.embedding, vector(texts[d.index], 3072)) for d in gemini.data[::37])
    many = [f"t{i}" for i in range(4100)]
    small = client.embeddings.create(model="text-embedding-3-small", input=many, dimensions=8, encoding_format="float")
    assert sorted(len(r["input"]) for r in openai_upstream[1].embedding_requests) == [4, 2048, 2048]
    assert [d.index for d in small.data] == list(range(4100))
    assert close(small.data[4099].embedding, vector("t4099", 8)) and close(
        small.data[2048].embedding, vector("t2048", 8)
    )
    assert small.usage.prompt_tokens == 4100  # summed over the parts


def test_token_arrays_go_where_the_provider_takes_them_and_are_refused_clearly_elsewhere(client: openai.OpenAI) -> None:
    answer = client.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]], encoding_format="float"
    )
    assert close(answer.data[1].embedding, vector("tokens:4,5", 1536))
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="gemini-embedding-001", input=[[1, 2, 3]])
    assert refused.value.body["param"] == "input" and "text only" in refused.value.body["message"]


def test_usage_and_cost_are_recorded_and_said_in_the_headers(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-large", input="price me " * 40)
    usage = raw.parse().usage.prompt_tokens
    assert (
        raw.headers["x-llmproxy-model"] == "text-embedding-3-large" and raw.headers["x-llmproxy-provider"] == "openai"
    )
    assert float(raw.headers["x-llmproxy-cost-usd"]) == pytest.approx(usage * 0.13 / 1e6)
    assert raw.headers["x-request-id"] and raw.headers["x-llmproxy-cache"] == "bypass"


def test_the_cache_answers_a_repeated_request_without_a_temperature(
    start: Callable[..., str], openai_upstream: Any
) -> None:
    url = start(cache=CacheSettings(enabled=True))
    with openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0) as client:
        first = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
        again = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
        floats = client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
        )
    assert [r.headers["x-llmproxy-cache"] for r in (first, again, floats)] == ["miss", "hit", "miss"]
    assert again.parse().data[1].embedding == first.parse().data[1].embedding
    assert len(openai_upstream[1].embedding_requests) == 2


def test_fallbacks_go_only_to_embedding_models(start: Callable[..., str], openai_upstream: Any) -> None:
    url = start(router=RouterSettings(fallbacks={"tei/fail-embed": ("gpt-4o", "gemini-embedding-001")}))
    with openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0) as client:
        ok = client.embeddings.with_raw_response.create(model="tei/fail-embed", input="hello", encoding_format="float")
    # The compatible server failed (503); gpt-4o, a chat model, was never tried; Gemini answered.
    assert ok.headers["x-llmproxy-model"] == "gemini-embedding-001"
    assert close(ok.parse().data[0].embedding, vector("hello", 3072))
    assert [r["model"] for r in openai_upstream[1].embedding_requests] == ["fail-embed"]
    assert openai_upstream[1].requests == []  # no chat request went anywhere


def test_a_chat_model_and_a_chat_only_provider_get_a_400_naming_the_model(client: openai.OpenAI) -> None:
    for model in ("claude-sonnet-4-5", "gpt-4o"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model=model, input="x")
        assert refused.value.body["param"] == "model" and f"'{model}'" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as adhoc:
        client.embeddings.create(model="anthropic/some-embedder", input="x")
    assert (
        "serves no embeddings" in adhoc.value.body["message"]
        and "anthropic/some-embedder" in adhoc.value.body["message"]
    )
    with pytest.raises(openai.BadRequestError) as auto:
        client.embeddings.create(model="auto", input="x")
    assert "auto" in auto.value.body["message"]
    # ...and the reverse: an embedding model is no chat model.
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "hi"}])
    assert "/v1/embeddings" in chat.value.body["message"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "text-embedding-3-small"}, "input"),
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": ["ok", 3]}, "input[1]"),
        ({"model": "text-embedding-3-small", "input": ["ok", ""]}, "input[1]"),
        ({"model": "text-embedding-3-small", "input": [[1, 2], [-1]]}, "input[1]"),
        ({"model": "text-embedding-3-small", "input": [1, "a"]}, "input[1]"),
        ({"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": True}, "dimensions"),
        ({"model": "", "input": "x"}, "model"),
        ({"input": "x"}, "model"),
    ],
)
def test_a_malformed_request_gets_a_400_naming_the_field_and_never_reaches_a_provider(
    start: Callable[..., str], openai_upstream: Any, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(start() + "/v1/embeddings", headers={"authorization": f"Bearer {MASTER}"}, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (
        error["param"] == param
        and error["type"] == "invalid_request_error"
        and set(error) == {"message", "type", "param", "code"}
    )
    assert openai_upstream[1].embedding_requests == []


def test_no_key_gets_a_401_before_the_body_is_read(start: Callable[..., str]) -> None:
    response = httpx.post(start() + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_the_models_list_names_the_embedding_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"text-embedding-3-small", "text-embedding-3-large", "gemini-embedding-001"} <= ids


def test_usage_log_and_metrics_count_both_new_routes(start: Callable[..., str]) -> None:
    url = start()
    auth = {"authorization": f"Bearer {MASTER}"}
    with openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0) as client:
        client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    deadline = time.monotonic() + 5
    while True:  # usage rows are written in batches, after the answers
        usage = httpx.get(url + "/admin/usage", params={"group_by": "model"}, headers=auth).json()
        if usage["totals"]["requests"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    by_model = {r["model"]: r for r in usage["data"]}
    assert (
        by_model["text-embedding-3-small"]["prompt_tokens"] == 2 and by_model["text-embedding-3-small"]["cost_usd"] > 0
    )
    assert by_model["gpt-3.5-turbo-instruct"]["completion_tokens"] > 0
    metrics = httpx.get(url + "/metrics", headers=auth).text
    assert (
        'llmproxy_requests_total{model="text-embedding-3-small",provider="openai",route="/v1/embeddings",status="200"} 1.0'
        in metrics
    )
    assert 'route="/v1/completions"' in metrics


def test_the_body_limit_and_methods_are_chats(start: Callable[..., str], openai_upstream: Any) -> None:
    url = start(max_body_bytes=2000)
    auth = {"authorization": f"Bearer {MASTER}"}
    for path, field in (("/v1/embeddings", "input"), ("/v1/completions", "prompt")):
        big = httpx.post(url + path, headers=auth, json={"model": "text-embedding-3-small", field: "x" * 3000})
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
        anonymous = httpx.post(url + path, json={"model": "m", field: "x" * 3000})
        assert anonymous.status_code == 401  # the key is checked before the size, as for chat
        wrong = httpx.get(url + path, headers=auth)
        assert wrong.status_code == 405 and set(wrong.json()["error"]) == {"message", "type", "param", "code"}
    assert openai_upstream[1].embedding_requests == [] and openai_upstream[1].completion_requests == []
