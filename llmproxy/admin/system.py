"""Admin: who am I, and what this gateway runs on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from .common import caller, gateway, json_response


async def whoami(request: Request) -> Response:
    principal = await caller(request, role="user")
    return json_response(
        {"kind": principal.kind, "key_id": principal.key_id, "user": principal.user, "role": principal.role}
    )


async def info(request: Request) -> Response:
    await caller(request)
    gw = gateway(request)
    return json_response(
        {
            "version": __version__,
            "registry_version": gw.registry.version,
            "models": len(gw.registry.models),
            "providers": [
                {"name": p.name, "kind": p.kind, "configured": p.api_key is not None} for p in gw.settings.providers
            ],
        }
    )


ROUTES = [
    Route("/admin/whoami", whoami, methods=["GET"]),
    Route("/admin/info", info, methods=["GET"]),
]
