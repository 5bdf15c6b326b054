"""The OpenAI Responses front door: POST /v1/responses through the chat pipeline.

`ResponsesDoor` (one per request) is what the pipeline needs from a door: parse the client's bytes
into the internal request, loading the stored conversation a `previous_response_id` names (the
caller's own only); give OpenAI models a passthrough adapter that sends the client's bytes to
OpenAI's /v1/responses; render the answer, the stream, a cache hit and an error as the Responses
API does; and keep each answered response (unless `store` is false) for retrieve and the next turn.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import orjson

from ..cache_rule import SWITCH_HEADER
from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest, Principal, RequestContext
from ..errors import GatewayError, InvalidRequest, NotFound
from ..providers import openai
from ..providers.base import UpstreamRequest
from ..providers.responses_passthrough import Passthrough
from ..registry import ModelEntry
from ..store.records import StoredResponse
from . import responses_request as request
from . import responses_response as rr
from .anthropic_messages import CHAT_TARGET
from .responses_state import StoredResponses
from .responses_stream import ResponseStream, relay, replay

TRANSLATED_KINDS = ("anthropic", "gemini", "openai-compatible")


def tenant(principal: Principal | None) -> str:
    """Whose stored responses a caller sees: its key's, else its user's (JWT), else its kind's."""
    if principal is None:
        return "anonymous"
    if principal.key_id:
        return "key:" + principal.key_id
    if principal.user:
        return "user:" + principal.user
    return principal.kind


class Refuse:
    """The adapter, for every provider but OpenAI, of a request only OpenAI can serve: it refuses
    before sending anything, so the route moves on to an OpenAI candidate if it has one."""

    RELAYS_ANSWER = False
    parse_response = staticmethod(openai.parse_response)
    relay_stream = staticmethod(openai.relay_stream)
    map_error = staticmethod(openai.map_error)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        raise InvalidRequest(f"{self.problem}, which only OpenAI models serve; {model.id} cannot", param="model")


class ResponsesDoor:
    """OpenAI Responses <-> the internal request and answer, for one request."""

    name = "openai-responses"
    native = False  # the cache keeps the internal answer, not the Responses rendering
    __slots__ = ("stored", "body", "items", "passthrough", "kept")

    def __init__(self, stored: StoredResponses | None) -> None:
        self.stored = stored
        self.body: dict[str, Any] = {}
        self.items: list[dict[str, Any]] = []  # the whole conversation: stored turns, then this input
        self.passthrough: Passthrough | None = None
        self.kept = False

    def parse(self, ctx: RequestContext, raw: bytes) -> Awaitable[None] | None:
        body = self.body = request.parse(raw)
        ctx.raw_body = raw
        ctx.requested_model = body["model"]
        ctx.stream = body.get("stream") is True
        ctx.include_usage = True  # response.completed carries the usage
        previous = body.get("previous_response_id")
        if previous is not None:
            return self._continue(ctx, raw, previous)
        self._prepare(ctx, raw, [])
        return None

    async def _continue(self, ctx: RequestContext, raw: bytes, previous: str) -> None:
        record = await self.stored.get(tenant(ctx.principal), previous) if self.stored is not None else None
        if record is None:
            raise NotFound(f"Previous response with id '{previous}' not found.", param="previous_response_id")
        history = orjson.loads(record.items) + orjson.loads(record.response).get("output", [])
        request.check_against(history, self.body)
        self._prepare(ctx, raw, history)

    def _prepare(self, ctx: RequestContext, raw: bytes, history: list[dict[str, Any]]) -> None:
        body = self.body
        self.items = history + request.input_items(body)
        ctx.body = request.to_chat(body, self.items)
        changes = None
        if history:
            given = body.get("input")
            own = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or ())
            changes = {"input": request.as_openai_input(history) + own}
        self.passthrough = Passthrough(body, raw, changes)
        ctx.adapters = {"openai": self.passthrough, "openai-compatible": CHAT_TARGET}
        problem = request.untranslatable(body, history)
        if problem is not None:
            refuse = Refuse(problem)
            ctx.adapters.update(dict.fromkeys(TRANSLATED_KINDS, refuse))
        if problem is not None or not request.READ.issuperset(body):
            # Parts of it reach OpenAI alone, outside the internal request the cache key is made of.
            ctx.client_headers[SWITCH_HEADER] = "off"

    def answer(self, ctx: RequestContext, completion: ChatCompletion) -> bytes:
        native = self.passthrough.answer if self.passthrough is not None else None
        if (
            native is not None
            and ctx.response_body is not None
            and ctx.provider is not None
            and ctx.provider.kind == "openai"
        ):
            if self.body.get("previous_response_id") is None:
                self.keep(ctx, native, ctx.response_body)
                return ctx.response_body  # OpenAI's own answer, as it sent it
            native["previous_response_id"] = self.body["previous_response_id"]
            body = orjson.dumps(native)
            self.keep(ctx, native, body)
            return body
        return self._translated(ctx, completion)

    def _translated(self, ctx: RequestContext, completion: ChatCompletion) -> bytes:
        """A completion as a Response: its own fields kept (the store adds the defaults back when
        it is read), the whole sent."""
        own = rr.own(self.body, completion, rr.response_id())
        own_bytes = orjson.dumps(own)
        self.keep(ctx, own, own_bytes)
        return rr.whole(own_bytes, own)

    def stream(self, ctx: RequestContext, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        machine = ResponseStream(rr.shell(self.body, rr.response_id(), self.body["model"]))

        def done(response: dict[str, Any]) -> None:
            response["previous_response_id"] = self.body.get("previous_response_id")
            self.keep(ctx, response, orjson.dumps(response))

        return relay(pieces, machine, self.passthrough, done)

    def cached(self, ctx: RequestContext, body: bytes) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
        """A cache hit (an internal completion) as a new Response, or as its event stream."""
        if not ctx.stream:
            return self._translated(ctx, orjson.loads(body)), None
        response = rr.response(self.body, orjson.loads(body), rr.response_id())
        self.keep(ctx, response, orjson.dumps(response))
        return None, _once(replay(response))

    @staticmethod
    def error(exc: GatewayError) -> tuple[int, bytes]:
        return exc.status, exc.to_json()

    def keep(self, ctx: RequestContext, response: Mapping[str, Any], body: bytes) -> None:
        """Store an answered response (once; never with store: false, never a failed one)."""
        if self.kept or self.stored is None or self.body.get("store") is False:
            return
        if response.get("status") not in ("completed", "incomplete") or not isinstance(response.get("id"), str):
            return
        self.kept = True
        self.stored.keep(
            StoredResponse(
                response["id"], tenant(ctx.principal), time.time(), ctx.requested_model, body, orjson.dumps(self.items)
            )
        )


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body
