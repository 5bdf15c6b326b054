"""Execute: call the route's candidates in order through their adapters until one answers.

A retryable failure (429, 5xx, 529, timeout, broken connection, an error event) moves on to the
next candidate as long as the client has received no content. A stream is passed on from its
first event, so time to first byte stays the provider's; if it fails before its first content
(only the role chunk has gone out), the next candidate's stream continues it, its own opening
events dropped. Once content has reached the client a failure ends the stream with an error
event: never a silent retry. A provider that asked us to come back later (429 with retry-after)
is not tried again within the same request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable
from typing import cast

from .context import EMBEDDINGS, Attempt, ChatCompletion, RequestContext
from .errors import GatewayError, InvalidRequest, UpstreamError
from .breakers import Candidate, Health
from .providers import ADAPTERS, embedding_parts
from .providers.embedding_parts import EmbeddingAdapter
from .providers.base import Adapter, OpenStream, StreamState, Transport, error_message, stream_opening
from .providers.sse import encode


def execute(
    ctx: RequestContext, transport: Transport, health: Health | None = None
) -> Awaitable[ChatCompletion | FallbackStream]:
    """The execute stage: await it for the completion, or for the started stream."""
    attempt = Attempts(ctx, transport, health)
    # the coroutine itself, not one wrapped in another: one frame less on every resume
    return attempt.started_stream() if ctx.stream else attempt.complete(ctx.candidates)


class Attempts:
    """Tries candidates one after another, recording each attempt on the context."""

    def __init__(self, ctx: RequestContext, transport: Transport, health: Health | None) -> None:
        self.ctx, self.transport, self.health = ctx, transport, health
        self.resting: set[str] = set()

    def _takes_turn(self, candidate: Candidate) -> bool:
        """Make the candidate the current one on the context, as its turn comes; False to pass it
        over (its provider asked to be left alone for a while). A call per candidate, not a
        generator: a generator left at its first answer was closed by a GeneratorExit each time."""
        provider, model = candidate
        if provider.name in self.resting:
            return False
        self.ctx.provider, self.ctx.model = provider, model
        if self.health is not None:
            self.health.begin(provider.name)
        return True

    def failed(self, candidate: Candidate, exc: GatewayError, elapsed: float) -> None:
        provider, model = candidate
        self.ctx.upstream_s += elapsed
        retry_after = _seconds(exc.headers.get("retry-after"))
        self.ctx.attempts.append(
            Attempt(
                provider.name,
                model.id,
                exc.status,
                exc.code or exc.type,
                elapsed * 1000.0,
                retryable=exc.retryable,
                retry_after_s=retry_after,
            )
        )
        if retry_after:
            self.resting.add(provider.name)

    def moved_on(
        self, candidate: Candidate, exc: GatewayError, started: float, kept: GatewayError | None
    ) -> GatewayError:
        """After a failed attempt: the failure re-raised when no other candidate may try, else the
        one to answer with if none does (a retryable failure after a refusal of our own keeps the
        refusal; otherwise the latest)."""
        self.failed(candidate, exc, time.perf_counter() - started)
        if not _next_may_do(exc):
            raise exc
        return kept if kept is not None and _refused_here(kept) else exc

    async def complete(self, candidates: list[Candidate]) -> ChatCompletion:
        ctx, failure = self.ctx, None
        for candidate in candidates:
            if not self._takes_turn(candidate):
                continue
            provider, model = candidate
            started = time.perf_counter()
            try:
                adapter, raw = _adapter(ctx, provider.kind)
                result = await (
                    self.transport.complete(adapter, provider, model, ctx.body, ctx.request_id, raw)
                    if ctx.endpoint != EMBEDDINGS
                    # a large batch may take several calls
                    else embedding_parts.complete(
                        self.transport,
                        cast(EmbeddingAdapter, adapter),
                        provider,
                        model,
                        ctx.body,
                        ctx.request_id,
                        raw,
                        whole=ctx.cache_key is not None,
                    )
                )
            except GatewayError as exc:
                failure = self.moved_on(candidate, exc, started, failure)
                continue
            ctx.upstream_s += result.seconds
            ctx.attempts.append(Attempt(provider.name, model.id, result.status, ms=result.seconds * 1000.0))
            ctx.response_body = result.body
            usage = result.completion.get("usage")
            ctx.usage = usage if isinstance(usage, dict) else None
            choices = result.completion.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                ctx.finish_reason = choices[0].get("finish_reason")
            return result.completion
        raise failure or UpstreamError("no provider left to try for this request")

    async def started_stream(self) -> FallbackStream:
        return FallbackStream(self, *await self.open_stream(self.ctx.candidates))

    async def open_stream(self, candidates: list[Candidate]) -> tuple[OpenStream, StreamState, list[Candidate]]:
        """The first candidate whose stream starts, its state, and the candidates left after it."""
        ctx, failure = self.ctx, None
        for i, candidate in enumerate(candidates):
            if not self._takes_turn(candidate):
                continue
            provider, model = candidate
            state = StreamState(include_usage=ctx.include_usage)
            started = time.perf_counter()
            try:
                adapter, raw = _adapter(ctx, provider.kind)
                stream = await self.transport.open_stream(
                    adapter, provider, model, ctx.body, state, ctx.request_id, raw
                )
            except GatewayError as exc:
                failure = self.moved_on(candidate, exc, started, failure)
                continue
            ctx.upstream_s += stream.seconds
            return stream, state, candidates[i + 1 :]
        raise failure or UpstreamError("no provider left to try for this request")


class FallbackStream:
    """A started stream, and the one owner of its upstream responses: it relays the answering
    candidate's stream, hands over to the next candidate while no content has gone out, and
    closes each response it opened exactly once (in its one `finally`, or when it hands over),
    whether the stream ends, fails, or its client leaves. The layers around it only iterate.

    `state` is the state of the stream that is answering now (usage, finish reason, completion)."""

    def __init__(self, attempts: Attempts, stream: OpenStream, state: StreamState, rest: list[Candidate]) -> None:
        self._attempts, self._stream, self.state, self._rest = attempts, stream, state, rest
        self._opened_at = time.perf_counter()
        self._content = self._handed_over = False

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        ctx = self._attempts.ctx
        clean = False
        try:
            while True:
                stream = self._stream
                try:
                    if self._passes(stream.first):
                        yield stream.first
                    async for piece in stream.relay:
                        if self._content or self._passes(piece):
                            yield piece
                    clean = True
                    return
                except GatewayError as exc:
                    if self._content or not exc.retryable:
                        yield encode(exc.to_dict())
                        return
                    await stream.close()
                    provider, model = ctx.provider, ctx.model
                    assert provider is not None and model is not None  # open_stream set them for this stream
                    self._attempts.failed((provider, model), exc, time.perf_counter() - self._opened_at)
                    try:
                        self._stream, self.state, self._rest = await self._attempts.open_stream(self._rest)
                    except GatewayError:
                        yield encode(exc.to_dict())
                        return
                    self._opened_at, self._handed_over = time.perf_counter(), True
        finally:
            await self._stream.close(clean=clean)  # at once: a client that left stops the provider

    def _passes(self, piece: bytes) -> bool:
        """Before the first content: raises on an error event (the next candidate may answer),
        notes the first content, and drops a second opening (role chunk) after a hand-over."""
        opening = stream_opening(piece)
        if opening is False:
            name = self._attempts.ctx.provider.name if self._attempts.ctx.provider else "the provider"
            raise UpstreamError(f"{name} failed before its first content: {error_message(piece)}")
        if opening:
            self._content = True
            ctx = self._attempts.ctx
            assert ctx.provider is not None and ctx.model is not None
            now = time.perf_counter()
            ctx.first_token_s = now - ctx.started
            ctx.attempts.append(Attempt(ctx.provider.name, ctx.model.id, 200, ms=(now - self._opened_at) * 1000.0))
            return True
        return not self._handed_over  # the client already has an opening from the first stream


def _adapter(ctx: RequestContext, kind: str) -> tuple[Adapter, bytes | None]:
    """The adapter for a provider kind, and the client's raw body if that adapter speaks its format."""
    if ctx.adapters is None:
        return ADAPTERS[kind], ctx.raw_body
    own = ctx.adapters.get(kind)
    return (own, ctx.raw_body) if own is not None else (ADAPTERS[kind], None)


def _refused_here(exc: GatewayError | None) -> bool:
    """The gateway's own translation refused the request for that provider (nothing was sent)."""
    return isinstance(exc, InvalidRequest)


def _next_may_do(exc: GatewayError) -> bool:
    # A retryable failure, or a request this provider's translation cannot express (n > 1 on
    # Anthropic, an audio part...) that the next candidate's may; if none can, the first refusal
    # is the answer.
    return exc.retryable or _refused_here(exc)


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # the adapters give whole seconds (providers.retry_after); anything else: no rest
