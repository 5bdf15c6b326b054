"""Admin: the model registry: its status, refresh from the pricing pages, versions, diff, rollback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import GatewayError, InvalidRequest, NotFound
from ..registry import RegistryError
from ..registry.versions import diff_documents, list_versions, read_version
from ..scheduler import RegistryBusy, RegistryUpdater
from .common import actor, caller, gateway, json_body, json_response

log = logging.getLogger("llmproxy.admin")


class RefreshConflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "registry_busy"


async def status(request: Request) -> Response:
    """GET /admin/registry: the version in use, each provider's last scrape, unpriced and stale models."""
    await caller(request)
    registry = gateway(request).registry
    return json_response(
        {
            "version": registry.version,
            "generated_at": registry.generated_at,
            "path": registry.path,
            "models": len(registry.models),
            "providers": registry.providers,
            "unpriced": list(registry.unpriced),
            "stale": [m.id for m in registry.models if m.stale],
        }
    )


async def refresh(request: Request) -> Response:
    """POST /admin/registry/refresh {"force": false, "providers": ["openai", ...]}: scrape now,
    write a new version, swap it in; answers the diff and each provider's outcome."""
    principal = await caller(request)
    body = await json_body(request)
    _only(body, ("force", "providers"))
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequest("'force' must be true or false", param="force")
    providers = body.get("providers")
    if providers is not None and (not isinstance(providers, list) or not all(isinstance(p, str) for p in providers)):
        raise InvalidRequest("'providers' must be a list of provider names", param="providers")
    try:
        report = await _updater(request).refresh(force=force, providers=providers)
    except RegistryBusy as exc:
        raise RefreshConflict(str(exc)) from None
    except RegistryError as exc:  # overrides.json or the merged result is bad: the files' state, not the request
        raise RefreshConflict(str(exc), code="registry_error") from None
    log.info("registry refreshed by %s", actor(principal), extra={"registry_version": report.version})
    return json_response(report.as_dict())


async def versions(request: Request) -> Response:
    """GET /admin/registry/versions: the history, oldest first."""
    await caller(request)
    path = _updater(request).path
    return json_response(
        {
            "current": gateway(request).registry.version,
            "versions": [v.as_dict() for v in await asyncio.to_thread(list_versions, path)],
        }
    )


async def diff(request: Request) -> Response:
    """GET /admin/registry/diff?a=3&b=5 (b defaults to the current version): added, removed, price changes."""
    await caller(request)
    a = _version(request.query_params.get("a"), "a")
    b_text = request.query_params.get("b")
    b = _version(b_text, "b") if b_text else gateway(request).registry.version
    path = _updater(request).path
    try:
        old, new = await asyncio.gather(
            asyncio.to_thread(read_version, path, a), asyncio.to_thread(read_version, path, b)
        )
    except RegistryError as exc:
        raise NotFound(str(exc), code="version_not_found") from None
    return json_response(diff_documents(old, new))


async def rollback(request: Request) -> Response:
    """POST /admin/registry/rollback {"version": 3}: version 3's models become current, as a new version."""
    principal = await caller(request)
    body = await json_body(request)
    _only(body, ("version",))
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidRequest("'version' must be a version number", param="version")
    try:
        written, changes = await _updater(request).rollback(version)
    except RegistryBusy as exc:
        raise RefreshConflict(str(exc)) from None
    except RegistryError as exc:
        raise NotFound(str(exc), code="version_not_found") from None
    log.info("registry rolled back by %s", actor(principal), extra={"to_version": version})
    return json_response({"version": written["version"], "rolled_back_to": version, "diff": changes})


def _updater(request: Request) -> RegistryUpdater:
    return gateway(request).registry_updater


def _only(body: dict[str, Any], fields: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidRequest(f"unknown field '{unknown[0]}'; this endpoint takes {', '.join(fields)}", param=unknown[0])


def _version(text: str | None, name: str) -> int:
    if text is None or not text.isdigit():
        raise InvalidRequest(f"query parameter '{name}' must be a version number", param=name)
    return int(text)


ROUTES = [
    Route("/admin/registry", status, methods=["GET"]),
    Route("/admin/registry/refresh", refresh, methods=["POST"]),
    Route("/admin/registry/versions", versions, methods=["GET"]),
    Route("/admin/registry/diff", diff, methods=["GET"]),
    Route("/admin/registry/rollback", rollback, methods=["POST"]),
]
