from __future__ import annotations

import pytest

from llmproxy.registry import ModelEntry
from llmproxy.usage import cost_usd

GPT4O = ModelEntry(
    id="gpt-4o",
    provider="openai",
    provider_model="gpt-4o",
    input_per_mtok=2.5,
    output_per_mtok=10.0,
    cached_input_per_mtok=1.25,
)


def test_cost_by_hand() -> None:
    # 1,000 prompt tokens of which 400 cached, 500 completion tokens:
    # 600 * 2.5 + 400 * 1.25 + 500 * 10 = 1500 + 500 + 5000 = 7000 per million -> $0.007
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400}}
    assert cost_usd(GPT4O, usage) == pytest.approx(0.007)


def test_unknown_price_is_none_not_zero() -> None:
    unknown = ModelEntry(id="x", provider="openai", provider_model="x")
    assert cost_usd(unknown, {"prompt_tokens": 10, "completion_tokens": 10}) is None
    assert cost_usd(GPT4O, None) is None
