"""auto:cascade: a request the classifier is unsure about is tried on the cheaper tier first and
escalated to the next tier, inside the same request, when the answer fails cheap checks (cut at
max_tokens, empty, a refusal, JSON or tool arguments that do not match the requested schema; see
answer_checks.py).

The router fills `ctx.candidates` with the cheaper tier and `ctx.escalation` with the stronger one
(router.route, strategy "cascade"); run() replaces the execute stage for such requests. A stream is
held, not relayed, until the first answer is complete (the checks need its finish reason and its
whole JSON); the `x-llmproxy-cascade` response header says what happened:

    x-llmproxy-cascade: accepted; first=gpt-5-nano                       answer from the cheaper tier
    x-llmproxy-cascade: held; accepted; first=gpt-5-nano                 the same, for a stream (held)
    x-llmproxy-cascade: escalated; reason=invalid_json; first=gpt-5-nano; first_cost_usd=0.00001200

Usage and cost record both attempts: the request's usage row carries the sum of both attempts'
tokens and costs (fold(), called by the record stage), and its attempts list names both models.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from .answer_checks import failure, needs_whole_answer, stream_message
from .context import ChatCompletion, RequestContext, Usage
from .errors import GatewayError
from .execute import FallbackStream, execute
from .breakers import Health
from .providers.base import StreamState, Transport
from .usage import cost_usd

HEADER = "x-llmproxy-cascade"


@dataclass(slots=True)
class FirstAttempt:
    """The cheaper tier's answer that failed the checks: what it cost, and why it was not used."""

    model: str
    usage: Usage | None
    cost_usd: float
    reason: str
    folded: bool = False


class HeldStream:
    """A stream read to its end before the check, replayed to the client once it passed."""

    def __init__(self, pieces: list[bytes], state: StreamState, ctx: RequestContext) -> None:
        self._pieces, self.state, self._ctx = pieces, state, ctx

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        self._ctx.first_token_s = time.perf_counter() - self._ctx.started  # the client's first token is now
        for piece in self._pieces:
            yield piece


async def run(
    ctx: RequestContext, transport: Transport, health: Health | None
) -> ChatCompletion | FallbackStream | HeldStream:
    """The execute stage for a cascading request: the cheaper tier, checked, then maybe the next tier."""
    first_model = ctx.candidates[0][1].id if ctx.candidates else "?"
    answer: ChatCompletion | HeldStream | None
    try:
        if ctx.stream:
            reason, answer = await _first_stream(ctx, transport, health)
        else:
            completion = await execute(ctx, transport, health)
            assert not isinstance(completion, FallbackStream)  # a request without stream gets a whole answer
            answer = completion
            reason = _completion_failure(ctx, answer)
    except GatewayError as exc:
        if not exc.retryable:
            raise
        reason, answer = "error", None
    held = "held; " if ctx.stream else ""
    if reason is None and answer is not None:
        ctx.response_headers[HEADER] = f"{held}accepted; first={ctx.model.id if ctx.model else first_model}"
        return answer
    first = _note_first(ctx, reason or "error", first_model)
    ctx.candidates, ctx.escalation = ctx.escalation, []
    shown = first_model if reason == "error" else first.model  # the model whose answer failed, if one answered
    ctx.response_headers[HEADER] = (
        f"{held}escalated; reason={reason}; first={shown}; first_cost_usd={first.cost_usd:.8f}"
    )
    return await execute(ctx, transport, health)


async def _first_stream(
    ctx: RequestContext, transport: Transport, health: Health | None
) -> tuple[str | None, HeldStream]:
    stream = await execute(ctx, transport, health)
    assert isinstance(stream, FallbackStream)
    pieces: list[bytes] = []
    started = time.perf_counter()
    async with aclosing(stream.__aiter__()) as relayed:  # closed now even if this task is cancelled
        async for piece in relayed:
            pieces.append(piece)
    ctx.upstream_s += time.perf_counter() - started
    answer = stream_message(pieces, whole=needs_whole_answer(ctx.body))
    state = stream.state
    ctx.usage, ctx.finish_reason = state.usage, state.finish_reason
    reason = (
        "error"
        if answer.errored or not state.completed
        else failure(ctx.body, answer.message, answer.finish_reason, answer.partial)
    )
    return reason, HeldStream(pieces, state, ctx)


def _completion_failure(ctx: RequestContext, completion: ChatCompletion) -> str | None:
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    raw = choice.get("message")
    message: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return failure(ctx.body, message, choice.get("finish_reason"))


def _note_first(ctx: RequestContext, reason: str, first_model: str) -> FirstAttempt:
    """Keep the failed first attempt's usage and cost for the record stage, and clear the context for
    the next tier's answer."""
    cost = 0.0
    if ctx.model is not None and ctx.usage is not None:
        try:
            cost = cost_usd(ctx.model, ctx.usage) or 0.0
        except (TypeError, ValueError):
            cost = 0.0
    ctx.cascade = first = FirstAttempt(ctx.model.id if ctx.model else first_model, ctx.usage, cost, reason)
    ctx.usage, ctx.finish_reason, ctx.response_body, ctx.first_token_s = None, None, None, None
    return first


def fold(ctx: RequestContext) -> None:
    """In the record stage: add the failed first attempt's tokens and cost to the request's (once)."""
    first = ctx.cascade
    if not isinstance(first, FirstAttempt) or first.folded:
        return
    first.folded = True
    ctx.cost_usd = (ctx.cost_usd or 0.0) + first.cost_usd
    if first.usage:
        merged: dict[str, Any] = dict(ctx.usage or {})
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            a, b = merged.get(key), first.usage.get(key)
            if isinstance(b, int):
                merged[key] = (a if isinstance(a, int) else 0) + b
        ctx.usage = merged
