"""llmproxy_scrapers.anthropic: display names to API ids, cache columns, batch table, layout changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmproxy_scrapers import ParseError, PriceEntry, anthropic


def by_model(entries: list[PriceEntry]) -> dict[str, PriceEntry]:
    return {e.model: e for e in entries}


def test_markdown_page_reads_every_model(page: Callable[[str], str]) -> None:
    entries = anthropic.parse(page("anthropic_md"))
    assert [e.model for e in entries] == [
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-opus-4-1",
        "claude-opus-4-0",
        "claude-sonnet-5",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-sonnet-4-0",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
    ]
    assert {e.provider for e in entries} == {"anthropic"}


def test_markdown_prices_match_the_page(page: Callable[[str], str]) -> None:
    # Checked by hand against the "Model pricing" table of the saved page.
    models = by_model(anthropic.parse(page("anthropic_md")))
    sonnet = models["claude-sonnet-4-5"]
    assert (sonnet.input_per_mtok, sonnet.output_per_mtok) == (3.0, 15.0)
    assert sonnet.cached_input_per_mtok == 0.3  # "Cache Hits & Refreshes"
    assert sonnet.cache_write_per_mtok == 3.75  # "5m Cache Writes", not the 1h column's $6
    opus41 = models["claude-opus-4-1"]  # "Claude Opus 4.1 ([retired, except on ...](...))"
    assert (opus41.input_per_mtok, opus41.output_per_mtok, opus41.cache_write_per_mtok) == (15.0, 75.0, 18.75)
    haiku35 = models["claude-3-5-haiku"]
    assert (haiku35.input_per_mtok, haiku35.output_per_mtok) == (0.8, 4.0)
    assert (haiku35.cached_input_per_mtok, haiku35.cache_write_per_mtok) == (0.08, 1.0)
    assert models["claude-sonnet-5"].input_per_mtok == 2.0  # the Note says $2/$10 stays
    assert models["claude-haiku-4-5"].output_per_mtok == 5.0
    assert models["claude-mythos-5"].input_per_mtok == 10.0
    assert models["claude-opus-4-0"].aliases == ("claude-opus-4",)
    assert all(e.batch_input_per_mtok is None for e in models.values())  # the excerpt stops before Batch


def test_batch_table_merges_and_fast_mode_and_tools_are_ignored(page: Callable[[str], str]) -> None:
    models = by_model(anthropic.parse(page("anthropic_imitation")))
    assert set(models) == {"claude-fable-5", "claude-mythos-5", "claude-opus-5", "claude-sonnet-5"}
    opus = models["claude-opus-5"]
    assert (opus.input_per_mtok, opus.output_per_mtok) == (5.0, 25.0)  # fast mode's $10/$50 ignored
    assert (opus.batch_input_per_mtok, opus.batch_output_per_mtok) == (2.5, 12.5)
    assert models["claude-sonnet-5"].batch_output_per_mtok == 5.0
    assert models["claude-fable-5"].batch_input_per_mtok is None


def test_reordered_and_renamed_columns_read_the_same(page: Callable[[str], str]) -> None:
    text = """## Model pricing
| Output (per MTok) | Cache reads | Model | Prompt tokens | 1h cache write | 5-minute cache write |
|---|---|---|---|---|---|
| $15 / MTok | $0.30 / MTok | Claude Sonnet 4.5 | $3 / MTok | $6 / MTok | $3.75 / MTok |
"""
    (entry,) = anthropic.parse(text)
    assert entry == by_model(anthropic.parse(page("anthropic_md")))["claude-sonnet-4-5"]


def test_names_with_aliases_and_api_ids() -> None:
    text = """## Model pricing
| Model | Input | Output |
|---|---|---|
| Claude Opus 4.8 / Claude Opus 4.7 | $5 / MTok | $25 / MTok |
| claude-haiku-4-5 | $1 / MTok | $5 / MTok |
| Claude Haiku 3 | $0.25 / MTok | $1.25 / MTok |
| Total | $31.25 / MTok | $1 / MTok |
"""
    models = by_model(anthropic.parse(text))
    assert set(models) == {"claude-opus-4-8", "claude-haiku-4-5", "claude-3-haiku"}
    assert models["claude-opus-4-8"].aliases == ("claude-opus-4-7",)


def test_per_1k_cells_are_converted() -> None:
    text = (
        "| Model | Input | Output |\n|---|---|---|\n| Claude Haiku 3 | $0.00025 / 1K tokens | $0.00125 / 1K tokens |\n"
    )
    (entry,) = anthropic.parse(text)
    assert entry.model == "claude-3-haiku"
    assert entry.input_per_mtok == pytest.approx(0.25) and entry.output_per_mtok == pytest.approx(1.25)


@pytest.mark.parametrize("text", ["", "---\ntitle: Pricing\n---\n\nNo tables here.\n"])
def test_page_without_a_table_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="anthropic: no 'Model pricing' table"):
        anthropic.parse(text)


def test_page_with_the_table_removed_raises_parse_error(page: Callable[[str], str]) -> None:
    text = "\n".join(line for line in page("anthropic_md").splitlines() if not line.startswith("|"))
    assert "Claude Sonnet 5" in text  # the Note is still there, the table is not
    with pytest.raises(ParseError):
        anthropic.parse(text)
