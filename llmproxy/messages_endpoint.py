"""POST /v1/messages and /v1/messages/count_tokens as plain ASGI handlers, beside the chat endpoint.

The Anthropic Messages front door: the key comes from `x-api-key` or `Authorization: Bearer`
(the gateway's own keys either way), `anthropic-version` / `anthropic-beta` are kept for a Claude
upstream, and the request runs through the pipeline's door entry. Served raw, like chat, so that a
Claude request costs the gateway what a chat request does.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from . import pipeline
from .context import RequestContext
from .disconnects import Disconnects
from .doors.anthropic_messages import DOOR, count_tokens
from .doors.anthropic_response import error_body
from .endpoint import Receive, Scope, Send, client_request_id, door_handler, read_body, respond
from .errors import GatewayError

_KEPT = frozenset((b"anthropic-version", b"anthropic-beta", b"cache-control"))


def _context(scope: Scope, new_id: Callable[[], str]) -> tuple[RequestContext, str | None, int]:
    """The request's context, its credentials as an Authorization value, and its declared length."""
    authorization = api_key = request_id = None
    declared = -1
    kept: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            api_key = value.decode("latin-1")
        elif name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            declared = int(value) if value.isdigit() else -1
        elif name == b"x-request-id":
            request_id = client_request_id(value)
        elif name in _KEPT or name.startswith(b"x-llmproxy-"):
            kept[name.decode("latin-1")] = value.decode("latin-1")
    if api_key and not authorization:
        authorization = "Bearer " + api_key  # the anthropic SDKs send the key this way
    ctx = RequestContext(request_id=request_id or new_id(), body={}, client_headers=kept)
    return ctx, authorization, declared


messages = door_handler(DOOR, _context)


async def messages_count_tokens(
    gw: pipeline.Gateway,
    new_id: Callable[[], str],
    scope: Scope,
    receive: Receive,
    send: Send,
    disconnects: Disconnects,
) -> None:
    """Counting is free and not a completion: authenticated and counted against the key's requests
    per minute (it may reach Anthropic on the gateway's key), but it reserves no tokens and is not
    recorded as usage."""
    ctx, authorization, declared = _context(scope, new_id)
    headers = [(b"x-request-id", ctx.request_id.encode("latin-1"))]
    try:
        gw.auth.authenticate(ctx, authorization)
        raw = await read_body(receive, gw.settings.max_body_bytes, declared)
        await pipeline.admit_alone(gw, ctx)
        answer = await count_tokens(gw, ctx, raw)
    except GatewayError as exc:
        # Once admitted, a refusal still says where the key stands (x-ratelimit-*), as the answer would.
        status, body = error_body(exc)
        await respond(send, status, headers + pipeline.header_pairs({**ctx.response_headers, **exc.headers}), body)
        return
    except Exception:  # noqa: BLE001 - a bug still answers in Anthropic's shape, without a trace
        pipeline.log.exception("unhandled error", extra={"request_id": ctx.request_id})
        status, body = error_body(GatewayError(f"internal error in the gateway (request id {ctx.request_id})"))
        await respond(send, status, headers + pipeline.header_pairs(ctx.response_headers), body)
        return
    await respond(
        send,
        200,
        headers + pipeline.header_pairs(ctx.response_headers),
        answer if answer else orjson.dumps({"input_tokens": 0}),
    )


ROUTES = {"/v1/messages": messages, "/v1/messages/count_tokens": messages_count_tokens}
