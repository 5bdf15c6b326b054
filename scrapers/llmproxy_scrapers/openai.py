"""OpenAI prices, read from the Markdown twin of the official pricing page.

https://developers.openai.com/api/docs/pricing renders its price tables client-side from an
Astro island's serialised props, so the HTML has no readable price table for most models.
The same docs site serves the page as Markdown at the same URL + ".md"; that is what we fetch.
`parse` also reads plain HTML <table>s, so a page that moves back to server-rendered tables
(as the ChatGPT/Codex table already is) keeps working.

Standard and Batch tables are read, and the Embeddings table (one price per model, mode
"embedding"); Flex, Priority and per-modality tables (audio, image, realtime, fine-tuning) are
not, since PriceEntry holds text-token prices only.
"""

from __future__ import annotations

import re

import httpx

from .entry import PriceEntry
from .fetching import fetch_entries
from .tabular import parse_page

NAME = "openai"
PAGE_URLS: tuple[str, ...] = ("https://developers.openai.com/api/docs/pricing.md",)

_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]*$")


def parse(text: str) -> list[PriceEntry]:
    """Price entries from the pricing page (Markdown, or HTML with plain tables)."""
    return parse_page(text, NAME, model_ids, "price table")


async def fetch(client: httpx.AsyncClient, url: str | None = None) -> list[PriceEntry]:
    """GET the pricing page (or `url`) and parse it."""
    return await fetch_entries(client, (url,) if url else PAGE_URLS, parse)


def model_ids(name: str) -> list[str]:
    """The API id a row is listed under: the page already writes ids ("gpt-5.1"); anything else is not a model."""
    name = name.strip().strip("*").lower()
    return [name] if _MODEL_ID.match(name) else []
