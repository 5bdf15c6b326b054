"""Admin API under /admin: JSON endpoints for operators. Each area has its own module with a
ROUTES list; this package only gathers them."""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import audit, cache, keys, overview, providers, registry, system, usage, users


def admin_routes() -> list[BaseRoute]:
    return [
        *system.ROUTES,
        *usage.ROUTES,
        *cache.ROUTES,
        *registry.ROUTES,
        *keys.ROUTES,
        *users.ROUTES,
        *providers.ROUTES,
        *audit.ROUTES,
        *overview.ROUTES,
    ]
