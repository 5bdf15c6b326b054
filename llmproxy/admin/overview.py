"""Admin: what the dashboard's overview and models pages read and /admin/usage does not give:
traffic over time in buckets, p50/p99 latency, error and cache-hit rates by model and provider,
what `auto` routing saved against the frontier model, and the registry as one table.

Everything here reads the raw usage log over its time index (the roll-up has no latencies), so a
range older than `usage_retention_days` shows nothing; totals of whole days are in /admin/usage.

Auto savings, defined: for every successful, non-cached request that `auto` routed (the log's
strategy column is set only for those), the cost its own token counts (uncached input, cached
input, cache writes, output) would have had on the frontier model at the registry's current prices,
minus what it did cost. The frontier model is the priced, non-deprecated registry model with the
highest quality score (ties: the higher blended price) among those the gateway can call now
(credentials present), or among all of them when it can call none; `?frontier=<model>` names
another. Requests of unknown cost are left out of both sides.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, UTC
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest
from ..registry import LongContext, ModelEntry, Registry
from ..router import blended_price, ready_provider
from ..store.records import Window
from ..store.protocols import UsageStore
from ..usage import cost_usd
from .common import caller, gateway, json_response
from .usage import scope, time_range

DEFAULT_RANGE_S = 86_400
BUCKETS_S = (60, 300, 900, 3600, 6 * 3600, 86_400)  # the bucket is the smallest of these giving <= MAX_BUCKETS
MAX_BUCKETS = 96


def pick_bucket(span_s: float, asked: str | None) -> int:
    if asked is not None:
        if not asked.isdigit() or not 60 <= int(asked) <= 86_400:
            raise InvalidRequest("bucket_s must be a whole number of seconds from 60 to 86400", param="bucket_s")
        if span_s / int(asked) > 2_000:
            raise InvalidRequest("that bucket_s gives more than 2000 points; choose a larger one", param="bucket_s")
        return int(asked)
    for size in BUCKETS_S:
        if span_s / size <= MAX_BUCKETS:
            return size
    if span_s / BUCKETS_S[-1] > 2_000:
        raise InvalidRequest("the range is over 2000 days; choose a shorter one", param="since")
    return BUCKETS_S[-1]


def with_rates(row: dict[str, Any]) -> dict[str, Any]:
    """A group's measures with the figures derived from them: tokens, error and cache-hit rates."""
    requests = row["requests"]
    return {
        **row,
        "tokens": row["prompt_tokens"] + row["completion_tokens"],
        "error_rate": row["errors"] / requests if requests else 0.0,
        "cache_hit_rate": row["cache_hits"] / requests if requests else 0.0,
    }


def frontier_model(registry: Registry, settings: Any, asked: str | None) -> ModelEntry | None:
    if asked:
        entry = registry.lookup(asked)
        if entry is None or not entry.priced:
            raise InvalidRequest(f"frontier must be a priced registry model; {asked!r} is not", param="frontier")
        return entry
    priced = [m for m in registry.models if m.priced and not m.deprecated]
    reachable = [m for m in priced if ready_provider(settings, m.provider) is not None]
    pool = reachable or priced
    if not pool:
        return None
    return max(pool, key=lambda m: (m.quality or 0.0, blended_price(m)))


async def auto_savings(store: UsageStore, window: Window, frontier: ModelEntry | None) -> dict[str, Any]:
    """Auto-routed requests: what they cost, and what the frontier model would have charged for them."""
    threshold = frontier.long_context.threshold if frontier is not None and frontier.long_context else None
    # Grouped by the frontier's long-context tier: within a tier the price is linear in the tokens,
    # so summed token counts price exactly.
    requests, actual, frontier_cost = 0, 0.0, 0.0
    for side in await store.auto_routed(window, threshold):
        requests += side.requests
        actual += side.cost_usd
        if frontier is None:
            continue
        priced_as = replace(frontier, long_context=None)
        tier = frontier.long_context
        if side.long and tier is not None:  # a threshold of 0 puts the summed prompt in the tier
            priced_as = replace(
                frontier,
                long_context=LongContext(0, tier.input_per_mtok, tier.output_per_mtok, tier.cached_input_per_mtok),
            )
        usage = {
            "prompt_tokens": side.prompt_tokens,
            "completion_tokens": side.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": side.cached_tokens,
                "cache_creation_tokens": side.cache_write_tokens,
            },
        }
        frontier_cost += cost_usd(priced_as, usage) or 0.0
    return {
        "requests": requests,
        "cost_usd": actual,
        "frontier_model": frontier.id if frontier is not None else None,
        "frontier_cost_usd": frontier_cost if frontier is not None else None,
        "saved_usd": frontier_cost - actual if frontier is not None else None,
        "definition": "cost of the same tokens on the frontier model at current registry prices, "
        "minus the actual cost, over successful non-cached auto-routed requests",
    }


