"""Admin: the response cache's numbers (entries, bytes, hits, misses, saved USD) and purging it
(everything, one entry, one model, one API key's or user's entries).

A purge by key or by user drops every entry that key's or user's requests could be answered
from: whatever the model restriction in its tenant, the entries of every key a user owns, and
what the cache scope makes them share (an owner's entries with scope "user", the shared ones
with scope "shared")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest, ServiceUnavailable
from .common import caller, gateway, json_body, json_response

PURGE_FIELDS = ("all", "cache_key", "key_id", "user", "model")


async def stats(request: Request) -> Response:
    await caller(request)
    cache = gateway(request).cache
    if cache is None:
        return json_response({"enabled": False})
    return json_response(await cache.stats())


async def purge(request: Request) -> Response:
    """POST {"all": true} | {"cache_key": ...} | {"model": ...} | {"key_id": ...} | {"user": ...};
    several filters together must all match. An empty body is refused, so a typo never empties it all."""
    await caller(request)
    body = await json_body(request)
    unknown = sorted(set(body) - set(PURGE_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"unknown field '{unknown[0]}'; purge takes one of {', '.join(PURGE_FIELDS)}", param=unknown[0]
        )
    for name in PURGE_FIELDS[1:]:
        if name in body and (not isinstance(body[name], str) or not body[name]):
            raise InvalidRequest(f"'{name}' must be a non-empty string", param=name)
    everything = body.get("all") is True
    filters = [n for n in PURGE_FIELDS[1:] if n in body]
    if everything == bool(filters):
        raise InvalidRequest('send {"all": true} or at least one of cache_key, model, key_id, user (not both)')
    if "key_id" in body and "user" in body:
        raise InvalidRequest("give key_id or user, not both")
    cache = gateway(request).cache
    if cache is None:
        return json_response({"purged": 0})
    tenants = None
    if "key_id" in body or "user" in body:
        keys = await gateway(request).access.db.keys()
        if "key_id" in body:
            owners = {r.id: r.owner for r in keys if r.id == body["key_id"]} or {body["key_id"]: None}
            tenants = cache.tenant_families(owners)
        else:
            tenants = cache.tenant_families({r.id: r.owner for r in keys if r.owner == body["user"]}, body["user"])
    try:
        purged = await cache.purge(key=body.get("cache_key"), model=body.get("model"), tenants=tenants)
    except Exception as exc:  # noqa: BLE001 - memory is purged already; say the disk was not
        raise ServiceUnavailable(
            f"the persistent cache could not be purged ({type(exc).__name__}); the in-memory entries were; try again"
        ) from None
    return json_response({"purged": purged})


ROUTES = [
    Route("/admin/cache", stats, methods=["GET"]),
    Route("/admin/cache/purge", purge, methods=["POST"]),
]
