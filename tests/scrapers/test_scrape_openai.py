"""llmproxy_scrapers.openai: the Markdown pricing page, plain HTML tables, and layout changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmproxy_scrapers import ParseError, PriceEntry, openai


def by_model(entries: list[PriceEntry]) -> dict[str, PriceEntry]:
    return {e.model: e for e in entries}


def test_markdown_page_reads_every_row(page: Callable[[str], str]) -> None:
    entries = openai.parse(page("openai_md"))
    assert len(entries) == 40
    assert {e.provider for e in entries} == {"openai"}
    assert entries[0].model == "gpt-6-astra" and entries[-1].model == "babbage-002"


def test_markdown_prices_match_the_page(page: Callable[[str], str]) -> None:
    # Checked by hand against the "Standard pricing data" table of the saved page.
    models = by_model(openai.parse(page("openai_md")))
    assert (models["gpt-5.1"].input_per_mtok, models["gpt-5.1"].output_per_mtok) == (1.25, 10.0)
    assert models["gpt-5.1"].cached_input_per_mtok == 0.125
    assert models["gpt-4o-mini"].input_per_mtok == 0.15
    assert models["gpt-4o-mini"].output_per_mtok == 0.6
    assert models["gpt-4o-mini"].cached_input_per_mtok == 0.075
    assert models["o1-pro"].input_per_mtok == 150.0 and models["o1-pro"].output_per_mtok == 600.0
    assert models["o1-pro"].cached_input_per_mtok is None  # "-" on the page
    assert models["gpt-4.1-nano"].cached_input_per_mtok == 0.025
    assert models["babbage-002"].output_per_mtok == 0.4


def test_long_context_columns_and_threshold_in_the_model_name(page: Callable[[str], str]) -> None:
    models = by_model(openai.parse(page("openai_md")))
    gpt55 = models["gpt-5.5"]  # listed as "gpt-5.5 (<272K context length)"
    assert (gpt55.input_per_mtok, gpt55.output_per_mtok, gpt55.cached_input_per_mtok) == (5.0, 30.0, 0.5)
    assert (gpt55.input_per_mtok_long, gpt55.output_per_mtok_long) == (10.0, 45.0)
    assert gpt55.long_context_threshold == 272_000
    assert gpt55.cache_write_per_mtok is None
    astra = models["gpt-6-astra"]
    assert astra.cache_write_per_mtok == 12.5
    assert (astra.input_per_mtok_long, astra.output_per_mtok_long) == (20.0, 75.0)
    assert astra.long_context_threshold is None  # the row does not say where long context starts
    mini = models["gpt-5.4-mini"]
    assert mini.input_per_mtok_long is None and mini.long_context_threshold is None


def test_server_rendered_html_table_of_the_astro_page(page: Callable[[str], str]) -> None:
    # The astro-island props are not read; the plain <table> after them is.
    models = by_model(openai.parse(page("openai_astro")))
    assert set(models) == {"chat-latest", "gpt-5.3-codex"}
    codex = models["gpt-5.3-codex"]
    assert (codex.input_per_mtok, codex.cached_input_per_mtok, codex.output_per_mtok) == (1.75, 0.175, 14.0)
    assert models["chat-latest"].output_per_mtok == 30.0


def test_tier_tables_batch_merged_and_fast_ignored(page: Callable[[str], str]) -> None:
    # Hand-written imitation: group header row without colspan, tier in the Astro island props.
    models = by_model(openai.parse(page("openai_imitation")))
    sol = models["gpt-5.6-sol"]
    assert (sol.input_per_mtok, sol.output_per_mtok) == (5.0, 30.0)  # not the fast tier's 10 / 60
    assert (sol.input_per_mtok_long, sol.output_per_mtok_long) == (10.0, 45.0)
    assert (sol.batch_input_per_mtok, sol.batch_output_per_mtok) == (2.5, 15.0)
    assert models["gpt-5.6-luna"].batch_input_per_mtok is None
    realtime = models["gpt-realtime-2.1"]  # one row per modality: the text row is the token price
    assert (realtime.input_per_mtok, realtime.output_per_mtok) == (4.0, 24.0)


def test_batch_section_of_markdown_adds_batch_prices_and_flex_is_ignored() -> None:
    text = """Prices per 1M tokens.
