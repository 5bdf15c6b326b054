"""Reading the text of one price cell: amounts, units, context tiers, promos, "Not available".

Pricing pages write the same fact many ways: "$1.25", "$10 / MTok", "$0.002 / 1K tokens",
"$1.25, prompts <= 200k tokens" + "$2.50, prompts > 200k tokens", "$1.25 / $2.50",
"$0.75 through December 31, 2026. $1.50", "Free of charge", "-". Everything that turns such text
into a number in USD per 1M tokens lives here, so the provider modules only map columns and rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Cells that state there is no such price. Compared after lowercasing and stripping.
_ABSENT = frozenset(
    {
        "",
        "-",
        "--",
        "—",
        "–",
        "n/a",
        "na",
        "none",
        "null",
        "not available",
        "not offered",
        "not supported",
        "unavailable",
        "tbd",
        "coming soon",
    }
)
_FREE = re.compile(r"^\s*(free(\s+of\s+charge)?|no\s+charge|\$?0(\.0+)?)\s*$", re.IGNORECASE)
_AMOUNT = re.compile(r"\$\s*(\d[\d,]*(?:\.\d+)?)")
_BARE_NUMBER = re.compile(r"^\s*(\d[\d,]*(?:\.\d+)?)\s*(?:usd)?\s*$", re.IGNORECASE)
# A promotional price comes first and names its end: "$0.75 through December 31, 2026. $1.50".
_PROMO = re.compile(
    r"\b(through|until|till|ends?|promo(tional)?|introductory|limited[- ]time|discount)\b", re.IGNORECASE
)
# Footnote marks: [^1], <sup>1</sup>, unicode superscripts, trailing asterisks and daggers.
_FOOTNOTES = re.compile(r"\[\^[^\]]*\]|<sup>.*?</sup>|[\u00b9\u00b2\u00b3\u2070-\u209f*†‡]+", re.IGNORECASE)

# Units, checked in this order; each maps to the factor that turns the stated price into per-1M tokens.
_UNITS: tuple[tuple[re.Pattern[str], float], ...] = (
    (
        re.compile(
            r"mtok\b|(per|/)\s*(1\s*)?m(illion)?\s+(input\s+|output\s+)?tokens?|"
            r"(per|/)\s*1,?000,?000\s+tokens?",
            re.IGNORECASE,
        ),
        1.0,
    ),
    (
        re.compile(
            r"ktok\b|(per|/)\s*(1\s*)?k\s+(input\s+|output\s+)?tokens?|"
            r"(per|/)\s*(1,?000|thousand)\s+tokens?",
            re.IGNORECASE,
        ),
        1_000.0,
    ),
    (re.compile(r"(per|/)\s*(1\s+)?(input\s+|output\s+)?token\b", re.IGNORECASE), 1_000_000.0),
)
# Context tiers inside a cell or header: "<= 200k tokens", "> 200K", "prompts over 128,000 tokens".
_UP_TO = re.compile(r"(<=|≤|=<|<|\bup\s+to\b|\bunder\b|\bbelow\b|\bless\s+than\b)\s*(\d[\d,.]*\s*[km]?)", re.IGNORECASE)
_ABOVE = re.compile(
    r"(>=|≥|>|\bover\b|\babove\b|\bmore\s+than\b|\bgreater\s+than\b)\s*(\d[\d,.]*\s*[km]?)", re.IGNORECASE
)
_RANGE = re.compile(r"(\$\s*\d[\d,]*(?:\.\d+)?)\s*/\s*(\$\s*\d[\d,]*(?:\.\d+)?)")
# Parts of a cell that are not a per-token price of text: storage, other modalities.
_NOT_TOKENS = re.compile(
    r"storage|per\s+hour|\d\s*(per|/)\s*(1,?000\s+)?(image|second|minute|hour|"
    r"request|search|quer|prompt)",
    re.IGNORECASE,
)
_OTHER_MODALITY = re.compile(r"\b(audio|image|video)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TieredPrice:
    """A cell read as short-context price, long-context price and the threshold between them."""

    short: float | None
    long: float | None = None
    threshold: int | None = None


def clean(text: str) -> str:
    """Drop footnote marks and collapse blanks, keeping line breaks (they separate tiers in a cell)."""
    text = _FOOTNOTES.sub("", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def unit_factor(text: str) -> float | None:
    """Factor that turns a price stated in `text`'s unit into USD per 1M tokens; None if no unit is named.

    The earliest unit mentioned wins, so "$0.002 / 1K tokens (billed per 1M)" reads as per-1K.
    """
    found = [(m.start(), factor) for pattern, factor in _UNITS if (m := pattern.search(text))]
    return min(found)[1] if found else None


def parse_tokens(text: str) -> int | None:
    """A token count as pages write it: "200k" -> 200000, "1M" -> 1000000, "128,000" -> 128000."""
    m = re.fullmatch(r"\s*(\d[\d,]*(?:\.\d+)?)\s*([km]?)\s*", text, re.IGNORECASE)
    if not m:
        return None
    value = float(m.group(1).replace(",", ""))
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return round(value * scale)


def context_threshold(text: str) -> int | None:
    """The token count that separates short from long context, if `text` names one."""
    for pattern in (_UP_TO, _ABOVE):
        if m := pattern.search(text):
            if (tokens := parse_tokens(m.group(2))) and tokens >= 1_000:
                return tokens
    return None


def parse_price(text: str, factor: float = 1.0) -> float | None:
    """One price in USD per 1M tokens, or None when the cell says there is none.

    `factor` is the unit of the table; a unit written in the cell itself wins. A promotional
    price is skipped for the regular one after it: promo end dates are not modelled, and
    over-estimating a cost is the safe side for budgets.
    """
    text = clean(text)
    lowered = text.lower().strip(" .")
    if lowered in _ABSENT or lowered.startswith("not available"):
        return None
    if _FREE.match(lowered):
        return 0.0
    amounts = _AMOUNT.findall(text)
    if not amounts:
        bare = _BARE_NUMBER.match(text)
        if not bare:
            return None
        amounts = [bare.group(1)]
    chosen = amounts[-1] if len(amounts) > 1 and _PROMO.search(text) else amounts[0]
    cell_factor = unit_factor(text) or factor
    return round(float(chosen.replace(",", "")) * cell_factor, 9)


def read_cell(text: str, factor: float = 1.0, hint: str = "") -> TieredPrice:
    """Read a cell that may hold a short- and a long-context price.

    Forms understood: one price per line with "<= 200k" / "> 200k" qualifiers, and "$1.25 / $2.50"
    where the qualifiers are in the cell or in `hint` (the column header or row label).
    Lines for storage or for audio/image/video input are left out when a text price is there.
    """
    text = clean(text)
    parts = [part for part in text.split("\n") if part]
    if len(parts) == 1 and (pair := _RANGE.search(parts[0])) and unit_factor(pair.group(0)) is None:
        threshold = context_threshold(parts[0]) or context_threshold(hint)
        return TieredPrice(parse_price(pair.group(1), factor), parse_price(pair.group(2), factor), threshold)
    priced = [part for part in parts if not _NOT_TOKENS.search(part)] or parts[:1]
    short: list[str] = []
    long: list[str] = []
    threshold: int | None = None
    for part in priced:
        if above := _ABOVE.search(part):
            long.append(part)
            threshold = threshold or parse_tokens(above.group(2))
        else:
            if up_to := _UP_TO.search(part):
                threshold = threshold or parse_tokens(up_to.group(2))
            short.append(part)
    return TieredPrice(_first_text_price(short, factor), _first_text_price(long, factor), threshold if long else None)


def _first_text_price(parts: list[str], factor: float) -> float | None:
    """The price for text input among per-modality lines ("$0.30 (text / image / video)", "$1.00 (audio)")."""
    if not parts:
        return None
    ranked = sorted(parts, key=lambda p: 0 if "text" in p.lower() else 1 if not _OTHER_MODALITY.search(p) else 2)
    return parse_price(ranked[0], factor)
