"""Execute: call the route's candidates in order through their adapters until one answers.

A retryable failure (429, 5xx, timeout, broken connection) moves on to the next candidate as long
as nothing has been sent to the client; a stream commits only once its first output has arrived.
"""
from __future__ import annotations

import time

from .context import Attempt, ChatCompletion, RequestContext
from .errors import GatewayError
from .providers import ADAPTERS
from .providers.base import OpenStream, StreamState, Transport


async def execute(ctx: RequestContext, transport: Transport) -> ChatCompletion | tuple[OpenStream, StreamState]:
    failure: GatewayError | None = None
    for provider, model in ctx.candidates:
        adapter = ADAPTERS[provider.kind]
        ctx.provider, ctx.model = provider, model
        started = time.perf_counter()
        try:
            if ctx.stream:
                state = StreamState(include_usage=ctx.include_usage)
                stream = await transport.open_stream(adapter, provider, model, ctx.body, state)
                ctx.upstream_s += stream.seconds
                ctx.first_token_s = time.perf_counter() - ctx.started
                ctx.attempts.append(Attempt(provider.name, model.id, 200, ms=stream.seconds * 1000.0))
                return stream, state
            result = await transport.complete(adapter, provider, model, ctx.body)
        except GatewayError as exc:
            elapsed = time.perf_counter() - started
            ctx.upstream_s += elapsed
            ctx.attempts.append(Attempt(provider.name, model.id, exc.status, exc.code or exc.type, elapsed * 1000.0))
            if not exc.retryable:
                raise
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
