"""The request pipeline: the order of the stages for every front door's request, and nothing else.

auth -> rate limit -> parse -> model authorization -> cache -> classify (auto only) -> route ->
execute (with fallback) -> record -> response. Stages talk through the RequestContext; only this
module knows their order. Errors become an Outcome here so every request is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from . import cascade
from .cache import ResponseCache
from .cache_memory import Entry
from .classifier import Classifier
from .classifier.stage import classify
from .config import Settings
from .context import BYTES_PER_TOKEN, RequestContext
from .current import Current
from .errors import GatewayError
from .execute import FallbackStream, execute
from .breakers import Health
from .logs import RequestLog
from .providers.base import Transport
from .registry import Registry
from .router import Resolutions, is_auto, route
from .usage import UsageRecorder, cost_usd, usage_row

if TYPE_CHECKING:
    from .access import Access
    from .doors.responses_state import StoredResponses
    from .auth import Authenticator
    from .metrics import Metrics
    from .ratelimit import Limiter
    from .scheduler import RegistryUpdater
    from .store.protocols import UsageStore
    from .store.backends import Stores
    from .shared.deployment import Deployment

log = logging.getLogger("llmproxy.request")


@dataclass(frozen=True, slots=True)
class Gateway:
    """The services one app instance runs on: all built first (app.build_gateway), then this, once.

    Nothing here is ever rebound. The two values that change while the gateway runs sit in holders
    that their one owner swaps: the registry (`registry_ref`, the RegistryUpdater) and the settings
    carrying the vault's provider keys (`settings_ref`, Access); read them as `gw.registry` and
    `gw.settings`, which give the value in use at that moment."""

    settings_ref: Current[Settings]
    registry_ref: Current[Registry]
    store: Stores  # the configured backend's stores (readiness pings it)
    transport: Transport
    usage: UsageRecorder  # the write side of the usage log (batched)
    usage_reports: UsageStore  # its read side: reports, the dashboard, budgets at startup
    request_log: RequestLog
    cache: ResponseCache
    health: Health  # circuit breakers and latency per model
    resolutions: Resolutions
    classifier: Classifier
    metrics: Metrics
    access: Access  # identity tables, vault and their sync
    auth: Authenticator
    limits: Limiter
    registry_updater: RegistryUpdater  # refresh, rollback, file watch
    shared: Deployment | None  # Redis: what the deployment's processes share (None: one process)
    responses: StoredResponses  # the Responses door's stored answers

    @property
    def settings(self) -> Settings:
        return self.settings_ref.current

    @property
    def registry(self) -> Registry:
        return self.registry_ref.current


Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Outcome:
    status: int
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: Headers = field(default_factory=list)


class Door(Protocol):
    """A front door: the client's format in and out around the same stages (doors/)."""

    native: bool  # answers in the internal (OpenAI chat) format: the cache keeps its answer bytes

    # fills ctx.body, requested_model, stream...; a door that must read stored state to finish
    # (Responses' previous_response_id) returns the awaitable that does it, after authentication
    def parse(self, ctx: RequestContext, raw: bytes) -> Awaitable[None] | None: ...
    def answer(self, ctx: RequestContext, completion: dict[str, Any]) -> bytes: ...
    def stream(self, ctx: RequestContext, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]: ...
    def cached(self, ctx: RequestContext, body: bytes) -> tuple[bytes | None, AsyncIterator[bytes] | None]: ...
    def error(self, exc: GatewayError) -> tuple[int, bytes]: ...


async def through_door(
    gw: Gateway, ctx: RequestContext, door: Door, read_body: Callable[[], Awaitable[bytes]], authorization: str | None
) -> Outcome:
    """The stages, in their order, for a request that came through any front door: the door parses
    its format into the internal request and renders answers and errors in its shape."""
    try:
        gw.auth.authenticate(ctx, authorization)
        raw = await read_body()
        gw.limits.admit(ctx, len(raw))
        reading = door.parse(ctx, raw)
        if reading is not None:
            await reading
        gw.auth.authorize_model(ctx, gw.registry)
        found = gw.cache.check(ctx)
        hit = found if found is None or isinstance(found, Entry) else await found  # a slower tier's read
        if ctx.admission is not None:
            await gw.limits.confirm(ctx)
        if hit is not None:
            record(gw, ctx)
            body, stream = door.cached(ctx, hit.body)
            return Outcome(200, body=body, stream=stream, headers=_headers(ctx))
        if is_auto(ctx.requested_model):
            classify(ctx, gw.classifier)
        route(ctx, gw.registry, gw.settings, gw.health, gw.resolutions)
        gw.auth.filter_candidates(ctx)
        result = await (
            cascade.run(ctx, gw.transport, gw.health) if ctx.escalation else execute(ctx, gw.transport, gw.health)
        )
        if isinstance(result, (FallbackStream, cascade.HeldStream)):
            return Outcome(200, stream=door.stream(ctx, _relay(gw, ctx, result, len(raw))), headers=_headers(ctx))
        record(gw, ctx, result)
        body = door.answer(ctx, result)
        if ctx.cache_key is not None:  # may be stored: the internal answer, which any door can serve
            gw.cache.store(ctx, body if door.native else orjson.dumps(result))
        return Outcome(200, body=body, headers=_headers(ctx))
    except GatewayError as exc:
        failure = exc
    except Exception:
        log.exception("unhandled error", extra={"request_id": ctx.request_id})
        failure = GatewayError(f"internal error in the gateway (request id {ctx.request_id})")
    ctx.status, ctx.error_type = failure.status, failure.code or failure.type
    record(gw, ctx)
    status, body = door.error(failure)
    return Outcome(status, body=body, headers=_headers(ctx, failure.headers))


