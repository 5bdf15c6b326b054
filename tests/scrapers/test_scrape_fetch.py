"""fetch(): real HTTP against a server on 127.0.0.1, errors turned into FetchError."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping

import httpx
import pytest

from llmproxy_scrapers import SCRAPERS, FetchError, ParseError

Serve = Callable[[Mapping[str, tuple[int, str, str]]], str]
PAGE_OF = {
    "openai": ("openai_md", "text/markdown"),
    "anthropic": ("anthropic_md", "text/markdown"),
    "gemini": ("gemini_html", "text/html"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", sorted(SCRAPERS))
async def test_fetch_parses_the_served_page_and_stamps_its_url(
    provider: str, serve: Serve, page: Callable[[str], str]
) -> None:
    key, content_type = PAGE_OF[provider]
    base = serve({"/pricing": (200, content_type, page(key))})
    module = SCRAPERS[provider]
    async with httpx.AsyncClient(timeout=5) as client:
        entries = await module.fetch(client, f"{base}/pricing")
    assert entries
    assert {e.source_url for e in entries} == {f"{base}/pricing"}
    assert [e.model for e in entries] == [e.model for e in module.parse(page(key))]


@pytest.mark.asyncio
async def test_fetch_follows_redirects(serve: Serve, page: Callable[[str], str]) -> None:
    base = serve({"/old": (301, "", "/new"), "/new": (200, "text/markdown", page("anthropic_md"))})
    async with httpx.AsyncClient(timeout=5) as client:
        entries = await SCRAPERS["anthropic"].fetch(client, f"{base}/old")
    assert entries[0].source_url == f"{base}/old"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 404, 403])
async def test_http_error_status_raises_fetch_error(status: int, serve: Serve) -> None:
    base = serve({"/pricing": (status, "text/plain", "upstream broke")})
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(FetchError, match=f"HTTP {status}") as caught:
            await SCRAPERS["openai"].fetch(client, f"{base}/pricing")
    assert caught.value.status == status
    assert caught.value.url == f"{base}/pricing"


@pytest.mark.asyncio
async def test_connection_refused_raises_fetch_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(FetchError, match="ConnectError") as caught:
            await SCRAPERS["gemini"].fetch(client, f"http://127.0.0.1:{port}/pricing")
    assert caught.value.status is None


@pytest.mark.asyncio
async def test_a_page_that_changed_raises_parse_error_not_fetch_error(serve: Serve) -> None:
    base = serve({"/pricing": (200, "text/html", "<html><body>Moved to a new design</body></html>")})
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(ParseError):
            await SCRAPERS["gemini"].fetch(client, f"{base}/pricing")
