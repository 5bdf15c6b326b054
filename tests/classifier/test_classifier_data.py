"""Training data: the held-out split never reaches training; the synthetic banks are disjoint and deterministic."""

from __future__ import annotations

import pytest

from llmproxy.classifier import datasets
from llmproxy.classifier.datasets import EVAL_ONLY_SOURCES, load_splits, prompt_key
from llmproxy.classifier.synth import bank_heldout, bank_train, generate

pytestmark = pytest.mark.skipif(not (datasets.DATA_DIR / "routing_eval.jsonl").is_file(),
                                reason="shared routing data not present")


def _user_text(row: dict) -> str:
    content = row["request"]["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


@pytest.fixture(scope="module")
def splits() -> datasets.Splits:
    return load_splits()


def test_heldout_prompts_never_in_training(splits: datasets.Splits) -> None:
    train_keys = {prompt_key(r["prompt"]) for r in splits.fit + splits.valid if "prompt" in r}
    held_keys = {prompt_key(r["prompt"]) for r in splits.heldout if "prompt" in r}
    held_keys |= {prompt_key(r["prompt"]) for r in splits.needs_strong_heldout}
    assert train_keys and held_keys
    assert not train_keys & held_keys


def test_eval_only_sources_never_trained(splits: datasets.Splits) -> None:
    assert not [r for r in splits.fit + splits.valid if r["source"] in EVAL_ONLY_SOURCES]
    assert {r["source"] for r in splits.heldout} >= EVAL_ONLY_SOURCES


def test_split_rule_is_fixed() -> None:
    assert datasets.bucket("What is 2 + 2?") == datasets.bucket("  what is 2  +  2? ")
    assert datasets.side({"prompt": "x", "source": "self-instruct-user"}) == "heldout"


def test_synthetic_heldout_uses_other_templates(splits: datasets.Splits) -> None:
    assert {r["source"] for r in splits.fit if r["source"].startswith("synth")} == {"synth-train"}
    assert {r["source"] for r in splits.heldout if r["source"].startswith("synth")} == {"synth-heldout"}
    for name in ("APPS", "SIMPLE", "SIMPLE_DOC", "MEDIUM", "MEDIUM_DOC", "COMPLEX", "COMPLEX_DOC", "CODE", "TOOLS"):
        assert not set(getattr(bank_train, name)) & set(getattr(bank_heldout, name)), name
    train_texts = {_user_text(r) for r in splits.fit + splits.valid}
    held = [r for r in splits.heldout if r["source"] == "synth-heldout"]
    assert sum(_user_text(r) in train_texts for r in held) < 0.02 * len(held)  # only stock follow-ups like "thanks"


def test_generator_is_deterministic_and_balanced() -> None:
    a = generate("train", 300, 5)
    assert a == generate("train", 300, 5)
    assert a != generate("train", 300, 6)
    assert [r["label"] for r in a].count("simple") == 100
    assert {r["lang"] for r in a} >= {"en", "es"}
