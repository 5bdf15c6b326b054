"""Admin: provider credentials in the vault. Stored encrypted, shown as a hint (the last four
characters) at most, never returned or logged in full. A key configured in the environment or
llmproxy.toml wins over the vault's; the listing says which one is in effect."""

from __future__ import annotations


from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest, NotFound, ServiceUnavailable
from ..vault import VaultError
from ..pipeline import Gateway
from .common import actor, caller, gateway, json_body, json_response


def provider_status(gw: Gateway) -> list[dict[str, object]]:
    """Each configured provider: where its key comes from, and the vault's entry if it holds one."""
    access = gw.access
    settings = gw.settings
    stored = {row["provider"]: row for row in access.vault.rows}
    out = []
    for p in settings.providers:
        row = stored.get(p.name)
        source = access.vault.source(settings, p.name)
        out.append(
            {
                "name": p.name,
                "kind": p.kind,
                "base_url": p.base_url,
                "configured": p.api_key is not None,
                "source": source,
                "shadowed": row is not None and source == "config",
                "vault": {"hint": row["hint"], "updated_at": row["updated_at"]} if row else None,
            }
        )
    return out


async def list_providers(request: Request) -> Response:
    await caller(request)
    return json_response({"object": "list", "data": provider_status(gateway(request))})


async def put(request: Request) -> Response:
    principal = await caller(request)
    name = request.path_params["name"]
    gw = gateway(request)
    if gw.settings.provider(name) is None:
        raise NotFound(f"no provider '{name}' is configured; add it to llmproxy.toml first")
    body = await json_body(request)
    value = body.get("api_key")
    if not isinstance(value, str) or not value.strip() or set(body) != {"api_key"}:
        raise InvalidRequest('send {"api_key": "..."}', param="api_key")
    try:
        await gw.access.vault.put(gw.access.db, actor(principal), name, value.strip())
    except VaultError as exc:
        raise ServiceUnavailable(str(exc), code="vault_key_rotated") from None
    await gw.access.reload()
    return json_response(next(p for p in provider_status(gw) if p["name"] == name))


async def delete(request: Request) -> Response:
    principal = await caller(request)
    name = request.path_params["name"]
    gw = gateway(request)
    try:
        await gw.access.db.delete_credential(actor(principal), name)
    except LookupError:
        raise NotFound(f"the vault holds no credential for '{name}'") from None
    await gw.access.reload()
    return json_response(next((p for p in provider_status(gw) if p["name"] == name), {"name": name}))


ROUTES = [
    Route("/admin/providers", list_providers, methods=["GET"]),
    Route("/admin/providers/{name}", put, methods=["PUT"]),
    Route("/admin/providers/{name}", delete, methods=["DELETE"]),
]
