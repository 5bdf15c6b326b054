"""Price entries from tables that have one model per row (OpenAI's and Anthropic's layout).

Columns are found by what their header says, never by position, so a reordered, renamed
("Base Input Tokens" / "Input") or widened (short + long context, cache writes) table still reads.
The tier of a table (standard or batch) comes from its headings; other tiers (flex, priority,
fast mode, regional) and other modalities (audio, image) are left out. An embeddings table (its
heading says so) has one price per model, whatever its column is called ("Cost", "Price",
"Input"): it becomes that model's input price, with no output price (mode "embedding").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from .entry import PriceEntry
from .prices import clean, context_threshold, read_cell, unit_factor
from .errors import ParseError
from .tables import Table, html_tables, markdown_tables

# A model cell read into the API id first, then the other names the row goes by.
Namer = Callable[[str], Sequence[str]]

_SKIPPED_TIERS = re.compile(
    r"\b(flex|priority|fast|scale|regional|data residency|provisioned|"
    r"realtime|audio|image|video|embedding|transcription|speech|moderation|"
    r"fine[- ]?tun\w*|training|tool|search)\b",
    re.IGNORECASE,
)
_BATCH = re.compile(r"\bbatch", re.IGNORECASE)
_EMBEDDINGS = re.compile(r"\bembedding", re.IGNORECASE)
_ONE_PRICE = re.compile(r"\b(cost|price|input)", re.IGNORECASE)
_PARENTHETICAL = re.compile(r"\(([^()]*)\)")
_NAME_SPLIT = re.compile(r"\s*(?:/|,|;|\n|\bor\b)\s*")
_SHORT_FIELDS = MappingProxyType({"input_per_mtok": "input_per_mtok_long", "output_per_mtok": "output_per_mtok_long"})
# Columns of another plan or tier inside a standard table ("Free tier input", "Priority output").
_OTHER_PLAN = re.compile(r"\b(free|flex|priority|fast|scale)\b")
_REQUIRED = ("input_per_mtok", "output_per_mtok")
_PRICED = (*_REQUIRED, "batch_input_per_mtok", "batch_output_per_mtok")


@dataclass(frozen=True, slots=True)
class Row:
    """One model row: its names and the PriceEntry fields read from it."""

    names: tuple[str, ...]
    prices: dict[str, float | int | None]
    tier: str


def parse_page(text: str, provider: str, namer: Namer, expected: str) -> list[PriceEntry]:
    """Price entries from a page of one-model-per-row tables (Markdown, or HTML with plain tables).
    `expected` names the table in the error raised when none is found."""
    tables = markdown_tables(text)
    if "<table" in text.lower():
        tables += html_tables(text)
    entries = entries_from_tables(tables, provider, namer)
    if not entries:
        raise ParseError(
            f"{provider}: no {expected} with Model, Input and Output columns in {len(text)} "
            "characters of text; has the pricing page layout changed?"
        )
    return entries


def entries_from_tables(tables: Iterable[Table], provider: str, namer: Namer) -> list[PriceEntry]:
    """Standard-tier rows become entries; batch-tier rows add batch prices to the same model.

    A model listed twice keeps its first standard row (pages list the current price first).
    Batch rows for a model with no standard row are dropped: an entry needs its base prices.
    """
    rows = [row for table in tables for row in read_table(table, namer)]
    entries: dict[str, PriceEntry] = {}
    for row in rows:
        if row.tier not in ("standard", "embedding") or row.names[0] in entries:
            continue
        if any(row.prices.get(field) is None for field in _REQUIRED):
            continue
        prices = {k: v for k, v in row.prices.items() if v is not None}
        mode = "embedding" if row.tier == "embedding" else "chat"
        entries[row.names[0]] = PriceEntry(
            provider=provider, model=row.names[0], aliases=row.names[1:], mode=mode, **prices
        )  # type: ignore[arg-type]  # prices holds price fields only, all floats
    for row in rows:
        entry = entries.get(row.names[0])
        if row.tier != "batch" or entry is None:
            continue
        # A batch table heads its columns "Input" or "Batch input"; both mean the batch price here.
        updates = {
            field: _first_set(row.prices.get(field), row.prices.get(plain))
            for field, plain in (
                ("batch_input_per_mtok", "input_per_mtok"),
                ("batch_output_per_mtok", "output_per_mtok"),
            )
        }
        updates = {k: v for k, v in updates.items() if v is not None and getattr(entry, k) is None}
        entries[entry.model] = replace(entry, **updates)  # type: ignore[arg-type]  # batch price fields, floats
    return list(entries.values())


def read_table(table: Table, namer: Namer) -> list[Row]:
    """The model rows of one table; [] when it is not a per-model token price table."""
    tier = table_tier(table)
    columns = embedding_columns(table.headers) if tier == "embedding" else locate_columns(table.headers)
    if tier is None or "model" not in columns or not any(f in columns for f in _PRICED):
        return []
    factor = unit_factor(" ".join(table.headers)) or unit_factor(table.preamble) or 1.0
    modality = columns.pop("modality", None)
    model_col = columns.pop("model")
    rows: list[Row] = []
    last_model = ""
    for cells in table.rows:
        model_cell = cells[model_col].strip() if model_col < len(cells) else ""
        # A blank model cell continues the row above (one model, one line per modality).
        model_cell, last_model = (model_cell or last_model), (model_cell or last_model)
        if modality is not None and modality < len(cells) and "text" not in cells[modality].lower():
            continue
        names, threshold = split_model_cell(model_cell)
        ids = tuple(dict.fromkeys(n for name in names for n in namer(name) if n))
        if not ids:
            continue
        prices = _read_prices(cells, columns, factor, table.headers)
        if tier == "embedding":
            prices["output_per_mtok"] = 0.0  # embeddings bill the text in only
        if prices.get("input_per_mtok_long") is not None or prices.get("output_per_mtok_long") is not None:
            prices["long_context_threshold"] = prices.get("long_context_threshold") or threshold
        else:
            prices.pop("long_context_threshold", None)
        rows.append(Row(ids, prices, tier))
    return rows


def table_tier(table: Table) -> str | None:
    """ "standard", "batch", or None for a table of a tier or modality that PriceEntry does not hold."""
    for heading in reversed(table.headings):
        if _BATCH.search(heading):
            return "batch"
        if _EMBEDDINGS.search(heading):
            return "embedding"
        if _SKIPPED_TIERS.search(heading):
            return None
    return "standard"


def embedding_columns(headers: Sequence[str]) -> dict[str, int]:
    """An embeddings table's columns: the model, its one price, and a batch price if it has one."""
    columns: dict[str, int] = {}
    for index, header in enumerate(headers):
        field = classify_header(header)
        if field == "model":
            columns.setdefault("model", index)
        elif _OTHER_PLAN.search(header.lower()):
            continue
        elif _BATCH.search(header):
            columns.setdefault("batch_input_per_mtok", index)
        elif _ONE_PRICE.search(header):
            columns.setdefault("input_per_mtok", index)
    return columns


