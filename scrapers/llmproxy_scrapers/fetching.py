"""Downloading pricing pages with httpx, and stamping each entry with the page it came from.

Provider modules stay pure parsers plus a one-line `fetch`; the HTTP details (redirects,
the Accept header, turning httpx failures into FetchError) are decided once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import httpx

from .entry import PriceEntry
from .errors import FetchError

Parser = Callable[[str], list[PriceEntry]]

# The docs sites answer the .md URLs with Markdown and the others with HTML; say we take both.
ACCEPT = "text/markdown, text/plain;q=0.9, text/html;q=0.8, */*;q=0.1"
USER_AGENT = "llmproxy-scrapers (+pricing registry refresh)"


async def get_text(client: httpx.AsyncClient, url: str) -> str:
    """The body of `url` as text; FetchError on a transport failure or a status of 400 and above."""
    try:
        response = await client.get(url, headers={"accept": ACCEPT, "user-agent": USER_AGENT}, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise FetchError(f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from exc
    if response.status_code >= 400:
        raise FetchError(f"GET {url} answered HTTP {response.status_code}", url=url, status=response.status_code)
    return response.text


async def fetch_entries(client: httpx.AsyncClient, urls: Iterable[str], parse: Parser) -> list[PriceEntry]:
    """Fetch and parse each page in turn; a model found on an earlier page keeps that page's entry."""
    entries: dict[str, PriceEntry] = {}
    for url in urls:
        for entry in parse(await get_text(client, url)):
            entries.setdefault(entry.model, replace(entry, source_url=entry.source_url or url))
    return list(entries.values())
