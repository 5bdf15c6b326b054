"""Gemini API prices, read from the official pricing page's HTML.

https://ai.google.dev/gemini-api/docs/pricing is server-rendered Google devsite markup: each
model is an <h2> followed by its API id(s) in <code>, then one table per tier (<h3> "Standard",
"Batch", ...). The tables have one row per kind of price ("Input price", "Output price",
"Context caching price") and one column per plan ("Free Tier", "Paid Tier, per 1M tokens in USD").
We read the paid column of the Standard and Batch tables. An embedding model's table has an input
price only (mode "embedding", output 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from selectolax.lexbor import LexborHTMLParser

from .entry import PriceEntry
from .errors import ParseError
from .fetching import fetch_entries
from .prices import TieredPrice, read_cell, unit_factor
from .tables import Table, html_table, node_text

NAME = "gemini"
PAGE_URLS: tuple[str, ...] = ("https://ai.google.dev/gemini-api/docs/pricing",)

_MODEL_ID = re.compile(r"^[a-z][a-z0-9.-]*[a-z0-9]$")
_SKIPPED_TIERS = re.compile(r"\b(flex|priority|provisioned)\b", re.IGNORECASE)


@dataclass(slots=True)
class _Section:
    """What the page says about one model, gathered while walking the page (local to one parse)."""

    heading_id: str | None = None
    codes: list[str] = field(default_factory=list)
    seen_table: bool = False
    standard: dict[str, TieredPrice] = field(default_factory=dict)
    batch: dict[str, TieredPrice] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """API ids, main first: those in <code> under the heading, else the heading's own id."""
        return self.codes or ([self.heading_id] if self.heading_id else [])


def parse(text: str) -> list[PriceEntry]:
    """Price entries from the pricing page HTML."""
    sections = _sections(LexborHTMLParser(text))
    entries: dict[str, PriceEntry] = {}
    for section in sections:
        entry = _entry(section)
        if entry is not None:
            entries.setdefault(entry.model, entry)
    if not entries:
        raise ParseError(
            f"gemini: no model section (<h2> + model id + table with Input/Output price rows) "
            f"in {len(text)} characters of text; has the pricing page layout changed?"
        )
    return list(entries.values())


async def fetch(client: httpx.AsyncClient, url: str | None = None) -> list[PriceEntry]:
    """GET the pricing page (or `url`) and parse it."""
    return await fetch_entries(client, (url,) if url else PAGE_URLS, parse)


def _sections(tree: LexborHTMLParser) -> list[_Section]:
    """Walk h2 / h3 / code / table in page order, collecting each model's ids and tier tables."""
    sections: list[_Section] = []
    current: _Section | None = None
    tier = "standard"
    for node in tree.css("h2, h3, code, table"):
        if node.tag == "h2":
            heading_id = (node.attributes or {}).get("id") or _slug(node_text(node))
            current = _Section(heading_id=heading_id if _MODEL_ID.match(heading_id) else None)
            sections.append(current)
            tier = "standard"
        elif current is None:
            continue
        elif node.tag == "h3":
            tier = _tier(node_text(node))
        elif node.tag == "code":
            # Ids sit between the heading and the first table; a <code> after that is prose.
            code = node_text(node).strip()
            if not current.seen_table and _MODEL_ID.match(code) and code not in current.codes:
                current.codes.append(code)
        elif node.tag == "table":
            current.seen_table = True
            if tier == "skip":
                continue
            target = current.batch if tier == "batch" else current.standard
            for kind, price in _read_price_table(html_table(node)).items():
                target.setdefault(kind, price)
    return sections


def _read_price_table(table: Table) -> dict[str, TieredPrice]:
    """Rows "Input price", "Output price", "Context caching price" of the paid column."""
    paid = _paid_column(table.headers)
    if paid is None:
        return {}
    factor = unit_factor(table.headers[paid]) or 1.0
    prices: dict[str, TieredPrice] = {}
    for cells in table.rows:
        if paid >= len(cells) or not cells:
            continue
        kind = _row_kind(cells[0])
        if kind and kind not in prices:
            prices[kind] = read_cell(cells[paid], factor, cells[0])
    return prices


def _paid_column(headers: Sequence[str]) -> int | None:
    """The paid-tier column: the header that says "paid", else the last column (a page with one plan)."""
    for index, header in enumerate(headers):
        if "paid" in header.lower():
            return index
    return len(headers) - 1 if len(headers) >= 2 else None


def _row_kind(label: str) -> str | None:
    """ "input", "output" or "cached" for a row label; None for grounding, storage and other rows."""
    label = label.lower()
    if re.search(r"\b(audio|image|video)\b", label) and "text" not in label:
        return None  # a per-modality row; the text price is on the plain row
    if "cach" in label:
        return None if "storage" in label else "cached"
    if label.startswith("input") or "input price" in label:
        return "input"
    if label.startswith("output") or "output price" in label:
        return "output"
    return None


def _tier(heading: str) -> str:
    heading = heading.lower()
    if "batch" in heading:
        return "batch"
    if _SKIPPED_TIERS.search(heading):
        return "skip"
    return "standard"


def _entry(section: _Section) -> PriceEntry | None:
    """An entry for a section with an id and paid input and output prices; None otherwise (e.g. Imagen)."""
    std = section.standard
    ids = section.ids
    # An embedding model's table has an input price only: its output costs nothing.
    embedding = "output" not in std and any("embedding" in i for i in ids)
    if not ids or "input" not in std or ("output" not in std and not embedding):
        return None
    inp, out = std["input"], std.get("output", TieredPrice(0.0))
    if inp.short is None or out.short is None:
        return None
    cached = std.get("cached", TieredPrice(None))
    batch_in, batch_out = section.batch.get("input"), section.batch.get("output")
    has_long = inp.long is not None or out.long is not None
    return PriceEntry(
        provider=NAME,
        model=ids[0],
        input_per_mtok=inp.short,
        output_per_mtok=out.short,
        cached_input_per_mtok=cached.short,
        long_context_threshold=(inp.threshold or out.threshold) if has_long else None,
        input_per_mtok_long=inp.long,
        output_per_mtok_long=out.long,
        batch_input_per_mtok=batch_in.short if batch_in else None,
        batch_output_per_mtok=batch_out.short if batch_out else None,
        aliases=tuple(ids[1:]),
        mode="embedding" if embedding else "chat",
    )


def _slug(heading: str) -> str:
    """The id devsite derives from a heading ("Gemini 2.5 Pro" -> "gemini-2.5-pro"), for pages without ids."""
    return re.sub(r"[^a-z0-9.-]+", "-", heading.lower()).strip("-")
