"""The OpenAI Responses API's routes: POST /v1/responses as a plain ASGI handler beside the chat
endpoint (through the pipeline's door entry), and the stored responses' GET, DELETE and
input_items as Starlette routes (they read the store, not a provider).

Stored responses belong to the tenant that made them (doors.responses.tenant): any other caller
gets the same 404 as for an id that never existed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import pipeline
from .context import RequestContext
from .disconnects import Disconnects
from .doors import responses_response as rr
from .doors.responses import ResponsesDoor, tenant
from .endpoint import Receive, Scope, Send, answer, client_request_id, openai_context
from .errors import InvalidRequest, NotFound
from .store.records import StoredResponse

JSON = "application/json"
MAX_LIST = 100


def create(
    gw: pipeline.Gateway,
    new_id: Callable[[], str],
    scope: Scope,
    receive: Receive,
    send: Send,
    disconnects: Disconnects,
) -> Awaitable[None]:
    ctx, authorization, declared = openai_context(scope, new_id)
    return answer(gw, ctx, ResponsesDoor(gw.responses), authorization, declared, receive, send, disconnects)


ROUTES = {"/v1/responses": create, "/responses": create}


async def _stored(request: Request) -> tuple[StoredResponse, dict[str, str]]:
    """The caller's stored response named in the path, and the response's headers (its request id,
    the rate limits'); 404 for anyone else's. Each call counts against the key's requests per minute."""
    gw: pipeline.Gateway = request.app.state.gateway
    rid = client_request_id(request.headers.get("x-request-id")) or request.app.state.ids.new()
    ctx = RequestContext(rid, {}, response_headers={"x-request-id": rid})
    gw.auth.authenticate(ctx, request.headers.get("authorization"))
    await pipeline.admit_alone(gw, ctx)
    response_id = request.path_params["response_id"]
    record = await gw.responses.get(tenant(ctx.principal), response_id) if gw.responses is not None else None
    if record is None:
        raise NotFound(
            f"Response with id '{response_id}' not found.", param="response_id", headers=ctx.response_headers
        )
    return record, ctx.response_headers


async def retrieve(request: Request) -> Response:
    record, headers = await _stored(request)
    if request.query_params.get("stream") in ("true", "1"):
        raise InvalidRequest(
            "streaming a stored response again is not served by this gateway; retrieve it whole",
            param="stream",
            headers=headers,
        )
    return Response(rr.stored_whole(record.response), headers=headers, media_type=JSON)


async def delete(request: Request) -> Response:
    gw: pipeline.Gateway = request.app.state.gateway
    record, headers = await _stored(request)
    assert gw.responses is not None  # _stored found the record there
    await gw.responses.delete(record.tenant, record.id)
    body = orjson.dumps({"id": record.id, "object": "response", "deleted": True})
    return Response(body, headers=headers, media_type=JSON)


async def input_items(request: Request) -> Response:
    """GET .../input_items: the conversation the response answered, newest first by default,
    `limit` (1-100, default 20) items after the `after` (or before the `before`) item id."""
    query = request.query_params
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid 'order': expected 'asc' or 'desc', got {order[:20]!r}", param="order")
    record, headers = await _stored(request)
    items: list[dict[str, Any]] = orjson.loads(record.items)
    if order == "desc":
        items.reverse()
    for name in ("after", "before"):
        cursor = query.get(name)
        if cursor is None:
            continue
        position = next((i for i, item in enumerate(items) if item.get("id") == cursor), None)
        if position is None:
            raise InvalidRequest(
                f"Invalid '{name}': no item with id {cursor[:80]!r} in this response's input",
                param=name,
                headers=headers,
            )
        items = items[position + 1 :] if name == "after" else items[:position]
    page = items[:limit]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
    return Response(orjson.dumps(body), headers=headers, media_type=JSON)


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIST:
        raise InvalidRequest(f"Invalid 'limit': expected an integer from 1 to {MAX_LIST}", param="limit")
    return int(value)


def routes() -> list[Route]:
    """The Starlette routes of the stored responses (POST is answered before Starlette, by ROUTES)."""
    paths = []
    for prefix in ("/v1/responses", "/responses"):
        paths += [
            Route(prefix + "/{response_id}", retrieve, methods=["GET"]),
            Route(prefix + "/{response_id}", delete, methods=["DELETE"]),
            Route(prefix + "/{response_id}/input_items", input_items, methods=["GET"]),
        ]
    return paths
