"""Execute: call the route's candidates in order through their adapters until one answers.

A retryable failure (429, 5xx, 529, timeout, broken connection, or an error event before a
stream's first content) moves on to the next candidate, as long as nothing has been sent to the
client; a stream commits only once its first content has arrived. A provider that asked us to
come back later (429 with retry-after) is not tried again within the same request.
"""
from __future__ import annotations

import time

from .context import Attempt, ChatCompletion, RequestContext
from .errors import GatewayError
from .health import Health
from .providers import ADAPTERS
from .providers.base import OpenStream, StreamState, Transport


async def execute(ctx: RequestContext, transport: Transport,
                  health: Health | None = None) -> ChatCompletion | tuple[OpenStream, StreamState]:
    failure: GatewayError | None = None
    resting: set[str] = set()
    for provider, model in ctx.candidates:
        if provider.name in resting:
            continue
        adapter = ADAPTERS[provider.kind]
        ctx.provider, ctx.model = provider, model
        if health is not None:
            health.begin(provider.name)
        started = time.perf_counter()
        try:
            if ctx.stream:
                state = StreamState(include_usage=ctx.include_usage)
                stream = await transport.open_stream(adapter, provider, model, ctx.body, state, ctx.request_id)
                ctx.upstream_s += stream.seconds
                ctx.first_token_s = time.perf_counter() - ctx.started
                ctx.attempts.append(Attempt(provider.name, model.id, 200, ms=stream.seconds * 1000.0))
                return stream, state
            result = await transport.complete(adapter, provider, model, ctx.body, ctx.request_id)
        except GatewayError as exc:
            elapsed = time.perf_counter() - started
            ctx.upstream_s += elapsed
            retry_after = _seconds(exc.headers.get("retry-after"))
            ctx.attempts.append(Attempt(provider.name, model.id, exc.status, exc.code or exc.type, elapsed * 1000.0,
                                        retryable=exc.retryable, retry_after_s=retry_after))
            if not exc.retryable:
                raise
            if retry_after:
                resting.add(provider.name)
            failure = exc
            continue
        ctx.upstream_s += result.seconds
        ctx.attempts.append(Attempt(provider.name, model.id, result.status, ms=result.seconds * 1000.0))
        usage = result.completion.get("usage")
        ctx.usage = usage if isinstance(usage, dict) else None
        choices = result.completion.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            ctx.finish_reason = choices[0].get("finish_reason")
        return result.completion
    assert failure is not None, "route produced no candidates"
    raise failure


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None   # an HTTP-date retry-after: treat as "later", the breaker's cool-down decides
