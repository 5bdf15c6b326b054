"""GET /metrics through a real gateway, parsed with prometheus-client's own parser; and the series
read from other components at scrape time, on stand-in components."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmproxy.breakers import Breaker, Health
from llmproxy.cache import ResponseCache
from llmproxy.config import CacheSettings, ProviderSettings, Settings
from llmproxy.context import Attempt, RequestContext
from llmproxy.current import Current
from llmproxy.metrics import Metrics
from llmproxy.usage import UsageRecorder
from llmproxy.registry import ModelEntry, build_registry
from tests.fakes.openai_server import FakeState

SECRET_PROMPT = "my-prompt-must-not-be-a-label"
ALLOWED_LABELS = {
    "route",
    "model",
    "provider",
    "status",
    "type",
    "result",
    "reason",
    "version",
    "le",
    "implementation",
    "major",
    "minor",
    "patchlevel",
    "generation",
}


def scrape(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert SECRET_PROMPT not in r.text
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    found = [
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (sample, labels, [s for s in families[family].samples if s.name == sample])
    return found[0]


def test_metrics_after_real_traffic(
    gateway_factory: Callable[..., str], openai_upstream: tuple[str, FakeState]
) -> None:
    url = gateway_factory()
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for i in (1, 2, 3):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{SECRET_PROMPT} {i}"}]
        )
    for i in range(2):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": f"one two {i}"}],
        )
        for _ in stream:
            pass
    try:
        client.chat.completions.create(model="openai/fail-500", messages=[{"role": "user", "content": "x"}])
    except openai.APIStatusError as exc:
        assert exc.status_code >= 500
    for name in ("openai/made-up-model-1", "openai/made-up-model-2"):  # upstream 404s: labelled "other"
        try:
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
        except openai.NotFoundError:
            pass

    m = scrape(url)
    chat = {"route": "/v1/chat/completions", "model": "gpt-4o-mini", "provider": "openai"}
    assert value(m, "llmproxy_requests", "llmproxy_requests_total", **chat, status="200") == 5
    assert (
        value(m, "llmproxy_request_duration_seconds", "llmproxy_request_duration_seconds_count", **chat, status="2xx")
        == 5
    )
    assert (
        value(
            m,
            "llmproxy_time_to_first_token_seconds",
            "llmproxy_time_to_first_token_seconds_count",
            model="gpt-4o-mini",
            provider="openai",
        )
        == 2
    )
    # the fake answers 12 prompt tokens (2 cached) and 7 completion tokens; streams 12 and one per word
    # of "echo: one two N"
    tokens = {"model": "gpt-4o-mini", "provider": "openai"}
    assert value(m, "llmproxy_tokens", "llmproxy_tokens_total", **tokens, type="prompt") == 5 * 12
    assert value(m, "llmproxy_tokens", "llmproxy_tokens_total", **tokens, type="completion") == 3 * 7 + 2 * 4
    assert value(m, "llmproxy_tokens", "llmproxy_tokens_total", **tokens, type="cached") == 3 * 2
    assert value(m, "llmproxy_cost_usd", "llmproxy_cost_usd_total", **tokens) > 0
    assert (
        value(
            m,
            "llmproxy_requests",
            "llmproxy_requests_total",
            route="/v1/chat/completions",
            model="other",
            provider="openai",
            status="404",
        )
        == 2
    )
    assert (
        sum(
            s.value
            for s in m["llmproxy_requests"].samples
            if s.name == "llmproxy_requests_total" and s.labels["status"].startswith("5")
        )
        == 1
    )
    assert sum(s.value for s in m["llmproxy_cache_requests"].samples if s.name.endswith("_total")) == 8
    assert value(m, "llmproxy_overhead_seconds", "llmproxy_overhead_seconds_count", route="/v1/chat/completions") == 8
    assert value(m, "llmproxy_registry_version", "llmproxy_registry_version") >= 1
    assert value(m, "llmproxy_registry_models", "llmproxy_registry_models") > 10
    assert value(m, "llmproxy_circuit_breaker_state", "llmproxy_circuit_breaker_state", provider="openai") == 0
    assert value(m, "process_resident_memory_bytes", "process_resident_memory_bytes") > 10_000_000
    for family in (
        "llmproxy_usage_queue_depth",
        "llmproxy_usage_rows_written",
        "llmproxy_usage_rows_dropped",
        "llmproxy_fallbacks",
        "llmproxy_ratelimit_rejections",
        "llmproxy_cache_lookups",
    ):
        assert family in m
    deadline = time.monotonic() + 5
    while (
        value(m, "llmproxy_usage_rows_written", "llmproxy_usage_rows_written_total") < 8 and time.monotonic() < deadline
    ):
        time.sleep(0.05)
        m = scrape(url)
    assert value(m, "llmproxy_usage_rows_written", "llmproxy_usage_rows_written_total") == 8
    assert value(m, "llmproxy_usage_queue_depth", "llmproxy_usage_queue_depth") == 0
    for family in m.values():  # bounded labels only: no key ids, users or prompts
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, s


def entry(id_: str) -> ModelEntry:
    return ModelEntry(id=id_, provider="openai", provider_model=id_, input_per_mtok=1.0, output_per_mtok=2.0)


def components(tmp_path: Path) -> Metrics:
    """Metrics over real components (a registry, settings, breakers, a cache and a usage queue),
    each in a known state."""
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    registry = build_registry(
        [entry("gpt-4o"), entry("o3")],
        version=7,
        providers={
            "openai": {"status": "ok", "last_success": now_iso},
            "anthropic": {"status": "seeded", "last_success": None},
        },
    )
    health = Health()
    health.breakers["openai"] = Breaker(failures=5, open_until=time.monotonic() + 30)
    health.breakers["anthropic"] = Breaker()
    settings = Settings(
        data_dir=tmp_path, providers=(ProviderSettings(name="openai", kind="openai", base_url="http://127.0.0.1:9"),)
    )
    cache = ResponseCache(CacheSettings())
    cache.hits, cache.misses, cache.bypasses, cache.stores, cache.disk_hits = 4, 6, 1, 6, 1
    usage = UsageRecorder(_nowhere, interval_s=60, batch_size=10, max_rows=3)
    for _ in range(5):
        usage.add(())
    usage.written, usage.write_failures = 10, 1
    return Metrics(Current(settings), Current(registry), usage=usage, cache=cache, breakers=health, process=False)


async def _nowhere(rows: Any) -> None:
    raise AssertionError("the queue is never flushed here")


def test_scrape_time_series_from_the_other_components(tmp_path: Path) -> None:
    metrics = components(tmp_path)
    m = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert value(m, "llmproxy_registry_version", "llmproxy_registry_version") == 7
    age = value(
        m, "llmproxy_registry_last_success_age_seconds", "llmproxy_registry_last_success_age_seconds", provider="openai"
    )
    assert 119 <= age <= 150
    assert not [
        s for s in m["llmproxy_registry_last_success_age_seconds"].samples if s.labels["provider"] == "anthropic"
    ]
    assert value(m, "llmproxy_circuit_breaker_state", "llmproxy_circuit_breaker_state", provider="openai") == 2
    assert value(m, "llmproxy_circuit_breaker_state", "llmproxy_circuit_breaker_state", provider="anthropic") == 0
    assert value(m, "llmproxy_cache_lookups", "llmproxy_cache_lookups_total", result="hit") == 4
    assert value(m, "llmproxy_cache_lookups", "llmproxy_cache_lookups_total", result="miss") == 6
    assert value(m, "llmproxy_cache_memory_entries", "llmproxy_cache_memory_entries") == len(metrics.cache.memory)
    assert value(m, "llmproxy_cache_stores", "llmproxy_cache_stores_total") == 6
    assert value(m, "llmproxy_usage_queue_depth", "llmproxy_usage_queue_depth") == 3
    assert value(m, "llmproxy_usage_rows_dropped", "llmproxy_usage_rows_dropped_total") == 2
    assert value(m, "llmproxy_usage_rows_written", "llmproxy_usage_rows_written_total") == 10


def test_a_failing_component_does_not_break_the_scrape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = components(tmp_path)

    def broken() -> None:
        raise RuntimeError("a counter went missing")

    monkeypatch.setattr(metrics.cache, "counters", broken)
    m = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert "llmproxy_requests" in m and "llmproxy_registry_version" in m and "llmproxy_usage_queue_depth" in m
    assert "llmproxy_cache_lookups" not in m and "llmproxy_cache_memory_bytes" not in m  # all of it or none


def test_observe_bounds_labels_and_counts_fallbacks_and_rejections(tmp_path: Path) -> None:
    metrics = components(tmp_path)
    provider = SimpleNamespace(name="openai", kind="openai", models=())
    for name in ("gpt-4o", "openai/whatever-1", "openai/whatever-2"):
        ctx = RequestContext(request_id="r", body={})
        ctx.model, ctx.provider, ctx.status = entry(name), provider, 200  # type: ignore[assignment]  # a stand-in provider
        ctx.attempts = [Attempt("openai", "o3", 503), Attempt("openai", name, 200)]
        metrics.observe(ctx, 0.01, 0.0001)
    hit = RequestContext(request_id="r", body={})  # a cache hit: no provider call, named by what it replays
    hit.cache_status, hit.cost_usd, hit.saved_usd = "hit", 0.0, 0.25
    hit.served_model, hit.served_provider = "gpt-4o", "openai"
    metrics.observe(hit, 0.01, 0.0001)
    limited = RequestContext(request_id="r", body={})
    limited.status, limited.error_type = 429, "rate_limit_exceeded"
    metrics.observe(limited, 0.01, 0.0001)
    m = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    models = {s.labels["model"] for s in m["llmproxy_requests"].samples}
    assert models == {"gpt-4o", "other", ""}
    assert value(m, "llmproxy_requests", "llmproxy_requests_total", model="other", status="200") == 2
    assert value(m, "llmproxy_fallbacks", "llmproxy_fallbacks_total", provider="openai", model="o3") == 3
    assert (
        value(m, "llmproxy_ratelimit_rejections", "llmproxy_ratelimit_rejections_total", reason="rate_limit_exceeded")
        == 1
    )
    assert value(m, "llmproxy_unpriced_requests", "llmproxy_unpriced_requests_total", model="other") == 2
    assert value(m, "llmproxy_requests", "llmproxy_requests_total", model="gpt-4o", status="200") == 2
    assert value(m, "llmproxy_cache_saved_usd", "llmproxy_cache_saved_usd_total", model="gpt-4o") == 0.25
    assert value(m, "llmproxy_cache_requests", "llmproxy_cache_requests_total", result="hit") == 1


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    a, b = components(tmp_path), components(tmp_path)
    ctx = RequestContext(request_id="r", body={})
    a.observe(ctx, 0.01, 0.0001)
    assert b"llmproxy_requests_total{" in a.render()
    assert b"llmproxy_requests_total{" not in b.render()
