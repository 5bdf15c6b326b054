"""The web dashboard: the static files in ui/static/, served at /ui by the gateway itself.

No build step: index.html, style.css and app.js (plain ES modules) plus the vendored uPlot. The
folder holds nothing but what the browser may fetch, so serving all of it exposes no source. Every
response carries a strict Content-Security-Policy, so the page can only talk to this gateway.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DIRECTORY = Path(__file__).resolve().parent / "static"
# uPlot sizes its elements through element.style (CSSOM), which style-src does not govern;
# 'unsafe-inline' is not needed anywhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class DashboardFiles(StaticFiles):
    """StaticFiles with the security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        if path in ("", ".", "index.html"):
            response.headers["cache-control"] = "no-cache"  # a new release's page picks up its new files
        return response


async def _to_slash(request: object) -> Response:
    return RedirectResponse("/ui/", 308)


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/ui", _to_slash, methods=["GET", "HEAD"]),
        Mount("/ui", app=DashboardFiles(directory=DIRECTORY, html=True), name="ui"),
    ]
