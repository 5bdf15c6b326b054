"""registry.merge: saved pages merged into the registry, and every check that holds a scrape back."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from llmproxy.registry import registry_from_document
from llmproxy.registry.merge import MergePolicy, MergeResult, OverridesError, merge, parse_overrides
from llmproxy_scrapers import SCRAPERS, FetchError, PriceEntry

from .conftest import REPO, page_text

NOW = "2026-12-01T04:17:00Z"


def seed() -> dict[str, Any]:
    return json.loads((REPO / "registry" / "models.json").read_text())


def models(result: MergeResult) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in result.document["models"]}


def saved_page(provider: str) -> list[PriceEntry]:
    return SCRAPERS[provider].parse(page_text(provider))


def skewed(doc: dict[str, Any], provider: str) -> dict[str, Any]:
    """The provider's prices all 1.5x off, so that a merge that applies nothing cannot pass."""

    def skew(m: dict[str, Any]) -> dict[str, Any]:
        if m["provider"] != provider:
            return m
        return {
            **m,
            **{
                k: round(m[k] * 1.5, 6)
                for k in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")
                if m.get(k)
            },
        }

    return {**doc, "models": [skew(m) for m in doc["models"]]}


def test_every_saved_page_merges_into_the_prices_on_the_page() -> None:
    doc = seed()
    for provider in SCRAPERS:
        doc = skewed(doc, provider)
    # The saved Gemini excerpt has 3 of the 11 Gemini models: allow that loss for this test.
    result = merge(doc, {p: saved_page(p) for p in SCRAPERS}, {}, MergePolicy(max_model_loss=0.8), now=NOW)
    assert {p: o.status for p, o in result.outcomes.items()} == {"openai": "ok", "anthropic": "ok", "gemini": "ok"}
    m = models(result)
    # Checked by hand against the saved pages (tests/fixtures/pricing/excerpts/).
    gpt54 = m["gpt-5.4"]  # "gpt-5.4 (<272K context length) | $2.50 | $0.25 | - | $15.00 | $5.00 | $0.50 | - | $22.50"
    assert (gpt54["input_per_mtok"], gpt54["cached_input_per_mtok"], gpt54["output_per_mtok"]) == (2.5, 0.25, 15.0)
    assert gpt54["long_context"] == {"threshold": 272000, "input_per_mtok": 5.0, "output_per_mtok": 22.5}
    assert (m["gpt-4.1"]["input_per_mtok"], m["gpt-4.1"]["cached_input_per_mtok"], m["gpt-4.1"]["output_per_mtok"]) == (
        2.0,
        0.5,
        8.0,
    )
    assert (m["o4-mini"]["input_per_mtok"], m["o4-mini"]["cached_input_per_mtok"]) == (1.1, 0.275)
    assert (m["gpt-5-nano"]["input_per_mtok"], m["gpt-5-nano"]["output_per_mtok"]) == (0.05, 0.4)
    assert m["gpt-6-astra"]["cache_write_per_mtok"] == 12.5
    opus = m["claude-opus-4-7"]  # "Claude Opus 4.7 | $5 | $6.25 | $10 | $0.50 | $25"
    assert (
        opus["input_per_mtok"],
        opus["cache_write_per_mtok"],
        opus["cached_input_per_mtok"],
        opus["output_per_mtok"],
    ) == (5.0, 6.25, 0.5, 25.0)
    assert m["claude-sonnet-4-5-20250929"]["output_per_mtok"] == 15.0
    haiku35 = m["claude-3-5-haiku-20241022"]  # the page's "Claude Haiku 3.5": $0.80 / $0.08 / $4
    assert (haiku35["input_per_mtok"], haiku35["cached_input_per_mtok"], haiku35["output_per_mtok"]) == (0.8, 0.08, 4.0)
    pro = m["gemini-2.5-pro"]  # "$1.25, prompts <= 200k tokens / $2.50, prompts > 200k tokens"
    assert (pro["input_per_mtok"], pro["output_per_mtok"], pro["cached_input_per_mtok"]) == (1.25, 10.0, 0.125)
    assert pro["long_context"] == {"threshold": 200000, "input_per_mtok": 2.5, "output_per_mtok": 15.0}
    assert (m["gemini-3.5-flash"]["input_per_mtok"], m["gemini-3.5-flash"]["output_per_mtok"]) == (1.5, 9.0)
    assert m["gemini-3.1-flash-lite"]["cached_input_per_mtok"] == 0.025
    # Models the page lists and the registry did not: added, with unknown limits, never a $0 price.
    assert m["o1-pro"]["input_per_mtok"] == 150.0 and m["o1-pro"]["context_window"] is None
    assert m["claude-opus-4-0"]["aliases"] == ["claude-opus-4"]
    # The result loads, and says where each provider stands.
    registry = registry_from_document({**result.document, "version": 2})
    assert registry.unpriced == ()
    assert result.document["providers"]["openai"]["status"] == "ok"
    assert result.document["providers"]["openai"]["last_success"] == NOW


