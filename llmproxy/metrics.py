"""Metrics: Prometheus series for every request, and GET /metrics.

Each app builds its own CollectorRegistry in its lifespan (no module-level registry, so two apps in
one process never share series). The record stage calls Metrics.observe() once per request. That
path only adds to plain numbers on a per-(route, model, provider, status) object bound once, and a
histogram observation is one bisect: no locks (observe and the scrape both run on the event loop),
no per-call label lookups. The Prometheus families are built from those numbers at scrape time.

What other components know (registry version and scrape ages, circuit breakers, the cache's own
counters, the usage queue) is read at scrape time too, each through its typed stats() (the cache's
counters()), so those components never call this module and a renamed counter is a type error,
not a silently missing series. A component whose stats() fails is logged and skipped; the rest of
the scrape still answers.

Labels stay bounded: route, model (registry ids and configured models; anything else is "other"),
provider, status. Never a key id, a user or a prompt.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import __version__
from .breakers import CLOSED, HALF_OPEN, OPEN, Health
from .config import Settings
from .context import RequestContext
from .current import Current
from .registry import Registry

if TYPE_CHECKING:  # stages never import each other at run time; these are only the types read
    from .cache import ResponseCache
    from .shared.deployment import Deployment
    from .usage import UsageRecorder

log = logging.getLogger("llmproxy.metrics")

CHAT_ROUTE = "/v1/chat/completions"
OTHER = "other"
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
BREAKER_STATES = {CLOSED: 0.0, HALF_OPEN: 1.0, OPEN: 2.0}
_LIMIT_REASONS = ("rate_limit_exceeded", "insufficient_quota")
_MAX_BOUND = 4096  # raw keys remembered before the map is rebuilt (the label sets themselves stay bounded)


class _Histogram:
    """Bucket counts (not cumulative) and a sum; the +Inf bucket is the last one."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def merge(self, other: _Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class _Series:
    """Everything counted for one (route, model, provider, status)."""

    __slots__ = (
        "route",
        "model",
        "provider",
        "status",
        "requests",
        "latency",
        "ttft",
        "prompt",
        "completion",
        "cached",
        "reasoning",
        "cost",
        "saved",
        "unpriced",
    )

    def __init__(self, route: str, model: str, provider: str, status: int) -> None:
        self.route, self.model, self.provider, self.status = route, model, provider, status
        self.requests = self.prompt = self.completion = self.cached = self.reasoning = self.unpriced = 0
        self.cost = self.saved = 0.0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.ttft = _Histogram(TTFT_BUCKETS)


