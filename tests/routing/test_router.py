"""The router alone: candidate filtering and the three strategies, on a small hand-made registry."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmproxy.config import ProviderSettings, RouterSettings, Secret, Settings
from llmproxy.context import Attempt, Principal, RequestContext
from llmproxy.errors import InvalidRequest, ModelNotFound
from llmproxy.breakers import Health
from llmproxy.registry import Capabilities, ModelEntry, build_registry
from llmproxy.router import choose, route

FULL = Capabilities(tools=True, vision=True, json_schema=True, streaming=True)
TEXT = Capabilities(tools=False, vision=False, json_schema=False, streaming=True)


def entry(
    id: str,
    provider: str,
    q: float,
    inp: float,
    out: float,
    caps: Capabilities = FULL,
    ctx: int = 128_000,
    **kw: object,
) -> ModelEntry:
    return ModelEntry(
        id=id,
        provider=provider,
        provider_model=id,
        input_per_mtok=inp,
        output_per_mtok=out,
        context_window=ctx,
        max_output_tokens=16_000,
        capabilities=caps,
        quality=q,
        **kw,
    )


REGISTRY = build_registry(
    [
        entry("tiny", "openai", 15, 0.05, 0.2, caps=TEXT),
        entry("small", "openai", 30, 0.15, 0.6),
        entry("mid", "anthropic", 45, 1.0, 5.0),
        entry("big", "openai", 60, 5.0, 25.0),
        entry("huge-ctx", "gemini", 50, 2.0, 10.0, ctx=2_000_000),
        entry("old", "openai", 70, 0.01, 0.01, deprecated=True),
        entry("nokey", "gemini", 65, 0.01, 0.02),
    ]
)
PROVIDERS = (
    ProviderSettings(name="openai", kind="openai", base_url="https://api.openai.com/v1", api_key=Secret("k")),
    ProviderSettings(name="anthropic", kind="anthropic", base_url="https://api.anthropic.com", api_key=Secret("k")),
    ProviderSettings(name="gemini", kind="gemini", base_url="http://127.0.0.1:9"),  # local: no key needed
)
SETTINGS = Settings(providers=PROVIDERS, router=RouterSettings(floors={"simple": 10, "medium": 40, "complex": 55}))
MSG = {"messages": [{"role": "user", "content": "hi"}]}


def ids(candidates: list) -> list[str]:
    return [m.id for _, m in candidates]


def pick(body: dict, strategy: str = "cost", label: str = "simple", **kw: object) -> list[str]:
    return ids(
        choose(
            body,
            REGISTRY,
            replace(SETTINGS, router=replace(SETTINGS.router, max_attempts=10)),
            kw.pop("health", Health()),
            strategy=strategy,
            label=label,
            **kw,
        )
    )


def test_cost_picks_cheapest_meeting_the_floor() -> None:
    assert pick(MSG, label="simple")[0] == "nokey"  # cheapest of all with q >= 10 (local gemini, no key needed)
    assert pick(MSG, label="medium")[0] == "nokey"
    assert pick(MSG, label="complex")[0] == "nokey"
    assert "old" not in pick(MSG)  # deprecated models are never chosen


def test_floor_orders_what_meets_it_first_then_best_of_the_rest() -> None:
    registry = build_registry([m for m in REGISTRY.models if m.id != "nokey"])
    got = ids(
        choose(
            MSG,
            registry,
            replace(SETTINGS, router=replace(SETTINGS.router, max_attempts=10)),
            Health(),
            strategy="cost",
            label="medium",
        )
    )
    assert got[:3] == ["mid", "huge-ctx", "big"]  # q >= 40, cheapest first
    assert got[3:] == ["small", "tiny"]  # below the floor: best quality first


def test_quality_picks_best_and_respects_price_ceiling() -> None:
    assert pick(MSG, strategy="quality")[0] == "nokey"
    registry = build_registry([m for m in REGISTRY.models if m.id != "nokey"])
    s = replace(SETTINGS, router=replace(SETTINGS.router, max_attempts=10))
    assert ids(choose(MSG, registry, s, Health(), strategy="quality", label="simple"))[0] == "big"
    capped = ids(choose(MSG, registry, s, Health(), strategy="quality", label="simple", max_price=5.0))
    assert capped[0] == "huge-ctx" and "big" not in capped  # blended 4.0 <= 5 < big's 10


def test_latency_picks_lowest_observed_among_floor() -> None:
    health = Health()
    health.observe(
        [
            Attempt("anthropic", "mid", 200, ms=900),
            Attempt("gemini", "huge-ctx", 200, ms=100),
            Attempt("gemini", "nokey", 200, ms=2000),
            Attempt("openai", "big", 200, ms=300),
        ]
    )
    assert pick(MSG, strategy="latency", label="medium", health=health)[:3] == ["huge-ctx", "big", "mid"]


def test_filters_by_capability_context_and_allowed_models() -> None:
    tools = {**MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert "tiny" not in pick(tools)
    image = {
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    }
    assert "tiny" not in pick(image)
    schema = {**MSG, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}
    assert "tiny" not in pick(schema)
    long = {"messages": [{"role": "user", "content": "x" * 4 * 300_000}]}
    assert pick(long) == ["huge-ctx"]
    assert pick(MSG, allowed=("small", "mi*")) == ["small", "mid"]


def test_no_model_can_serve_says_why() -> None:
    long = {"messages": [{"role": "user", "content": "x" * 4 * 3_000_000}]}
    with pytest.raises(InvalidRequest, match="context window too small") as err:
        pick(long)
    assert err.value.status == 400 and err.value.code == "no_model_available"


def test_open_breaker_moves_provider_last() -> None:
    health = Health(failures=1, cooldown_s=60)
    health.observe([Attempt("gemini", "nokey", 503, retryable=True)])
    assert pick(MSG, label="simple") == ["nokey", "tiny", "small", "mid", "huge-ctx", "big"]
    assert pick(MSG, label="simple", health=health) == ["tiny", "small", "mid", "big", "nokey", "huge-ctx"]


def test_route_strategy_from_name_header_and_unsure_default() -> None:
    ctx = RequestContext("r", MSG | {"model": "auto:quality"}, requested_model="auto:quality")
    ctx.principal = Principal("master")
    route(ctx, REGISTRY, SETTINGS, Health())
    assert ctx.strategy == "quality"
    ctx = RequestContext(
        "r", MSG | {"model": "auto"}, requested_model="auto", client_headers={"x-llmproxy-strategy": "latency"}
    )
    route(ctx, REGISTRY, SETTINGS, Health())
    assert ctx.strategy == "latency"
    with pytest.raises(ModelNotFound):
        route(RequestContext("r", MSG, requested_model="auto:fastest"), REGISTRY, SETTINGS, Health())
    with pytest.raises(InvalidRequest):
        route(
            RequestContext("r", MSG, requested_model="auto", client_headers={"x-llmproxy-strategy": "x"}),
            REGISTRY,
            SETTINGS,
            Health(),
        )


def test_explicit_model_with_configured_fallbacks() -> None:
    s = replace(SETTINGS, router=replace(SETTINGS.router, fallbacks={"big": ("mid", "missing-model", "small")}))
    ctx = RequestContext("r", MSG, requested_model="big")
    route(ctx, REGISTRY, s, Health())
    assert ids(ctx.candidates) == ["big", "mid", "small"]  # an unknown fallback is skipped, max 3 attempts


def test_n_above_one_skips_providers_without_it() -> None:
    assert "mid" in pick(MSG)
    assert "mid" not in pick({**MSG, "n": 2})  # Anthropic's Messages API has no n


def _auto(model: str, label: str, confident: bool) -> RequestContext:
    ctx = RequestContext(request_id="r", body={"model": model, **MSG}, requested_model=model)
    ctx.complexity, ctx.complexity_confident = label, confident
    return ctx


def test_cascade_splits_an_unsure_request_into_a_cheap_tier_and_an_escalation() -> None:
    registry = build_registry([m for m in REGISTRY.models if m.id != "nokey"])
    ctx = _auto("auto:cascade", "simple", confident=False)
    route(ctx, registry, SETTINGS, Health())
    assert ctx.strategy == "cascade"
    assert ids(ctx.candidates)[0] == "tiny"  # cheapest meeting the simple floor
    assert ids(ctx.escalation)[0] == "mid"  # cheapest meeting the medium floor, stronger than tiny
    assert not set(ids(ctx.candidates)) & set(ids(ctx.escalation))
    assert all((m.quality or 0) > 15 for _, m in ctx.escalation)


def test_cascade_without_a_stronger_tier_routes_plainly() -> None:
    ctx = _auto("auto:cascade", "simple", confident=False)
    route(ctx, REGISTRY, SETTINGS, Health())  # the cheapest model is also the best: nothing to escalate to
    assert ctx.escalation == [] and ids(ctx.candidates)[0] == "nokey"


def test_cascade_routes_a_confident_request_like_cost() -> None:
    ctx = _auto("auto:cascade", "simple", confident=True)
    route(ctx, REGISTRY, SETTINGS, Health())
    plain = _auto("auto:cost", "simple", confident=True)
    route(plain, REGISTRY, SETTINGS, Health())
    assert ctx.escalation == [] and ids(ctx.candidates) == ids(plain.candidates)