def test_fields_no_pricing_page_has_are_kept() -> None:
    doc = skewed(seed(), "anthropic")
    before = {m["id"]: m for m in doc["models"]}
    after = models(merge(doc, {"anthropic": saved_page("anthropic")}, {}, MergePolicy(), now=NOW))
    for model_id in ("claude-opus-4-7", "claude-haiku-4-5-20251001", "claude-3-5-haiku-20241022"):
        for key in ("capabilities", "quality", "context_window", "max_output_tokens", "aliases", "deprecated"):
            assert after[model_id][key] == before[model_id][key], (model_id, key)
        assert after[model_id]["input_per_mtok"] != before[model_id]["input_per_mtok"]
        assert after[model_id]["updated_at"] == "2026-12-01"


@pytest.mark.parametrize(
    "failure",
    [
        FetchError("GET https://x/pricing answered HTTP 500", url="https://x", status=500),
        ValueError("no price table"),
        [],
    ],
)
def test_a_failed_or_empty_page_keeps_the_prices_marks_them_stale_and_says_so(failure: Any) -> None:
    doc = seed()
    result = merge(doc, {"gemini": failure, "anthropic": saved_page("anthropic")}, {}, MergePolicy(), now=NOW)
    m = models(result)
    for before in doc["models"]:
        after = m[before["id"]]
        for key in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "long_context"):
            assert after.get(key) == before.get(key)
        assert after.get("stale", False) is (before["provider"] == "gemini")
    status = result.document["providers"]["gemini"]
    assert status["status"] == "stale" and status["last_attempt"] == NOW and status["last_success"] is None
    assert "scrape failed" in status["message"] and "kept the last good prices" in status["message"]
    assert result.outcomes["anthropic"].status == "ok"  # one provider failing never blocks another
    assert registry_from_document(result.document).lookup("gemini-2.5-pro").stale


def per_token(entry: PriceEntry) -> PriceEntry:
    return replace(
        entry,
        input_per_mtok=entry.input_per_mtok / 1e6,
        output_per_mtok=entry.output_per_mtok / 1e6,
        cached_input_per_mtok=None,
    )


def test_per_token_prices_read_as_per_million_are_held_back() -> None:
    doc = seed()
    result = merge(doc, {"openai": [per_token(e) for e in saved_page("openai")]}, {}, MergePolicy(force=True), now=NOW)
    outcome = result.outcomes["openai"]
    assert outcome.status == "held"
    assert any("10^6" in p for p in outcome.problems)
    assert models(result)["gpt-4o"]["input_per_mtok"] == 2.5 and models(result)["gpt-4o"]["stale"] is True
    assert "held back" in result.document["providers"]["openai"]["message"]


def test_a_price_scaled_by_a_million_is_held_back() -> None:
    entries = [
        replace(e, output_per_mtok=e.output_per_mtok * 1e6) if e.model == "gpt-4o" else e for e in saved_page("openai")
    ]
    outcome = merge(seed(), {"openai": entries}, {}, MergePolicy(), now=NOW).outcomes["openai"]
    assert outcome.status == "held"
    assert any("gpt-4o.output_per_mtok" in p and "10^6" in p for p in outcome.problems)


def test_a_price_moving_more_than_the_factor_is_held_back_unless_forced() -> None:
    entries = [
        replace(e, input_per_mtok=e.input_per_mtok * 5) if e.model == "gpt-4.1" else e for e in saved_page("openai")
    ]
    held = merge(seed(), {"openai": entries}, {}, MergePolicy(max_price_factor=4.0), now=NOW)
    assert held.outcomes["openai"].status == "held"
    assert "gpt-4.1.input_per_mtok: $2 -> $10" in held.outcomes["openai"].problems[0]
    assert models(held)["gpt-4.1"]["input_per_mtok"] == 2.0
    forced = merge(seed(), {"openai": entries}, {}, MergePolicy(max_price_factor=4.0, force=True), now=NOW)
    assert forced.outcomes["openai"].status == "ok" and "forced" in forced.outcomes["openai"].message
    assert models(forced)["gpt-4.1"]["input_per_mtok"] == 10.0