class Metrics:
    """The gateway's Prometheus series, in a registry of its own. `settings` and `registry` bound
    the labels (the ones in use at each new label set); `usage`, `cache` and `breakers` are read
    at scrape time."""

    def __init__(
        self,
        settings: Current[Settings],
        registry: Current[Registry],
        *,
        usage: UsageRecorder,
        cache: ResponseCache,
        breakers: Health,
        shared: Deployment | None = None,
        process: bool = True,
    ) -> None:
        self._settings, self._models = settings, registry
        self.usage, self.cache, self.breakers, self.shared = usage, cache, breakers, shared
        self.registry = CollectorRegistry(auto_describe=False)
        self._series: dict[tuple[str, str, str, int], _Series] = {}  # by bounded labels
        self._bound: dict[tuple[str, str, str, int], _Series] = {}  # by raw model id / provider name
        self._overhead: dict[str, _Histogram] = {}
        self.cache_results = {"hit": 0, "miss": 0, "bypass": 0}
        self.fallbacks: dict[tuple[str, str], int] = {}
        self.rejections: dict[tuple[str, str], int] = {}
        self.registry.register(_RequestCollector(self))
        self.registry.register(_StateCollector(self))
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def observe(self, ctx: RequestContext, latency_s: float, overhead_s: float, route: str = CHAT_ROUTE) -> None:
        """The record stage's share: one finished request, its latency and the gateway's part of it."""
        model = ctx.model
        provider = ctx.provider
        # A cache hit has no model of its own: it names what gave the answer it replays.
        model_id = model.id if model is not None else ctx.served_model or ""
        provider_name = provider.name if provider is not None else ctx.served_provider or ""
        status = ctx.status
        series = self._bound.get((route, model_id, provider_name, status))
        if series is None:
            series = self._bind(route, model_id, provider_name, status)
        series.requests += 1
        series.latency.observe(latency_s)
        overhead = self._overhead.get(route)
        if overhead is None:
            overhead = self._overhead[route] = _Histogram(OVERHEAD_BUCKETS)
        overhead.observe(overhead_s)
        if ctx.stream and ctx.first_token_s is not None:
            series.ttft.observe(ctx.first_token_s)
        usage = ctx.usage
        if usage:
            series.prompt += usage.get("prompt_tokens") or 0
            series.completion += usage.get("completion_tokens") or 0
            details = usage.get("prompt_tokens_details")
            if details:
                series.cached += details.get("cached_tokens") or 0
            details = usage.get("completion_tokens_details")
            if details:
                series.reasoning += details.get("reasoning_tokens") or 0
        cost = ctx.cost_usd
        if cost:
            series.cost += cost
        elif cost is None and status == 200 and model is not None:
            series.unpriced += 1
        if ctx.saved_usd:
            series.saved += ctx.saved_usd
        results = self.cache_results
        if ctx.cache_status in results:
            results[ctx.cache_status] += 1
        attempts = ctx.attempts
        if len(attempts) > 1:
            for attempt in attempts[:-1]:
                model_label, provider_label = self._labels(attempt.model, attempt.provider)
                key = (provider_label, model_label)
                self.fallbacks[key] = self.fallbacks.get(key, 0) + 1
        if status == 429 and not attempts:
            key = (route, ctx.error_type if ctx.error_type in _LIMIT_REASONS else OTHER)
            self.rejections[key] = self.rejections.get(key, 0) + 1

    def _bind(self, route: str, model_id: str, provider_name: str, status: int) -> _Series:
        if len(self._bound) >= _MAX_BOUND:
            self._bound.clear()
        model_label, provider_label = self._labels(model_id, provider_name)
        labels = (route, model_label, provider_label, status)
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(*labels)
        self._bound[(route, model_id, provider_name, status)] = series
        return series

    def _labels(self, model_id: str, provider_name: str) -> tuple[str, str]:
        """Bounded labels: a model the registry knows or the config declares, else "other"; a
        configured provider, else "other"."""
        provider = self._settings.current.provider(provider_name) if provider_name else None
        if provider_name and provider is None:
            provider_name = OTHER
        if not model_id:
            return model_id, provider_name
        if self._models.current.lookup(model_id) is not None:
            return model_id, provider_name
        upstream = model_id.partition("/")[2]
        if provider is not None and upstream in provider.models:
            return model_id, provider_name
        return OTHER, provider_name

    def series(self) -> Iterable[_Series]:
        return list(self._series.values())

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCollector:
    """The per-request series, built from Metrics' numbers at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily(
            "llmproxy_requests",
            "Requests answered, by route, model, provider and HTTP status.",
            labels=["route", "model", "provider", "status"],
        )
        latency = HistogramMetricFamily(
            "llmproxy_request_duration_seconds",
            "Time from request to the last byte of the answer, by status class.",
            labels=["route", "model", "provider", "status"],
        )
        ttft = HistogramMetricFamily(
            "llmproxy_time_to_first_token_seconds",
            "Streams: time from request to the first output sent to the client.",
            labels=["model", "provider"],
        )
        tokens = CounterMetricFamily(
            "llmproxy_tokens",
            "Tokens by kind: prompt (all input), completion (all "
            "output), cached (input read from a prompt cache), reasoning (part of "
            "completion).",
            labels=["model", "provider", "type"],
        )
        cost = CounterMetricFamily(
            "llmproxy_cost_usd", "Cost in USD at the registry prices of the moment.", labels=["model", "provider"]
        )
        saved = CounterMetricFamily(
            "llmproxy_cache_saved_usd", "USD that cache hits saved.", labels=["model", "provider"]
        )
        unpriced = CounterMetricFamily(
            "llmproxy_unpriced_requests",
            "Answered requests whose cost is unknown (no registry price).",
            labels=["model", "provider"],
        )
        by_class: dict[tuple[str, str, str, str], _Histogram] = {}
        by_model: dict[tuple[str, str], list[Any]] = {}
        for s in m.series():
            requests.add_metric([s.route, s.model, s.provider, str(s.status)], s.requests)
            merged = by_class.setdefault(
                (s.route, s.model, s.provider, f"{s.status // 100}xx"), _Histogram(LATENCY_BUCKETS)
            )
            merged.merge(s.latency)
            if not s.model:
                continue
            acc = by_model.setdefault((s.model, s.provider), [_Histogram(TTFT_BUCKETS), 0, 0, 0, 0, 0.0, 0.0, 0])
            acc[0].merge(s.ttft)
            for i, value in enumerate((s.prompt, s.completion, s.cached, s.reasoning, s.cost, s.saved, s.unpriced)):
                acc[i + 1] += value
        for labels, h in by_class.items():
            latency.add_metric(list(labels), h.buckets(), h.sum)
        for (model, provider), (h, prompt, completion, cached, reasoning, usd, saved_usd, unknown) in by_model.items():
            if sum(h.counts):
                ttft.add_metric([model, provider], h.buckets(), h.sum)
            for kind, n in (
                ("prompt", prompt),
                ("completion", completion),
                ("cached", cached),
                ("reasoning", reasoning),
            ):
                tokens.add_metric([model, provider, kind], n)
            cost.add_metric([model, provider], usd)
            saved.add_metric([model, provider], saved_usd)
            unpriced.add_metric([model, provider], unknown)
        yield from (requests, latency, ttft, tokens, cost, saved, unpriced)
        overhead = HistogramMetricFamily(
            "llmproxy_overhead_seconds",
            "The gateway's own time per request (total minus waiting on the provider).",
            labels=["route"],
        )
        for route, h in list(m._overhead.items()):
            overhead.add_metric([route], h.buckets(), h.sum)
        yield overhead
        cache = CounterMetricFamily(
            "llmproxy_cache_requests", "Chat requests by response-cache result.", labels=["result"]
        )
        for result, n in m.cache_results.items():
            cache.add_metric([result], n)
        yield cache
        fallbacks = CounterMetricFamily(
            "llmproxy_fallbacks",
            "Failed attempts the route moved on from, by the provider and model that failed.",
            labels=["provider", "model"],
        )
        for (provider, model), n in list(m.fallbacks.items()):
            fallbacks.add_metric([provider, model], n)
        yield fallbacks
        rejections = CounterMetricFamily(
            "llmproxy_ratelimit_rejections",
            "Requests the gateway's own limits "
            "refused (429 before any provider was called), by reason: "
            "rate_limit_exceeded (requests or tokens per minute) or "
            "insufficient_quota (budget).",
            labels=["route", "reason"],
        )
        for (route, reason), n in list(m.rejections.items()):
            rejections.add_metric([route, reason], n)
        yield rejections
        info = GaugeMetricFamily("llmproxy_build_info", "Always 1; the version as a label.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


class _StateCollector:
    """Series read from the gateway's components at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # dynamic: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        parts: tuple[tuple[str, Callable[[], Iterator[Metric]]], ...] = (
            ("usage queue", lambda: _usage_queue(m.usage)),
            ("registry", lambda: _registry(m._models.current)),
            ("cache", lambda: _cache(m.cache)),
            ("breakers", lambda: _breakers(m.breakers)),
            ("redis link", lambda: _redis(m.shared)),
        )
        for name, collect in parts:
            try:
                yield from list(collect())  # whole or not at all
            except Exception as exc:  # noqa: BLE001 - one failing component must not break the scrape
                log.warning("metrics: could not read the %s: %s", name, exc)