def locate_columns(headers: Sequence[str]) -> dict[str, int]:
    """Column index of each field, found by header text; the first column claiming a field keeps it."""
    columns: dict[str, int] = {}
    for index, header in enumerate(headers):
        field = classify_header(header)
        if field is not None and field not in columns:
            columns[field] = index
    return columns


def classify_header(header: str) -> str | None:
    """Which PriceEntry field (or "model" / "modality") a column header names, if any.

    Examples: "Base Input Tokens" -> input_per_mtok, "Long context cached input" -> None
    (PriceEntry has no long-context cache price), "5m Cache Writes" -> cache_write_per_mtok,
    "1h Cache Writes" -> None, "Batch output" -> batch_output_per_mtok.
    """
    h = " ".join(header.lower().split())
    if not h:
        return None
    if h in ("model", "models", "model name", "model id") or (
        h.startswith("model") and "price" not in h and "input" not in h and "output" not in h
    ):
        return "model"
    if h in ("modality", "type", "token type"):
        return "modality"
    if _OTHER_PLAN.search(h):
        return None
    long = bool(re.search(r"\blong\b|>\s*\d|\bover\s+\d|\babove\s+\d", h))
    batch = "batch" in h
    if re.search(r"\bwrite|creation|\bcreate", h):
        if re.search(r"\b1\s*h|hour", h) or long or batch:
            return None  # PriceEntry keeps the default 5-minute cache write only
        return "cache_write_per_mtok"
    if re.search(r"cache|cached|\bhit", h):
        return None if long or batch else "cached_input_per_mtok"
    if re.search(r"\binput|\bprompt", h):
        kind = "input"
    elif re.search(r"\boutput|\bcompletion", h):
        kind = "output"
    else:
        return None
    if batch:
        return None if long else f"batch_{kind}_per_mtok"
    return f"{kind}_per_mtok_long" if long else f"{kind}_per_mtok"


def split_model_cell(cell: str) -> tuple[list[str], int | None]:
    """Names in a model cell, and a context threshold stated there ("gpt-5.5 (<272K context length)").

    Parenthesised notes ("(limited availability)", "(deprecated)") are dropped; names joined by
    "/", ",", "or" or a line break are all returned, the first being the row's main name.
    """
    cell = clean(cell)
    threshold = None
    for note in _PARENTHETICAL.findall(cell):
        threshold = threshold or context_threshold(note)
    bare = _PARENTHETICAL.sub(" ", cell)
    names = [" ".join(part.split()) for part in _NAME_SPLIT.split(bare)]
    return [name for name in names if name], threshold


def _read_prices(
    cells: Sequence[str], columns: dict[str, int], factor: float, headers: Sequence[str]
) -> dict[str, float | int | None]:
    prices: dict[str, float | int | None] = {}
    for field, index in columns.items():
        if index >= len(cells):
            continue
        tiered = read_cell(cells[index], factor, headers[index])
        if prices.get(field) is None:
            prices[field] = tiered.short
        long_field = _SHORT_FIELDS.get(field)
        if long_field and tiered.long is not None and prices.get(long_field) is None:
            prices[long_field] = tiered.long
            prices["long_context_threshold"] = prices.get("long_context_threshold") or tiered.threshold
    return prices


def _first_set(*values: float | int | None) -> float | int | None:
    return next((v for v in values if v is not None), None)
