"""The two ways a scrape fails: the page could not be fetched, or it could not be read.

The scheduler keeps the previous registry for a provider whose scrape raised either one,
so the messages name the URL or the missing table: they end up in the scrape status.
"""

from __future__ import annotations


class ScrapeError(Exception):
    """Base of every error this package raises on purpose."""


class ParseError(ScrapeError, ValueError):
    """The text has no price table this scraper recognises (the page changed, or it is the wrong page)."""


class FetchError(ScrapeError):
    """The page could not be downloaded: a transport failure or an HTTP error status."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
