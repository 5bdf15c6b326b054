"""llmproxy_scrapers.prices: one cell of text to USD per 1M tokens."""

from __future__ import annotations

import pytest

from llmproxy_scrapers.prices import TieredPrice, parse_price, parse_tokens, read_cell, unit_factor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1.25", 1.25),
        ("$10 / MTok", 10.0),
        ("$1,500.00", 1500.0),
        ("2.5", 2.5),
        ("$2.50<sup>1</sup>", 2.5),
        ("$2.50[^1]", 2.5),
        ("$2.50*", 2.5),
        ("$0.75 through December 31, 2026. $1.50", 1.5),
        ("Free of charge", 0.0),
        ("$0", 0.0),
        ("-", None),
        ("", None),
        ("Not available", None),
        ("Not available**", None),
        ("N/A", None),
        ("Contact sales", None),
    ],
)
def test_parse_price(text: str, expected: float | None) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    ("text", "factor"),
    [
        ("Prices per 1M tokens.", 1.0),
        ("Paid Tier, per 1M tokens in USD", 1.0),
        ("$3 / MTok", 1.0),
        ("$1.00 / 1,000,000 tokens per hour", 1.0),
        ("Price per 1K tokens", 1_000.0),
        ("$0.002 / 1K tokens", 1_000.0),
        ("USD per 1,000 tokens", 1_000.0),
        ("$0.000002 per token", 1_000_000.0),
        ("$14 per 1,000 requests", None),
        ("Input", None),
    ],
)
def test_unit_factor(text: str, factor: float | None) -> None:
    assert unit_factor(text) == factor


def test_cell_unit_wins_over_table_unit() -> None:
    assert parse_price("$0.002 / 1K tokens", factor=1.0) == pytest.approx(2.0)
    assert parse_price("$0.002", factor=1_000.0) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("200k", 200_000),
        ("272K", 272_000),
        ("1M", 1_000_000),
        ("128,000", 128_000),
        ("1.5m", 1_500_000),
        ("lots", None),
    ],
)
def test_parse_tokens(text: str, tokens: int | None) -> None:
    assert parse_tokens(text) == tokens


def test_read_cell_short_and_long_lines() -> None:
    cell = "$1.25, prompts <= 200k tokens\n$2.50, prompts > 200k\n$4.50 / 1,000,000 tokens per hour (storage price)"
    assert read_cell(cell) == TieredPrice(1.25, 2.5, 200_000)


def test_read_cell_slash_range_takes_threshold_from_hint() -> None:
    assert read_cell("$1.25 / $2.50", hint="Input (<= 200k tokens / > 200k tokens)") == TieredPrice(1.25, 2.5, 200_000)
    assert read_cell("$10 / MTok") == TieredPrice(10.0)


def test_read_cell_prefers_the_text_price_over_other_modalities() -> None:
    assert read_cell("$0.50 (audio)\n$0.25 (text / image / video)") == TieredPrice(0.25)
    assert read_cell("$0.30\n$1.00 (audio)") == TieredPrice(0.3)
