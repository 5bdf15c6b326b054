"""Shared helpers for the scraper tests: the saved pricing pages, and a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pricing"
EXCERPTS = FIXTURES / "excerpts"
IMITATIONS = FIXTURES / "third-party-fixtures" / "Microllin-model-price-hub"

# Test files reach these through the `page` fixture: importing conftest by name is ambiguous
# once other test folders have a conftest.py of their own.
PAGES: Mapping[str, Path] = {
    "openai_md": EXCERPTS / "openai" / "developers.openai.com_api_docs_pricing.md-excerpt.md",
    "openai_astro": EXCERPTS / "openai" / "developers.openai.com_api_docs_pricing.astro-island.excerpt.html",
    "anthropic_md": EXCERPTS / "anthropic" / "platform.claude.com_docs_en_about-claude_pricing.md-excerpt.md",
    "gemini_html": EXCERPTS / "gemini" / "ai.google.dev_gemini-api_docs_pricing.excerpt.html",
    "openai_imitation": IMITATIONS / "openai_pricing.html",
    "anthropic_imitation": IMITATIONS / "anthropic_pricing.html",
    "gemini_imitation": IMITATIONS / "google_pricing.html",
}

# path -> (status, content type, body); what one fake pricing site answers.
Routes = Mapping[str, tuple[int, str, str]]


@pytest.fixture
def page() -> Callable[[str], str]:
    """Text of a saved pricing page by its key in PAGES."""
    return lambda key: PAGES[key].read_text(encoding="utf-8")


def _handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib's name (BaseHTTPRequestHandler)
            status, content_type, body = routes.get(self.path, (404, "text/plain", "not found"))
            if status in (301, 302, 307, 308):
                self.send_response(status)
                self.send_header("location", body)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("content-type", f"{content_type}; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            return

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Routes], str]]:
    """Start a real HTTP server on 127.0.0.1 answering `routes`; returns its base URL. Stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(routes: Routes) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes))
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
