"""Scrapers: read the providers' official pricing pages into PriceEntry lists.

Standalone: imports nothing from llmproxy. llmproxy.scheduler calls `fetch` of each module in
SCRAPERS and hands the entries to llmproxy.registry. Each provider module has the same surface:

    PAGE_URLS: tuple[str, ...]                                  the official page(s) fetched
    parse(text: str) -> list[PriceEntry]                        pure; ParseError if no price table
    async fetch(client: httpx.AsyncClient, url: str | None = None) -> list[PriceEntry]   FetchError on HTTP errors
"""

from __future__ import annotations

from types import ModuleType

from . import anthropic, gemini, openai
from .entry import PriceEntry
from .errors import FetchError, ParseError, ScrapeError

SCRAPERS: dict[str, ModuleType] = {"openai": openai, "anthropic": anthropic, "gemini": gemini}

__all__ = ["SCRAPERS", "FetchError", "ParseError", "PriceEntry", "ScrapeError"]