async def admit_alone(gw: Gateway, ctx: RequestContext) -> None:
    """The rate-limit stage for an authenticated request that asks no model for an answer (a stored
    response read or deleted, a Messages request's tokens counted): it counts against the key's
    requests per minute, reserves no tokens, and is refused like any other while the key is over
    its budget or a limit. A refusal carries the stage's x-ratelimit-* headers along."""
    try:
        gw.limits.admit(ctx, 0)
        if ctx.admission is not None:
            await gw.limits.confirm(ctx)
    except GatewayError as exc:
        exc.headers = {**ctx.response_headers, **exc.headers}
        raise


async def _relay(
    gw: Gateway, ctx: RequestContext, stream: FallbackStream | cascade.HeldStream, request_bytes: int
) -> AsyncIterator[bytes]:
    waited, finished, events = 0.0, False, 0
    collected = gw.cache.collector(ctx)
    try:
        # aclosing: however this generator ends, the stream it iterates is closed now (and with it
        # the upstream response, by its owner), not when the collector gets to it.
        async with aclosing(stream.__aiter__()) as it:
            while True:
                t = time.perf_counter()
                try:
                    piece = await it.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    waited += time.perf_counter() - t
                if collected is not None:
                    collected.add(piece)
                events += piece.count(b"data:")
                yield piece
        finished = True
    finally:
        ctx.upstream_s += waited
        state = stream.state
        ctx.usage, ctx.finish_reason = state.usage, state.finish_reason
        if not finished:
            ctx.status, ctx.error_type = 499, "client_disconnected"
        elif not state.completed:
            ctx.status, ctx.error_type = 502, "upstream_stream_error"
        if ctx.usage is None:
            # Cut before the usage chunk, even right after the role chunk, yet the provider bills the
            # prompt (and what it generated or thought): charge a lower bound rather than nothing.
            ctx.usage = _estimate(request_bytes, max(0, events - 2))
        record(gw, ctx)
        if collected is not None:
            gw.cache.store_stream(ctx, collected, finished and state.completed)


def abandoned(gw: Gateway, ctx: RequestContext) -> None:
    """Record a request whose client left while it waited on a provider (499); once it has gone
    upstream the provider bills its prompt all the same, so that much is charged."""
    ctx.status, ctx.error_type = 499, "client_disconnected"
    if ctx.usage is None and ctx.model is not None and ctx.raw_body is not None:
        ctx.usage = _estimate(len(ctx.raw_body), 0)
    record(gw, ctx)


def _estimate(request_bytes: int, completion_tokens: int) -> dict[str, Any]:
    """Usage when the provider's own count never came: the prompt from its size (as the rate limit
    estimates it), about a token per content event."""
    prompt = request_bytes // BYTES_PER_TOKEN
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "estimated": True,
    }


def record(gw: Gateway, ctx: RequestContext, completion: dict[str, Any] | None = None) -> None:
    """The record stage: cost, one usage row (written later, in a batch), metrics and one log line
    (made from the row)."""
    now = time.perf_counter()
    if ctx.model is not None and ctx.usage is not None and ctx.cache_status != "hit":
        try:
            ctx.cost_usd = cost_usd(ctx.model, ctx.usage)
        except (TypeError, ValueError):  # a provider's malformed usage must not fail the answer
            log.warning(
                "unreadable usage from %s",
                ctx.provider.name if ctx.provider else "?",
                extra={"request_id": ctx.request_id},
            )
    if ctx.cascade is not None:
        cascade.fold(ctx)  # the cheaper tier's answer that was not used still cost tokens
    gw.limits.settle(ctx)
    latency_s = now - ctx.started
    overhead_s = max(0.0, latency_s - ctx.upstream_s)
    row = usage_row(ctx, latency_s, overhead_s)
    gw.usage.add(row)
    if ctx.attempts:
        gw.health.observe(ctx.attempts)
    gw.metrics.observe(ctx, latency_s, overhead_s, ctx.endpoint)
    if gw.request_log.enabled:
        gw.request_log.request(ctx, row, completion)


def header_pairs(headers: dict[str, str]) -> Headers:
    """Response headers as ASGI pairs."""
    return [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]


def _headers(ctx: RequestContext, extra: dict[str, str] | None = None) -> Headers:
    """The response headers as ASGI pairs: the request id, what answered and at what cost, the
    stages' own (rate limits, cache), then the gateway's time so far."""
    headers = [(b"x-request-id", ctx.request_id.encode("latin-1")), (b"x-llmproxy-cache", _CACHE[ctx.cache_status])]
    if ctx.cache_key is not None:  # its answer may be stored: the key a purge names it by (a hit's is below)
        headers.append((b"x-llmproxy-cache-key", ctx.cache_key.encode()))
    if ctx.model is not None and ctx.provider is not None:
        headers.append((b"x-llmproxy-model", ctx.model.id.encode("latin-1", "replace")))
        headers.append((b"x-llmproxy-provider", ctx.provider.name.encode("latin-1", "replace")))
    if ctx.complexity is not None:
        headers.append((b"x-llmproxy-complexity", ctx.complexity.encode()))
    if ctx.strategy is not None:
        headers.append((b"x-llmproxy-strategy", ctx.strategy.encode()))
    if ctx.cost_usd is not None:
        headers.append((b"x-llmproxy-cost-usd", b"%.8f" % ctx.cost_usd))
    for more in (ctx.response_headers, extra):
        if more:
            headers += header_pairs(more)
    headers.append((b"x-llmproxy-overhead-ms", b"%.3f" % ctx.overhead_ms()))
    return headers


_CACHE = {status: status.encode() for status in ("hit", "miss", "bypass")}
