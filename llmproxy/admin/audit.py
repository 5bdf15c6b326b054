"""Admin: the audit log, newest first: who did what to which key, user or credential, and when.
Entries never hold a secret (a credential appears as its hint at most)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest
from .common import caller, gateway, json_response


async def list_entries(request: Request) -> Response:
    await caller(request)
    q = request.query_params
    try:
        limit = min(1000, max(1, int(q.get("limit", "100"))))
        since = float(q["since"]) if "since" in q else None
    except ValueError:
        raise InvalidRequest("limit must be an integer and since unix seconds") from None
    entries = await gateway(request).access.db.audit_entries(limit=limit, since=since, actor=q.get("actor"))
    return json_response({"object": "list", "data": entries})


ROUTES = [Route("/admin/audit", list_entries, methods=["GET"])]
