"""What every admin endpoint shares: who is calling (and may they), JSON in and out.

A handler raises GatewayError; the app's one exception handler (app.py) renders it."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..context import Principal, RequestContext
from ..errors import PermissionDenied
from ..pipeline import Gateway
from ..validation import parse_object


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def caller(request: Request, *, role: str = "admin") -> Principal:
    """The authenticated principal (master key, virtual key, login token or JWT); PermissionDenied
    (403) when `role` is "admin" and the caller is not. role="user" admits any authenticated caller."""
    gw = gateway(request)
    ctx = RequestContext(request_id=request.headers.get("x-request-id") or "", body={})
    gw.auth.authenticate(ctx, request.headers.get("authorization"))
    principal = ctx.principal
    assert principal is not None
    if role == "admin" and principal.role != "admin":
        raise PermissionDenied("this endpoint needs an admin")
    return principal


def actor(principal: Principal) -> str:
    """How the audit log names a caller (never a secret)."""
    if principal.kind == "key":
        return f"key:{principal.key_id}" + (f" ({principal.user})" if principal.user else "")
    if principal.kind in ("login", "jwt"):
        return f"{principal.kind}:{principal.user}"
    return principal.kind


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is {}). Its size, media type and read time are
    bounded by the guard before any of it is read; parse_object refuses deep nesting and repeated keys."""
    return parse_object(await request.body() or b"{}")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")