def _usage_queue(usage: UsageRecorder) -> Iterator[Metric]:
    stats = usage.stats()
    yield GaugeMetricFamily("llmproxy_usage_queue_depth", "Usage rows waiting to be written.", value=stats.depth)
    yield CounterMetricFamily("llmproxy_usage_rows_written", "Usage rows written to the store.", value=stats.written)
    yield CounterMetricFamily(
        "llmproxy_usage_rows_dropped", "Usage rows dropped because the queue was full.", value=stats.dropped
    )
    yield CounterMetricFamily(
        "llmproxy_usage_write_failures",
        "Usage batch writes that failed (and were retried).",
        value=stats.write_failures,
    )


def _registry(registry: Registry) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "llmproxy_registry_version", "Version of the model registry in use.", value=float(registry.version)
    )
    yield GaugeMetricFamily("llmproxy_registry_models", "Models in the registry in use.", value=len(registry.models))
    age = GaugeMetricFamily(
        "llmproxy_registry_last_success_age_seconds",
        "Seconds since each provider's prices were last scraped successfully (absent for a provider never scraped).",
        labels=["provider"],
    )
    stamp = GaugeMetricFamily(
        "llmproxy_registry_last_success_timestamp_seconds",
        "Unix time of each provider's last successful price scrape.",
        labels=["provider"],
    )
    now = time.time()
    for name, status in registry.providers.items():
        when = _unix(status.get("last_success") if isinstance(status, Mapping) else None)
        if when is None:
            continue
        age.add_metric([str(name)], max(0.0, now - when))
        stamp.add_metric([str(name)], when)
    yield age
    yield stamp