def test_a_page_that_loses_too_many_known_models_is_held_back() -> None:
    result = merge(seed(), {"gemini": saved_page("gemini")}, {}, MergePolicy(max_model_loss=0.34), now=NOW)
    outcome = result.outcomes["gemini"]
    assert outcome.status == "held"
    assert "9 of the 12 known models" in outcome.problems[0]
    assert len(models(result)) == 52 and not any(m.get("unlisted_since") for m in result.document["models"])


def test_a_model_the_page_stops_listing_is_kept_and_marked() -> None:
    entries = [e for e in saved_page("anthropic") if e.model != "claude-opus-4-5"]
    m = models(merge(seed(), {"anthropic": entries}, {}, MergePolicy(), now=NOW))
    assert m["claude-opus-4-5-20251101"]["unlisted_since"] == "2026-12-01"
    assert m["claude-opus-4-5-20251101"]["input_per_mtok"] == 5.0  # last known price kept


def test_a_cached_price_above_the_input_price_is_held_back() -> None:
    entries = [replace(e, cached_input_per_mtok=30.0) if e.model == "gpt-4o" else e for e in saved_page("openai")]
    outcome = merge(seed(), {"openai": entries}, {}, MergePolicy(force=True), now=NOW).outcomes["openai"]
    assert outcome.status == "held" and "cached input $30 is above input $2.5" in outcome.problems[0]


def test_a_price_the_page_leaves_out_does_not_erase_the_known_one() -> None:
    entries = [replace(e, cached_input_per_mtok=None) if e.model == "gpt-4o" else e for e in saved_page("openai")]
    assert (
        models(merge(seed(), {"openai": entries}, {}, MergePolicy(), now=NOW))["gpt-4o"]["cached_input_per_mtok"]
        == 1.25
    )


OVERRIDES = {
    "gpt-4o": {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
    "acme-llama": {
        "provider": "ollama",
        "provider_model": "llama3.3:70b",
        "input_per_mtok": 0.1,
        "output_per_mtok": 0.2,
    },
}


def test_overrides_win_over_the_page_and_private_models_are_added() -> None:
    result = merge(
        seed(), {"openai": saved_page("openai")}, parse_overrides({"models": OVERRIDES}), MergePolicy(), now=NOW
    )
    m = models(result)
    assert (m["gpt-4o"]["input_per_mtok"], m["gpt-4o"]["output_per_mtok"]) == (2.0, 8.0)
    assert m["gpt-4o"]["overridden"] == ["input_per_mtok", "output_per_mtok"]
    assert m["gpt-4o"]["scraped"] == {"input_per_mtok": 2.5, "output_per_mtok": 10.0}
    assert m["acme-llama"]["private"] is True and m["acme-llama"]["provider"] == "ollama"
    assert result.drift == []
    registry_from_document(result.document)


def test_a_page_moving_under_an_override_is_flagged_as_drift_and_the_override_stays() -> None:
    overrides = parse_overrides({"models": OVERRIDES})
    first = merge(seed(), {"openai": saved_page("openai")}, overrides, MergePolicy(), now=NOW).document
    moved = [replace(e, input_per_mtok=3.0) if e.model == "gpt-4o" else e for e in saved_page("openai")]
    second = merge(first, {"openai": moved}, overrides, MergePolicy(), now=NOW)
    assert second.drift == [
        {"id": "gpt-4o", "field": "input_per_mtok", "override": 2.0, "page_was": 2.5, "page_now": 3.0}
    ]
    gpt4o = models(second)["gpt-4o"]
    assert gpt4o["input_per_mtok"] == 2.0 and gpt4o["scraped"]["input_per_mtok"] == 3.0
    # Removing the override brings the page's value back, and the private model goes with its override.
    third = models(merge(second.document, {}, {}, MergePolicy(), now=NOW))
    assert third["gpt-4o"]["input_per_mtok"] == 3.0
    assert "overridden" not in third["gpt-4o"] and "scraped" not in third["gpt-4o"]
    assert "acme-llama" not in third


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"models": {"gpt-4o": {"id": "x"}}}, "'id' cannot be overridden"),
        ({"models": {"gpt-4o": {"input_per_mtok": -2}}}, "input_per_mtok must be a non-negative number"),
        ({"modles": {}}, "overrides.json must be"),
        ({"models": []}, "models must be an object"),
    ],
)
def test_a_bad_overrides_file_is_refused(doc: Any, message: str) -> None:
    with pytest.raises(OverridesError, match=message):
        parse_overrides(doc)


def test_a_private_model_needs_a_provider() -> None:
    with pytest.raises(OverridesError, match="needs 'provider' and 'provider_model'"):
        merge(seed(), {}, {"nobody": {"input_per_mtok": 1.0}}, MergePolicy(), now=NOW)
