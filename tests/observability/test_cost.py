"""Cost against hand-computed figures, per provider, from each provider's own usage as its adapter
normalises it (cached reads, cache writes, reasoning, long-context tiers)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pytest

from llmproxy.providers import anthropic, gemini
from llmproxy.registry import ModelEntry
from llmproxy.usage import cost_usd


def entry(**kw: Any) -> ModelEntry:
    """A ModelEntry with the registry's optional price fields (cache writes, long-context tier),
    whether or not this version of ModelEntry declares them."""
    known = {f.name for f in fields(ModelEntry)}
    extra = {k: kw.pop(k) for k in list(kw) if k not in known}
    if not extra:
        return ModelEntry(**kw)

    @dataclass(frozen=True)
    class Priced(ModelEntry):
        cache_write_per_mtok: float | None = None
        long_context: Any = None

    return Priced(**kw, **extra)


GPT4O = entry(
    id="gpt-4o",
    provider="openai",
    provider_model="gpt-4o",
    input_per_mtok=2.5,
    output_per_mtok=10.0,
    cached_input_per_mtok=1.25,
)
O3 = entry(
    id="o3", provider="openai", provider_model="o3", input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.5
)
GPT54 = entry(
    id="gpt-5.4",
    provider="openai",
    provider_model="gpt-5.4",
    input_per_mtok=2.5,
    output_per_mtok=15.0,
    cached_input_per_mtok=0.25,
    long_context={"threshold": 272000, "input_per_mtok": 5.0, "output_per_mtok": 22.5},
)
SONNET = entry(
    id="claude-sonnet-4-5-20250929",
    provider="anthropic",
    provider_model="claude-sonnet-4-5-20250929",
    input_per_mtok=3.0,
    output_per_mtok=15.0,
    cached_input_per_mtok=0.3,
    cache_write_per_mtok=3.75,
)
FLASH = entry(
    id="gemini-2.5-flash",
    provider="gemini",
    provider_model="gemini-2.5-flash",
    input_per_mtok=0.3,
    output_per_mtok=2.5,
    cached_input_per_mtok=0.03,
)
PRO = entry(
    id="gemini-2.5-pro",
    provider="gemini",
    provider_model="gemini-2.5-pro",
    input_per_mtok=1.25,
    output_per_mtok=10.0,
    cached_input_per_mtok=0.125,
    long_context={"threshold": 200000, "input_per_mtok": 2.5, "output_per_mtok": 15.0},
)


def test_openai_prompt_tokens_include_the_cached_ones() -> None:
    # 1,000 prompt tokens of which 400 cached, 500 completion tokens:
    # 600 * 2.5 + 400 * 1.25 + 500 * 10 = 1500 + 500 + 5000 = 7000 per million -> $0.007
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400}}
    assert cost_usd(GPT4O, usage) == pytest.approx(0.007)


def test_openai_reasoning_tokens_are_already_in_completion_tokens() -> None:
    # o3: 2,000 prompt (none cached), 3,000 completion of which 2,500 reasoning:
    # 2000 * 2 + 3000 * 8 = 4000 + 24000 = 28000 per million -> $0.028 (reasoning not counted twice)
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 3000,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 2500},
    }
    assert cost_usd(O3, usage) == pytest.approx(0.028)


def test_openai_long_context_tier() -> None:
    # gpt-5.4 past 272k prompt tokens: 300,000 prompt of which 100,000 cached, 1,000 completion.
    # Tier: input 5.0 (x2 of 2.5), output 22.5; cached 0.25 scaled by the same x2 = 0.5:
    # 200000 * 5 + 100000 * 0.5 + 1000 * 22.5 = 1,000,000 + 50,000 + 22,500 = 1,072,500 -> $1.0725
    usage = {"prompt_tokens": 300_000, "completion_tokens": 1000, "prompt_tokens_details": {"cached_tokens": 100_000}}
    assert cost_usd(GPT54, usage) == pytest.approx(1.0725)
    # at the threshold itself the base prices apply: 272000 * 2.5 + 1000 * 15 = 695,000 -> $0.695
    assert cost_usd(GPT54, {"prompt_tokens": 272_000, "completion_tokens": 1000}) == pytest.approx(0.695)


def test_anthropic_cache_reads_and_writes_from_its_own_usage() -> None:
    # Anthropic's input_tokens excludes cache reads and writes; the adapter folds them into OpenAI's
    # prompt_tokens. Sonnet 4.5: 472 uncached * 3 + 2048 read * 0.3 + 100 written * 3.75 + 159 out * 15
    # = 1416 + 614.4 + 375 + 2385 = 4790.4 per million -> $0.0047904
    usage = anthropic.usage(
        {"input_tokens": 472, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2048, "output_tokens": 159}
    )
    assert usage["prompt_tokens"] == 472 + 2048 + 100
    assert cost_usd(SONNET, usage) == pytest.approx(0.0047904)


def test_anthropic_without_cache() -> None:
    # 1,000 in * 3 + 200 out * 15 = 3000 + 3000 = 6000 per million -> $0.006
    usage = anthropic.usage(
        {"input_tokens": 1000, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 200}
    )
    assert cost_usd(SONNET, usage) == pytest.approx(0.006)


def test_gemini_cached_content_and_thoughts_from_its_own_usage() -> None:
    # usageMetadata: 1,000 prompt tokens of which 600 cached content, 200 candidates + 300 thoughts.
    # Flash: (1000 - 600) * 0.3 + 600 * 0.03 + (200 + 300) * 2.5 = 120 + 18 + 1250 = 1388 -> $0.001388
    usage = gemini.usage(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 600,
            "candidatesTokenCount": 200,
            "thoughtsTokenCount": 300,
            "totalTokenCount": 1500,
        }
    )
    assert usage["completion_tokens"] == 500
    assert cost_usd(FLASH, usage) == pytest.approx(0.001388)


def test_gemini_long_context_tier_with_cache() -> None:
    # Pro past 200k: input 2.5, output 15, cached 0.125 * (2.5 / 1.25) = 0.25.
    # 250,000 prompt of which 50,000 cached, 1,000 out:
    # 200000 * 2.5 + 50000 * 0.25 + 1000 * 15 = 500,000 + 12,500 + 15,000 = 527,500 -> $0.5275
    usage = gemini.usage(
        {
            "promptTokenCount": 250_000,
            "cachedContentTokenCount": 50_000,
            "candidatesTokenCount": 1000,
            "totalTokenCount": 251_000,
        }
    )
    assert cost_usd(PRO, usage) == pytest.approx(0.5275)


def test_a_tier_with_its_own_cached_price_uses_it() -> None:
    model = entry(
        id="m",
        provider="gemini",
        provider_model="m",
        input_per_mtok=1.0,
        output_per_mtok=2.0,
        cached_input_per_mtok=0.1,
        long_context={"threshold": 10, "input_per_mtok": 2.0, "output_per_mtok": 4.0, "cached_input_per_mtok": 0.5},
    )
    # 20 prompt (10 cached) + 10 out: 10 * 2 + 10 * 0.5 + 10 * 4 = 65 per million
    usage = {"prompt_tokens": 20, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 10}}
    assert cost_usd(model, usage) == pytest.approx(65e-6)


def test_without_a_cached_price_cached_tokens_cost_the_input_price() -> None:
    model = entry(id="m", provider="openai", provider_model="m", input_per_mtok=1.0, output_per_mtok=2.0)
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}}
    assert cost_usd(model, usage) == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)


def test_unknown_price_is_none_not_zero() -> None:
    unknown = ModelEntry(id="x", provider="openai", provider_model="x")
    assert cost_usd(unknown, {"prompt_tokens": 10, "completion_tokens": 10}) is None
    assert cost_usd(GPT4O, None) is None
