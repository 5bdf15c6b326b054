"""PriceEntry: one model's prices as a provider's pricing page states them.

This is the whole contract between the scrapers and their consumer (llmproxy.registry):
plain, frozen, hashable values in USD per 1M tokens, whatever unit the page used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """Prices of one model, standard tier; None where the page states no such price."""

    provider: str  # "openai" | "anthropic" | "gemini"
    model: str  # the provider's API model id, e.g. "gpt-5.1", "claude-sonnet-4-5", "gemini-2.5-pro"
    input_per_mtok: float  # USD per 1M input tokens (standard tier, short context)
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # cache read price
    cache_write_per_mtok: float | None = None
    long_context_threshold: int | None = None  # tokens; prices above it below
    input_per_mtok_long: float | None = None
    output_per_mtok_long: float | None = None
    batch_input_per_mtok: float | None = None
    batch_output_per_mtok: float | None = None
    aliases: tuple[str, ...] = ()  # other names the page lists the same row under
    source_url: str = ""
    mode: str = "chat"  # "embedding" for an embedding model: its input price only (output_per_mtok 0)