def _cache(cache: ResponseCache) -> Iterator[Metric]:
    """The response cache's own counters (hits and misses as the cache counts them, memory use)."""
    c = cache.counters()
    family = CounterMetricFamily(
        "llmproxy_cache_lookups", "Response-cache lookups by result (the cache's own count).", labels=["result"]
    )
    for result, n in (("hit", c.hits), ("disk_hit", c.disk_hits), ("miss", c.misses), ("bypass", c.bypasses)):
        family.add_metric([result], n)
    yield family
    yield CounterMetricFamily("llmproxy_cache_stores", "Responses stored in the cache.", value=c.stores)
    yield CounterMetricFamily(
        "llmproxy_cache_dropped_writes",
        "Cache writes that never reached the disk (shed, or a failed batch).",
        value=c.dropped_writes,
    )
    yield CounterMetricFamily(
        "llmproxy_cache_shed_writes",
        "Cache writes shed because the disk write queue was at its byte bound.",
        value=c.shed_writes,
    )
    yield CounterMetricFamily("llmproxy_cache_disk_errors", "Cache store errors.", value=c.disk_errors)
    yield GaugeMetricFamily(
        "llmproxy_cache_write_queue_bytes", "Bytes of answers waiting for the disk.", value=c.pending_bytes
    )
    yield GaugeMetricFamily("llmproxy_cache_memory_bytes", "Bytes held by the in-memory cache.", value=c.memory_bytes)
    yield GaugeMetricFamily("llmproxy_cache_memory_entries", "Entries in the in-memory cache.", value=c.memory_entries)
    yield CounterMetricFamily(
        "llmproxy_cache_evictions", "Entries evicted from the in-memory cache.", value=c.evictions
    )


def _breakers(breakers: Health) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "llmproxy_circuit_breaker_state",
        "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open (providers never failed are absent).",
        labels=["provider"],
    )
    for provider, state in breakers.stats().items():
        family.add_metric([provider], BREAKER_STATES.get(state, math.nan))
    yield family


def _redis(shared: Deployment | None) -> Iterator[Metric]:
    """The link to Redis, when the deployment shares state through it."""
    if shared is None:
        return
    stats = shared.stats()
    yield GaugeMetricFamily(
        "llmproxy_redis_up",
        "1 when Redis answers (limits exact across processes), 0 while limits fall back to this process's share.",
        value=1.0 if stats["up"] else 0.0,
    )
    yield GaugeMetricFamily(
        "llmproxy_redis_live_processes",
        "Gateway processes seen alive through Redis (what limits are divided by while it is down).",
        value=stats["live_processes"],
    )
    yield GaugeMetricFamily(
        "llmproxy_redis_limit_divisor", "What each limit is divided by while Redis is down.", value=stats["divisor"]
    )
    yield CounterMetricFamily("llmproxy_redis_errors", "Redis calls that failed or timed out.", value=stats["errors"])
    yield CounterMetricFamily(
        "llmproxy_redis_fallbacks",
        "Requests whose limits were decided in this process because Redis was down.",
        value=stats["fallbacks"],
    )
    cache = stats["cache"]
    family = CounterMetricFamily(
        "llmproxy_redis_cache_lookups", "Shared cache tier reads by result.", labels=["result"]
    )
    family.add_metric(["hit"], cache["hits"])
    family.add_metric(["miss"], cache["misses"])
    yield family


def _unix(value: Any) -> float | None:
    """A time as unix seconds from what the registry stores (an ISO 8601 string or a number)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # the registry writes UTC
    return parsed.timestamp()


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: Prometheus text format. Open like /healthz: no secrets, keys or prompts in it."""
    gateway = getattr(request.app.state, "gateway", None)  # absent until the lifespan has built it
    if gateway is None:
        return Response(b"", 503, media_type=CONTENT_TYPE_LATEST)
    metrics: Metrics = gateway.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


ROUTES = [Route("/metrics", metrics_endpoint, methods=["GET"])]
