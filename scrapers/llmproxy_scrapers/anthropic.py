"""Anthropic prices, read from the Markdown twin of the official pricing page.

https://platform.claude.com/docs/en/about-claude/pricing serves the same page as Markdown at
the URL + ".md", with the tables as pipe tables; that is simpler and steadier than the rendered
HTML, so it is what we fetch. `parse` reads HTML <table>s too.

The page names models by display name ("Claude Sonnet 4.5"); `model_ids` turns that into the
API id ("claude-sonnet-4-5"). The "Model pricing" table gives the standard prices, with the
5-minute cache write as the cache write price; the "Batch processing" table adds batch prices.
"""

from __future__ import annotations

import re

import httpx

from .entry import PriceEntry
from .fetching import fetch_entries
from .tabular import parse_page

NAME = "anthropic"
PAGE_URLS: tuple[str, ...] = ("https://platform.claude.com/docs/en/about-claude/pricing.md",)

_DISPLAY_NAME = re.compile(r"^claude\s+([a-z][a-z ]*?)\s+(\d+)(?:\.(\d+))?$", re.IGNORECASE)
_API_ID = re.compile(r"^claude-[a-z0-9.-]+$")


def parse(text: str) -> list[PriceEntry]:
    """Price entries from the pricing page (Markdown, or HTML with plain tables)."""
    return parse_page(text, NAME, model_ids, "'Model pricing' table")


async def fetch(client: httpx.AsyncClient, url: str | None = None) -> list[PriceEntry]:
    """GET the pricing page (or `url`) and parse it."""
    return await fetch_entries(client, (url,) if url else PAGE_URLS, parse)


def model_ids(name: str) -> list[str]:
    """API ids for a display name, main id first.

    Claude 4 and later are family-then-version ("Claude Opus 4.1" -> "claude-opus-4-1"). The
    whole-version Claude 4 models are called by Anthropic's published "-0" aliases
    ("Claude Opus 4" -> "claude-opus-4-0", also listed as "claude-opus-4"). Claude 3.x put the
    version first ("Claude Haiku 3.5" -> "claude-3-5-haiku"). A cell already holding an API id is kept.
    """
    name = " ".join(name.split()).strip("*")
    if _API_ID.match(name.lower()):
        return [name.lower()]
    m = _DISPLAY_NAME.match(name)
    if not m:
        return []
    family = "-".join(m.group(1).lower().split())
    major, minor = m.group(2), m.group(3)
    version = f"{major}-{minor}" if minor else major
    if int(major) < 4:
        return [f"claude-{version}-{family}"]
    if major == "4" and not minor:
        return [f"claude-{family}-4-0", f"claude-{family}-4"]
    return [f"claude-{family}-{version}"]
