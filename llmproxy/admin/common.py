"""What every admin endpoint shares: who is calling (and may they), JSON in and out, errors."""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..auth import authenticate
from ..context import Principal, RequestContext
from ..errors import GatewayError, InvalidRequest, PermissionDenied


def gateway(request: Request) -> Any:
    return request.app.state.gateway


async def caller(request: Request, *, role: str = "admin") -> Principal:
    """The authenticated principal; PermissionDenied (403) when it lacks `role`."""
    gw = gateway(request)
    ctx = RequestContext(request_id=request.headers.get("x-request-id") or "", body={})
    authenticate(ctx, request.headers.get("authorization"), gw.settings)
    principal = ctx.principal
    assert principal is not None
    if role == "admin" and principal.role != "admin":
        raise PermissionDenied("this endpoint needs an admin")
    return principal


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


def error_response(exc: GatewayError) -> Response:
    return Response(exc.to_json(), exc.status, headers=exc.headers, media_type="application/json")
