"""llmproxy_scrapers.gemini: devsite sections per model, the paid column, tiers, promos, long context."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from llmproxy_scrapers import ParseError, PriceEntry, gemini


def by_model(entries: list[PriceEntry]) -> dict[str, PriceEntry]:
    return {e.model: e for e in entries}


def test_page_reads_every_model(page: Callable[[str], str]) -> None:
    entries = gemini.parse(page("gemini_html"))
    assert [e.model for e in entries] == ["gemini-3.5-flash", "gemini-3.1-flash-lite", "gemini-2.5-pro"]
    assert {e.provider for e in entries} == {"gemini"}


def test_prices_match_the_page(page: Callable[[str], str]) -> None:
    # Checked by hand against the "Paid Tier" column of the saved page.
    models = by_model(gemini.parse(page("gemini_html")))
    flash = models["gemini-3.5-flash"]
    assert (flash.input_per_mtok, flash.output_per_mtok, flash.cached_input_per_mtok) == (1.5, 9.0, 0.15)
    assert flash.cache_write_per_mtok is None  # caching storage is per hour, not a write price
    lite = models["gemini-3.1-flash-lite"]  # "$0.25 (text / image / video)<br>$0.50 (audio)"
    assert (lite.input_per_mtok, lite.output_per_mtok, lite.cached_input_per_mtok) == (0.25, 1.5, 0.025)
    pro = models["gemini-2.5-pro"]  # "$1.25, prompts <= 200k tokens<br>$2.50, prompts > 200k tokens"
    assert (pro.input_per_mtok, pro.output_per_mtok, pro.cached_input_per_mtok) == (1.25, 10.0, 0.125)
    assert (pro.input_per_mtok_long, pro.output_per_mtok_long) == (2.5, 15.0)
    assert pro.long_context_threshold == 200_000
    assert flash.long_context_threshold is None and flash.input_per_mtok_long is None


def test_promo_prices_batch_tier_and_non_token_models(page: Callable[[str], str]) -> None:
    models = by_model(gemini.parse(page("gemini_imitation")))
    assert set(models) == {"gemini-3.7-flash", "gemini-2.5-pro"}  # Imagen is priced per image
    flash = models["gemini-3.7-flash"]  # "$0.75 through December 31, 2026. $1.50": the regular price
    assert (flash.input_per_mtok, flash.output_per_mtok, flash.cached_input_per_mtok) == (1.5, 7.5, 0.15)
    assert (flash.batch_input_per_mtok, flash.batch_output_per_mtok) == (0.75, 3.75)


def test_reordered_columns_rows_and_footnotes_read_the_same(page: Callable[[str], str]) -> None:
    original = by_model(gemini.parse(page("gemini_html")))
    text = page("gemini_html")
    # Paid column first, header reworded; output row before input row; footnote marks in cells.
    text = re.sub(
        r"<th></th>\s*<th scope=\"col\">Free Tier</th>\s*<th scope=\"col\">Paid Tier, per 1M tokens in USD</th>",
        "<th>Price type</th><th>Paid tier (USD per 1M tokens)</th><th>Free tier</th>",
        text,
    )
    text = re.sub(
        r"<tr>\s*<td>([^<]*)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*</tr>",
        r"<tr><td>\1</td><td>\3<sup>1</sup></td><td>\2</td></tr>",
        text,
        flags=re.S,
    )
    text = re.sub(r"(<tr><td>Input price</td>.*?</tr>)\s*(<tr><td>Output price.*?</tr>)", r"\2\1", text, flags=re.S)
    assert "Paid tier (USD per 1M tokens)" in text and "<sup>1</sup>" in text
    assert by_model(gemini.parse(text)) == original


def _section(title: str, ids: list[str], rows: str, tier: str = "Standard") -> str:
    codes = " ".join(f"<code>{i}</code>" for i in ids)
    return (
        f'<h2 id="{ids[0] if ids else "x"}">{title}</h2><p><em>{codes}</em></p>'
        f"<h3>{tier}</h3><table><thead><tr><th></th><th>Free Tier</th><th>Paid Tier, per 1M tokens in USD</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def test_free_and_unavailable_cells_and_aliases() -> None:
    text = (
        "<html><body>"
        + _section(
            "Gemini 9 Flash",
            ["gemini-9-flash", "gemini-9-flash-latest"],
            "<tr><td>Input price</td><td>Free of charge</td><td>Free of charge</td></tr>"
            "<tr><td>Output price</td><td>Free of charge</td><td>$0.40</td></tr>",
        )
        + _section(
            "Gemma 9",
            ["gemma-9"],
            "<tr><td>Input price</td><td>Free of charge</td><td>Not available</td></tr>"
            "<tr><td>Output price</td><td>Free of charge</td><td>Not available</td></tr>",
        )
        + _section(
            "Gemini 9 Flash (flex)",
            ["gemini-9-flash"],
            "<tr><td>Input price</td><td>-</td><td>$0.01</td></tr><tr><td>Output price</td><td>-</td><td>$0.02</td></tr>",
            tier="Flex",
        )
        + "</body></html>"
    )
    (entry,) = gemini.parse(text)
    assert entry.model == "gemini-9-flash" and entry.aliases == ("gemini-9-flash-latest",)
    assert (entry.input_per_mtok, entry.output_per_mtok) == (0.0, 0.4)


def test_slash_range_with_threshold_in_the_row_label() -> None:
    text = _section(
        "Gemini 9 Pro",
        ["gemini-9-pro"],
        "<tr><td>Input price (<= 128k / > 128k tokens)</td><td>-</td><td>$1.25 / $2.50</td></tr>"
        "<tr><td>Output price (<= 128k / > 128k tokens)</td><td>-</td><td>$5 / $10</td></tr>",
    )
    (entry,) = gemini.parse(text)
    assert (entry.input_per_mtok, entry.input_per_mtok_long) == (1.25, 2.5)
    assert (entry.output_per_mtok, entry.output_per_mtok_long) == (5.0, 10.0)
    assert entry.long_context_threshold == 128_000


@pytest.mark.parametrize("text", ["", "<html><body><h1>Gemini Developer API pricing</h1></body></html>"])
def test_page_without_a_table_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="gemini: no model section"):
        gemini.parse(text)


def test_page_with_the_tables_removed_raises_parse_error(page: Callable[[str], str]) -> None:
    text = re.sub(r"<table.*?</table>", "", page("gemini_html"), flags=re.S)
    assert "gemini-2.5-pro" in text
    with pytest.raises(ParseError):
        gemini.parse(text)