### Standard
| Model | Input | Cached input | Output |
| --- | --- | --- | --- |
| gpt-5.1 / gpt-5.1-chat-latest | $1.25 | $0.125 | $10.00 |
| gpt-5-mini | $0.25 | $0.025 | $2.00 |
### Batch
| Model | Input | Cached input | Output |
| --- | --- | --- | --- |
| gpt-5.1 | $0.625 | $0.0625 | $5.00 |
### Flex
| Model | Input | Cached input | Output |
| --- | --- | --- | --- |
| gpt-5.1 | $0.99 | $0.099 | $9.99 |
"""
    models = by_model(openai.parse(text))
    assert set(models) == {"gpt-5.1", "gpt-5-mini"}
    assert models["gpt-5.1"].aliases == ("gpt-5.1-chat-latest",)
    assert (models["gpt-5.1"].input_per_mtok, models["gpt-5.1"].output_per_mtok) == (1.25, 10.0)
    assert (models["gpt-5.1"].batch_input_per_mtok, models["gpt-5.1"].batch_output_per_mtok) == (0.625, 5.0)
    assert models["gpt-5-mini"].batch_input_per_mtok is None


def test_free_and_priority_columns_are_not_the_standard_price() -> None:
    text = """| Model | Free tier input | Priority input | Input | Output | Priority output |
| --- | --- | --- | --- | --- | --- |
| gpt-x | Free of charge | $2.50 | $1.25 | $10.00 | $20.00 |
"""
    (entry,) = openai.parse(text)
    assert (entry.input_per_mtok, entry.output_per_mtok) == (1.25, 10.0)


def _reorder_and_rename(text: str) -> str:
    """The saved table with Output first, Model last and headers reworded."""
    lines = text.splitlines()
    out = []
    for line in lines:
        if not line.startswith("|"):
            out.append(line)
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        model, short_in, short_cached, short_write, short_out, *long_cells = cells
        out.append("| " + " | ".join([short_out, short_cached, short_in, *long_cells, short_write, model]) + " |")
    text = "\n".join(out)
    return (
        text.replace("Short context output", "Output price")
        .replace("Short context input", "Input price")
        .replace("Short context cached input", "Cached input (read)")
        .replace("| Model |", "| Model ID |")
    )


def test_reordered_and_renamed_columns_read_the_same(page: Callable[[str], str]) -> None:
    original = by_model(openai.parse(page("openai_md")))
    changed_text = _reorder_and_rename(page("openai_md"))
    assert "| Output price | Cached input (read) | Input price |" in changed_text
    changed = by_model(openai.parse(changed_text))
    assert changed == original


def test_per_1k_unit_and_footnotes_are_converted() -> None:
    text = """Prices per 1K tokens.
| Model | Input | Output |
| --- | --- | --- |
| gpt-legacy[^1] | $0.0015<sup>2</sup> | $0.002 |
| gpt-cell-unit | $0.000001 / token | $0.000002 / token |

[^1]: Legacy.
"""
    models = by_model(openai.parse(text))
    assert models["gpt-legacy"].input_per_mtok == pytest.approx(1.5)
    assert models["gpt-legacy"].output_per_mtok == pytest.approx(2.0)
    assert models["gpt-cell-unit"].input_per_mtok == pytest.approx(1.0)


@pytest.mark.parametrize("text", ["", "   \n", "<html><body><p>Pricing</p></body></html>"])
def test_page_without_a_table_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="openai: no price table"):
        openai.parse(text)


def test_page_with_the_table_removed_raises_parse_error(page: Callable[[str], str]) -> None:
    text = "\n".join(line for line in page("openai_md").splitlines() if not line.startswith("|"))
    with pytest.raises(ParseError):
        openai.parse(text)


def test_table_without_price_columns_raises_parse_error() -> None:
    text = "| Model | Context window |\n| --- | --- |\n| gpt-5.1 | 400,000 |\n"
    with pytest.raises(ParseError):
        openai.parse(text)
