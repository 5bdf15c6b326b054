"""Fixtures for the registry tests: a private copy of models.json, and a fake pricing site on loopback.

Nothing here writes into the repository's registry/: every test works on a copy under tmp_path.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmproxy.config import RegistryUpdateSettings, Settings
from tests.fakes.serve import ServerThread

REPO = Path(__file__).resolve().parent.parent.parent
EXCERPTS = REPO / "tests" / "fixtures" / "pricing" / "excerpts"
PAGE_FILES = {
    "openai": (EXCERPTS / "openai" / "developers.openai.com_api_docs_pricing.md-excerpt.md", "text/markdown"),
    "anthropic": (
        EXCERPTS / "anthropic" / "platform.claude.com_docs_en_about-claude_pricing.md-excerpt.md",
        "text/markdown",
    ),
    "gemini": (EXCERPTS / "gemini" / "ai.google.dev_gemini-api_docs_pricing.excerpt.html", "text/html"),
}


def page_text(provider: str) -> str:
    return PAGE_FILES[provider][0].read_text(encoding="utf-8")


@dataclass
class PricingSite:
    """A fake pricing site: path -> (status, content type, body), changeable while it runs."""

    url: str = ""
    routes: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    hits: int = 0

    def serve_saved_pages(self) -> None:
        for provider, (file, content_type) in PAGE_FILES.items():
            self.routes[f"/{provider}"] = (200, content_type, file.read_text(encoding="utf-8"))

    def set(self, provider: str, body: str, status: int = 200) -> None:
        self.routes[f"/{provider}"] = (status, PAGE_FILES[provider][1], body)

    def pages(self) -> dict[str, tuple[str, ...]]:
        return {provider: (f"{self.url}/{provider}",) for provider in PAGE_FILES}


@pytest.fixture
def pricing_site() -> Iterator[PricingSite]:
    site = PricingSite()

    async def page(request: Request) -> Response:
        site.hits += 1
        await asyncio.sleep(site.delays.get(request.url.path, 0.0))
        status, content_type, body = site.routes.get(request.url.path, (404, "text/plain", "not found"))
        return Response(body, status, media_type=content_type)

    app = Starlette(routes=[Route("/{path:path}", page)])
    with ServerThread(app) as server:
        site.url = server.url
        site.serve_saved_pages()
        yield site


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    """A copy of the shipped models.json in its own registry directory under tmp_path."""
    target = tmp_path / "registry" / "models.json"
    target.parent.mkdir()
    shutil.copy(REPO / "registry" / "models.json", target)
    return target


def updater_settings(registry_file: Path, site: PricingSite | None = None, **changes: object) -> Settings:
    """Settings for a RegistryUpdater on the copy, scraping the fake site; no cron loop."""
    options = RegistryUpdateSettings(auto_update=False, pages=site.pages() if site else {}, scrape_timeout_s=5.0)
    return Settings(
        data_dir=registry_file.parent.parent / "data",
        registry_path=registry_file,
        registry_update=replace(options, **changes),
    )
