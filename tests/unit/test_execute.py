"""The execute stage on its own: a fake transport (no HTTP) that answers each candidate from a script,
in front of the real OpenAI adapter (its stream relay) and the real stream owner (OpenStream).

What is checked: the answer, the fallback to the next candidate on a 5xx or a timeout, the breakers'
order, no fallback once content has gone out, a provider's retry-after, and that every upstream
response opened is closed exactly once (returned to the pool after a clean end, dropped otherwise).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from llmproxy.breakers import Breaker, Health
from llmproxy.config import ProviderSettings
from llmproxy.context import RequestContext
from llmproxy.errors import (
    GatewayError,
    UpstreamConnectionError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llmproxy.execute import FallbackStream, execute
from llmproxy.providers.base import Adapter, OpenStream, StreamState, UpstreamResult, stream_opening
from llmproxy.registry import ModelEntry

Candidate = tuple[ProviderSettings, ModelEntry]


def candidate(provider: str, model: str) -> Candidate:
    return (
        ProviderSettings(name=provider, kind="openai", base_url=f"http://{provider}.invalid/v1"),
        ModelEntry(id=model, provider=provider, provider_model=model, input_per_mtok=1.0, output_per_mtok=2.0),
    )


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return (
        b"data: "
        + orjson.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )
        + b"\n\n"
    )


ROLE = chunk({"role": "assistant", "content": ""})
DONE = b"data: [DONE]\n\n"


def words(*text: str) -> list[bytes]:
    return [ROLE, *(chunk({"content": t}) for t in text), chunk({}, "stop"), DONE]


@dataclass
class Stream:
    """A scripted upstream stream: these SSE pieces, then (optionally) this failure."""

    pieces: list[bytes]
    then: GatewayError | None = None


class Response:
    """Stands in for aiohttp's ClientResponse as far as the stream's owner uses it."""

    def __init__(self) -> None:
        self.released = self.closed = 0

    def release(self) -> None:
        self.released += 1

    def close(self) -> None:
        self.closed += 1

    @property
    def ends(self) -> int:
        return self.released + self.closed


@dataclass
class FakeTransport:
    """Answers each (provider, model) from a script: a completion dict, a Stream, or an error to raise."""

    script: dict[tuple[str, str], Any]
    calls: list[tuple[str, str]] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    def _answer(self, provider: ProviderSettings, model: ModelEntry) -> Any:
        self.calls.append((provider.name, model.id))
        answer = self.script[(provider.name, model.id)]
        if isinstance(answer, GatewayError):
            raise answer
        return answer

    async def complete(
        self,
        adapter: Adapter,
        provider: ProviderSettings,
        model: ModelEntry,
        request: dict[str, Any],
        request_id: str | None = None,
        raw: bytes | None = None,
    ) -> UpstreamResult:
        return UpstreamResult(self._answer(provider, model), 200, 0.001)

    async def open_stream(
        self,
        adapter: Adapter,
        provider: ProviderSettings,
        model: ModelEntry,
        request: dict[str, Any],
        state: StreamState,
        request_id: str | None = None,
        raw: bytes | None = None,
    ) -> OpenStream:
        scripted: Stream = self._answer(provider, model)
        resp = Response()
        self.responses.append(resp)

        async def body() -> AsyncIterator[bytes]:
            for piece in scripted.pieces:
                yield piece
            if scripted.then is not None:
                raise scripted.then

        # As the real transport does: the adapter relays the body; the first event is read before
        # the stream is handed over, and an error there fails the opening.
        stream = OpenStream(b"", adapter.relay_stream(body(), model, state), resp, 0.001)  # type: ignore[arg-type]
        stream.first = await stream.relay.__anext__()
        if stream_opening(stream.first) is False:
            await stream.close()
            raise UpstreamUnavailable(f"{provider.name} failed at the start of the stream")
        return stream


def context(*candidates: Candidate, stream: bool = False) -> RequestContext:
    ctx = RequestContext(request_id="req-1", body={"model": "m", "messages": [], "stream": stream})
    ctx.stream, ctx.candidates = stream, list(candidates)
    return ctx


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


async def run_stream(ctx: RequestContext, transport: FakeTransport, health: Health | None = None) -> bytes:
    started = await execute(ctx, transport, health)  # type: ignore[arg-type]
    assert isinstance(started, FallbackStream)
    return b"".join([piece async for piece in started])


def text_of(sse: bytes) -> str:
    out = []
    for block in sse.split(b"\n\n"):
        if block.startswith(b"data: {"):
            event = orjson.loads(block[6:])
            for choice in event.get("choices") or ():
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


async def test_a_completion_from_the_first_candidate() -> None:
    transport = FakeTransport({("a", "m1"): completion("hello")})
    ctx = context(candidate("a", "m1"), candidate("b", "m2"))
    answer = await execute(ctx, transport)  # type: ignore[arg-type]
    assert answer == completion("hello") and transport.calls == [("a", "m1")]
    assert ctx.model is not None and ctx.model.id == "m1" and ctx.usage == completion("x")["usage"]
    assert [(a.provider, a.status) for a in ctx.attempts] == [("a", 200)]


@pytest.mark.parametrize("failure", [UpstreamUnavailable("a is down"), UpstreamTimeout("a did not answer in time")])
async def test_a_5xx_or_a_timeout_falls_back_to_the_next_candidate(failure: GatewayError) -> None:
    transport = FakeTransport({("a", "m1"): failure, ("b", "m2"): completion("from b")})
    ctx = context(candidate("a", "m1"), candidate("b", "m2"))
    assert await execute(ctx, transport) == completion("from b")  # type: ignore[arg-type]
    assert transport.calls == [("a", "m1"), ("b", "m2")]
    assert [(a.provider, a.status, a.retryable) for a in ctx.attempts] == [
        ("a", failure.status, True),
        ("b", 200, False),
    ]


async def test_the_callers_own_mistake_is_not_retried_elsewhere() -> None:
    transport = FakeTransport(
        {("a", "m1"): UpstreamRejected("bad request", status=400), ("b", "m2"): completion("never")}
    )
    with pytest.raises(UpstreamRejected):
        await execute(context(candidate("a", "m1"), candidate("b", "m2")), transport)  # type: ignore[arg-type]
    assert transport.calls == [("a", "m1")]


async def test_when_every_candidate_fails_the_last_failure_is_the_answer() -> None:
    transport = FakeTransport({("a", "m1"): UpstreamUnavailable("a is down"), ("b", "m2"): UpstreamTimeout("b too")})
    with pytest.raises(UpstreamTimeout, match="b too"):
        await execute(context(candidate("a", "m1"), candidate("b", "m2")), transport)  # type: ignore[arg-type]


async def test_a_provider_whose_breaker_is_open_is_tried_last_and_failures_open_it() -> None:
    health = Health(failures=2, cooldown_s=30.0)
    health.breakers["a"] = Breaker(failures=2, open_until=time.monotonic() + 30)
    transport = FakeTransport({("a", "m1"): completion("from a"), ("b", "m2"): completion("from b")})
    ctx = context(*health.order([candidate("a", "m1"), candidate("b", "m2")]))
    assert await execute(ctx, transport, health) == completion("from b")  # type: ignore[arg-type]
    assert transport.calls == [("b", "m2")]
    # b failing twice in a row (as the record stage reports each request's attempts) opens its breaker
    failing = FakeTransport({("b", "m2"): UpstreamUnavailable("b is down"), ("c", "m3"): completion("from c")})
    for _ in range(2):
        ctx = context(candidate("b", "m2"), candidate("c", "m3"))
        assert await execute(ctx, failing, health) == completion("from c")  # type: ignore[arg-type]
        health.observe(ctx.attempts)
    assert not health.available("b") and health.stats()["b"] == "open"


async def test_retry_after_rests_the_provider_for_the_rest_of_the_request_and_opens_its_breaker() -> None:
    health = Health()
    limited = UpstreamRateLimited("slow down", headers={"retry-after": "20"})
    transport = FakeTransport({("a", "m1"): limited, ("a", "m2"): completion("never"), ("b", "m3"): completion("b")})
    ctx = context(candidate("a", "m1"), candidate("a", "m2"), candidate("b", "m3"))
    assert await execute(ctx, transport, health) == completion("b")  # type: ignore[arg-type]
    assert transport.calls == [("a", "m1"), ("b", "m3")]  # a's other model waits too
    assert ctx.attempts[0].retry_after_s == 20.0
    health.observe(ctx.attempts)
    assert not health.available("a") and health.available("a", time.monotonic() + 21)


async def test_a_stream_is_relayed_and_its_response_returned_to_the_pool_once() -> None:
    transport = FakeTransport({("a", "m1"): Stream(words("Hello", " world"))})
    ctx = context(candidate("a", "m1"), stream=True)
    out = await run_stream(ctx, transport)
    assert text_of(out) == "Hello world" and out.endswith(DONE)
    [resp] = transport.responses
    assert (resp.released, resp.closed) == (1, 0)
    assert ctx.first_token_s is not None and [(a.provider, a.status) for a in ctx.attempts] == [("a", 200)]


async def test_a_stream_failing_before_its_first_content_hands_over_to_the_next_candidate() -> None:
    broken = Stream([ROLE], then=UpstreamConnectionError("the connection to a broke"))
    transport = FakeTransport({("a", "m1"): broken, ("b", "m2"): Stream(words("from", " b"))})
    ctx = context(candidate("a", "m1"), candidate("b", "m2"), stream=True)
    out = await run_stream(ctx, transport)
    assert text_of(out) == "from b" and out.count(b'"role":"assistant"') == 1  # b's opening is dropped
    assert transport.calls == [("a", "m1"), ("b", "m2")]
    first, second = transport.responses
    assert (first.closed, first.released) == (1, 0) and (second.closed, second.released) == (0, 1)
    assert [(a.provider, a.status) for a in ctx.attempts] == [("a", 502), ("b", 200)]


async def test_a_stream_that_fails_at_its_opening_falls_back_like_a_completion() -> None:
    transport = FakeTransport({("a", "m1"): UpstreamTimeout("a sent no first event"), ("b", "m2"): Stream(words("b"))})
    out = await run_stream(context(candidate("a", "m1"), candidate("b", "m2"), stream=True), transport)
    assert text_of(out) == "b" and len(transport.responses) == 1 and transport.responses[0].released == 1


async def test_no_fallback_once_content_has_gone_out_the_stream_ends_with_an_error_event() -> None:
    cut = Stream(words("Hel")[:2], then=UpstreamConnectionError("the connection to a broke"))
    transport = FakeTransport({("a", "m1"): cut, ("b", "m2"): Stream(words("never"))})
    ctx = context(candidate("a", "m1"), candidate("b", "m2"), stream=True)
    out = await run_stream(ctx, transport)
    assert text_of(out) == "Hel" and transport.calls == [("a", "m1")]
    last = orjson.loads(out.rstrip().rsplit(b"\n\n", 1)[-1][6:])
    assert "broke" in last["error"]["message"]
    [resp] = transport.responses
    assert (resp.closed, resp.released) == (1, 0)


async def test_a_client_that_leaves_mid_stream_drops_the_upstream_once() -> None:
    transport = FakeTransport({("a", "m1"): Stream(words("one", "two", "three"))})
    started = await execute(context(candidate("a", "m1"), stream=True), transport)  # type: ignore[arg-type]
    assert isinstance(started, FallbackStream)
    pieces = started.__aiter__()
    await pieces.__anext__()
    await pieces.__anext__()
    await pieces.aclose()  # what the endpoint does when its client disconnects
    await pieces.aclose()
    [resp] = transport.responses
    assert (resp.closed, resp.released) == (1, 0)


async def test_when_no_candidate_can_take_over_the_first_error_ends_the_stream() -> None:
    broken = Stream([ROLE], then=UpstreamConnectionError("the connection to a broke"))
    transport = FakeTransport({("a", "m1"): broken, ("b", "m2"): UpstreamUnavailable("b is down")})
    out = await run_stream(context(candidate("a", "m1"), candidate("b", "m2"), stream=True), transport)
    assert b"the connection to a broke" in out and transport.calls == [("a", "m1"), ("b", "m2")]
    assert [r.ends for r in transport.responses] == [1]