async def overview(request: Request) -> Response:
    """GET /admin/overview?since=&until=&days=&bucket_s=&key_id=&frontier=: the dashboard's figures."""
    principal = await caller(request, role="user")
    params = request.query_params
    gw = gateway(request)
    now = time.time()
    since, until = time_range(params, now)
    since = now - DEFAULT_RANGE_S if since is None else since
    until = now if until is None else until
    if until <= since:
        raise InvalidRequest("until must be after since", param="until")
    bucket = pick_bucket(until - since, params.get("bucket_s"))
    key_id, user = scope(principal, params.get("key_id") or None)
    window = Window(since, until, key_id, user)
    store = gw.usage_reports
    first = int(since // bucket)
    totals = with_rates((await store.overview("all", window)).get("all") or _empty())
    buckets = await store.overview("bucket", window, bucket_s=bucket)
    series = [
        {"t": b * bucket, **with_rates(buckets.get(b) or _empty())}
        for b in range(first, int((until - 1e-9) // bucket) + 1)
    ]
    by_model = [
        {"model": model, "provider": provider, **with_rates(row)}
        for (model, provider), row in (await store.overview("model", window)).items()
    ]
    by_provider = [{"provider": g, **with_rates(row)} for g, row in (await store.overview("provider", window)).items()]
    by_model.sort(key=lambda r: (-r["cost_usd"], -r["requests"]))
    by_provider.sort(key=lambda r: (-r["cost_usd"], -r["requests"]))
    frontier = frontier_model(gw.registry, gw.settings, params.get("frontier"))
    return json_response(
        {
            "object": "overview",
            "since": _iso(since),
            "until": _iso(until),
            "bucket_s": bucket,
            "totals": totals,
            "series": series,
            "by_model": by_model,
            "by_provider": by_provider,
            "auto": await auto_savings(store, window, frontier),
        }
    )


def _empty() -> dict[str, Any]:
    return {
        "requests": 0,
        "errors": 0,
        "cache_hits": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "cache_saved_usd": 0.0,
        "p50_ms": None,
        "p99_ms": None,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def model_row(m: ModelEntry) -> dict[str, Any]:
    caps = m.capabilities
    return {
        "id": m.id,
        "provider": m.provider,
        "provider_model": m.provider_model,
        "input_per_mtok": m.input_per_mtok,
        "output_per_mtok": m.output_per_mtok,
        "cached_input_per_mtok": m.cached_input_per_mtok,
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "capabilities": [
            name for name in ("tools", "vision", "json_schema", "streaming", "reasoning") if getattr(caps, name)
        ],
        "quality": m.quality,
        "quality_source": m.quality_source,
        "aliases": list(m.aliases),
        "deprecated": m.deprecated,
        "source": m.source,
        "updated_at": m.updated_at,
        "stale": m.stale,
    }


async def models(request: Request) -> Response:
    """GET /admin/models: the registry in use as table rows, and each provider's scrape status."""
    await caller(request, role="user")
    registry = gateway(request).registry
    return json_response(
        {
            "version": registry.version,
            "generated_at": registry.generated_at,
            "providers": registry.providers,
            "data": [model_row(m) for m in registry.models],
        }
    )


ROUTES = [
    Route("/admin/overview", overview, methods=["GET"]),
    Route("/admin/models", models, methods=["GET"]),
]
