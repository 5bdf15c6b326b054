"""The Anthropic Messages front door: POST /v1/messages and /v1/messages/count_tokens.

`MessagesDoor` is what the pipeline needs from a door: parse the client's bytes into the internal
request (and give the request its Claude passthrough adapter), render the answer, the stream, a
cache hit and an error in Anthropic's shape. `count_tokens` asks Anthropic for a Claude model and
estimates for the others (see docs/anthropic.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest, RequestContext
from ..errors import GatewayError
from ..providers import anthropic, openai
from ..providers.anthropic_passthrough import Passthrough
from ..providers.base import UpstreamRequest
from ..registry import ModelEntry
from ..router import route
from . import anthropic_request, anthropic_response, anthropic_stream

if TYPE_CHECKING:
    from ..pipeline import Gateway

CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")
BYTES_PER_TOKEN = 4  # the estimate the rate limiter makes of a prompt, used for non-Claude counts


class ChatTarget:
    """The OpenAI adapter as the Messages door uses it: the internal request only (never the
    client's Anthropic bytes), and without the reasoning effort a Claude-style client's `thinking`
    became when the model does not reason (OpenAI refuses the field there; the Anthropic and Gemini
    adapters drop it the same way)."""

    RELAYS_ANSWER = openai.RELAYS_ANSWER
    parse_response = staticmethod(openai.parse_response)
    relay_stream = staticmethod(openai.relay_stream)
    map_error = staticmethod(openai.map_error)

    @staticmethod
    def build_request(
        req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        if "reasoning_effort" in req and not model.capabilities.reasoning:
            req = {k: v for k, v in req.items() if k != "reasoning_effort"}
        return openai.build_request(req, model, creds, stream=stream, raw=None)


CHAT_TARGET = ChatTarget()


class MessagesDoor:
    """Anthropic Messages <-> the internal request and answer."""

    name = "anthropic-messages"
    native = False  # the cache keeps the internal answer, not the Anthropic rendering

    @staticmethod
    def parse(ctx: RequestContext, raw: bytes) -> None:
        body = anthropic_request.parse(raw)
        ctx.body = anthropic_request.to_chat(body)
        ctx.raw_body = raw
        ctx.requested_model = body["model"]
        ctx.stream = ctx.include_usage = body.get("stream") is True
        headers = ctx.client_headers
        ctx.adapters = {
            "anthropic": Passthrough(body, headers.get("anthropic-version"), headers.get("anthropic-beta")),
            "openai": CHAT_TARGET,
            "openai-compatible": CHAT_TARGET,
        }

    @staticmethod
    def answer(ctx: RequestContext, completion: ChatCompletion) -> bytes:
        if ctx.response_body is not None and ctx.provider is not None and ctx.provider.kind == "anthropic":
            return ctx.response_body  # Claude's own answer, as it sent it
        return orjson.dumps(anthropic_response.message(completion, ctx.requested_model))

    @staticmethod
    def stream(ctx: RequestContext, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return anthropic_stream.relay(pieces, ctx.requested_model)

    @staticmethod
    def cached(ctx: RequestContext, body: bytes) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
        """A cache hit (an internal completion) as a Message, or as its event stream."""
        message = anthropic_response.message(orjson.loads(body), ctx.requested_model)
        if not ctx.stream:
            return orjson.dumps(message), None
        return None, _replay(anthropic_stream.message_events(message))

    @staticmethod
    def error(exc: GatewayError) -> tuple[int, bytes]:
        return anthropic_response.error_body(exc)


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    yield b"".join(events)


DOOR = MessagesDoor()


async def count_tokens(gw: Gateway, ctx: RequestContext, raw: bytes) -> bytes:
    """{"input_tokens": n} for a Messages request: Anthropic's own count for a Claude model, an
    estimate from the request's size for the others. The caller is authenticated already."""
    body = anthropic_request.parse(raw, counting=True)
    ctx.requested_model = body["model"]
    ctx.body = {"model": body["model"], "messages": [{"role": "user", "content": ""}]}
    gw.auth.authorize_model(ctx, gw.registry)
    route(ctx, gw.registry, gw.settings, gw.health, gw.resolutions)
    gw.auth.filter_candidates(ctx)
    if not ctx.candidates:
        raise GatewayError(f"no model available for {body['model']!r}", status=404)
    provider, model = ctx.candidates[0]
    ctx.provider, ctx.model = provider, model
    if provider.kind != "anthropic":
        return orjson.dumps({"input_tokens": estimate(body)})
    headers = {
        "content-type": "application/json",
        "anthropic-version": ctx.client_headers.get("anthropic-version") or anthropic.API_VERSION,
    }
    if ctx.client_headers.get("anthropic-beta"):
        headers["anthropic-beta"] = ctx.client_headers["anthropic-beta"]
    if provider.api_key is not None:
        headers["x-api-key"] = provider.api_key.value
    if provider.headers:
        headers.update(provider.headers)
    sent = raw if body["model"] == model.provider_model else orjson.dumps({**body, "model": model.provider_model})
    status, answer = await gw.transport.forward(
        provider, provider.base_url + "/v1/messages/count_tokens", headers, sent
    )
    if status >= 300:
        raise anthropic.map_error(status, answer, {}, provider=provider.name)
    return answer


def estimate(body: dict[str, Any]) -> int:
    """Tokens of a request for a model whose provider has no counting endpoint: the bytes of its
    system prompt, messages and tools as JSON, four to a token (images count by their data too)."""
    counted = {k: body[k] for k in ("system", "messages", "tools") if body.get(k) is not None}
    return max(1, len(orjson.dumps(counted)) // BYTES_PER_TOKEN)
