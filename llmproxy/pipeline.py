"""The request pipeline: the order of the stages for POST /v1/chat/completions, and nothing else.

auth -> parse -> route -> execute -> record -> response. Stages talk through the RequestContext;
only this module knows their order. Errors become an Outcome here so every request is recorded.
"""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .auth import authenticate
from .config import Settings
from .context import RequestContext
from .errors import GatewayError
from .execute import execute
from .logs import RequestLog
from .providers.base import OpenStream, StreamState, Transport
from .registry import Registry
from .router import route
from .usage import UsageRecorder, cost_usd, usage_row
from .validation import parse_request

log = logging.getLogger("llmproxy.request")


@dataclass(slots=True)
class Gateway:
    """The services one app instance runs on, built in the app's lifespan."""

    settings: Settings
    registry: Registry
    transport: Transport
    usage: UsageRecorder
    request_log: RequestLog
    store: Any = None


@dataclass(slots=True)
class Outcome:
    status: int
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


async def chat_completions(gw: Gateway, ctx: RequestContext, raw: bytes, authorization: str | None) -> Outcome:
    try:
        authenticate(ctx, authorization, gw.settings)
        ctx.body = parse_request(raw)
        ctx.requested_model = ctx.body["model"]
        ctx.stream = ctx.body.get("stream") is True
        options = ctx.body.get("stream_options")
        ctx.include_usage = bool(ctx.stream and isinstance(options, dict) and options.get("include_usage"))
        route(ctx, gw.registry, gw.settings)
        result = await execute(ctx, gw.transport)
    except GatewayError as exc:
        return _failed(gw, ctx, exc)
    except Exception as exc:  # noqa: BLE001 - a bug must still answer in OpenAI's shape, without a trace
        log.exception("unhandled error", extra={"request_id": ctx.request_id})
        return _failed(gw, ctx, GatewayError(f"internal error in the gateway (request id {ctx.request_id})"))
    if isinstance(result, tuple):
        stream, state = result
        return Outcome(200, stream=_relay(gw, ctx, stream, state), headers=_headers(ctx))
    record(gw, ctx)
    headers = _headers(ctx)
    return Outcome(200, body=orjson.dumps(result), headers=headers)


async def _relay(gw: Gateway, ctx: RequestContext, stream: OpenStream, state: StreamState) -> AsyncIterator[bytes]:
    waited, finished = 0.0, False
    try:
        it = stream.__aiter__()
        while True:
            t = time.perf_counter()
            try:
                piece = await it.__anext__()
            except StopAsyncIteration:
                break
            finally:
                waited += time.perf_counter() - t
            yield piece
        finished = True
    finally:
        ctx.upstream_s += waited
        ctx.usage, ctx.finish_reason = state.usage, state.finish_reason
        if not finished:
            ctx.status, ctx.error_type = 499, "client_disconnected"
        elif not state.completed:
            ctx.status, ctx.error_type = 502, "upstream_stream_error"
        record(gw, ctx)


def record(gw: Gateway, ctx: RequestContext) -> None:
    """The record stage: cost, one usage row (written later, in a batch) and one log line."""
    now = time.perf_counter()
    if ctx.model is not None and ctx.status == 200:
        ctx.cost_usd = cost_usd(ctx.model, ctx.usage)
    gw.usage.add(usage_row(ctx, now))
    if gw.request_log.enabled:
        usage = ctx.usage or {}
        gw.request_log.emit({
            "request_id": ctx.request_id, "status": ctx.status, "model": ctx.model.id if ctx.model else None,
            "requested_model": ctx.requested_model or None,
            "provider": ctx.provider.name if ctx.provider else None, "stream": ctx.stream,
            "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
            "cost_usd": ctx.cost_usd, "latency_ms": round((now - ctx.started) * 1000.0, 2),
            "overhead_ms": round(ctx.overhead_ms(now), 3), "cache": ctx.cache_status,
            "attempts": [f"{a.provider}/{a.model}:{a.status}" for a in ctx.attempts] or None,
            "error_type": ctx.error_type,
        })


def _failed(gw: Gateway, ctx: RequestContext, exc: GatewayError) -> Outcome:
    ctx.status, ctx.error_type = exc.status, exc.code or exc.type
    record(gw, ctx)
    headers = _headers(ctx)
    headers.update(exc.headers)
    return Outcome(exc.status, body=exc.to_json(), headers=headers)


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id, "x-llmproxy-cache": ctx.cache_status}
    if ctx.model is not None and ctx.provider is not None:
        headers["x-llmproxy-model"] = ctx.model.id
        headers["x-llmproxy-provider"] = ctx.provider.name
    if ctx.cost_usd is not None:
        headers["x-llmproxy-cost-usd"] = f"{ctx.cost_usd:.8f}"
    headers["x-llmproxy-overhead-ms"] = f"{ctx.overhead_ms():.3f}"
    return headers
