"""Training data: the held-out split and the independent evaluation set never reach training; the
synthetic banks are disjoint and deterministic; the hand-written request format reads as documented.

Uses small routing-file stand-ins written for the tests (tests/fixtures/classifier/routing/), so it runs
from a clone; the public files are only read by `python -m training.train --data DIR`.
"""

from __future__ import annotations

import builtins
import io
import os
from collections import Counter
from pathlib import Path

import pytest

from training import datasets
from training.chatfile import parse, read_dir
from training.datasets import EVAL_ONLY_SOURCES, load_splits, prompt_key, routing_data
from training.synth import bank_heldout, bank_train, generate

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "classifier" / "routing"
EVALSET = REPO / "training" / "evalset"


def _user_text(row: dict) -> str:
    content = row["request"]["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


@pytest.fixture(scope="module")
def splits() -> datasets.Splits:
    return load_splits(FIXTURE)


def test_heldout_prompts_never_in_training(splits: datasets.Splits) -> None:
    train_keys = {prompt_key(r["prompt"]) for r in splits.fit + splits.valid if "prompt" in r}
    held_keys = {prompt_key(r["prompt"]) for r in splits.heldout if "prompt" in r}
    held_keys |= {prompt_key(r["prompt"]) for r in splits.needs_strong_heldout}
    assert held_keys
    assert not train_keys & held_keys


def test_eval_only_sources_never_trained(splits: datasets.Splits) -> None:
    assert not [r for r in splits.fit + splits.valid if r["source"] in EVAL_ONLY_SOURCES]
    assert {r["source"] for r in splits.heldout} >= EVAL_ONLY_SOURCES


def test_split_rule_is_fixed() -> None:
    assert datasets.bucket("What is 2 + 2?") == datasets.bucket("  what is 2  +  2? ")
    assert datasets.side({"prompt": "x", "source": "self-instruct-user"}) == "heldout"
    assert datasets.handwritten_side({"id": "apps/h-a001"}) == datasets.handwritten_side({"id": "apps/h-a001"})


def test_routing_data_comes_from_the_command_line_or_the_environment(tmp_path: Path) -> None:
    assert routing_data(None, {}) is None
    assert routing_data(None, {datasets.DATA_ENV: str(FIXTURE)}) == FIXTURE
    assert routing_data(str(FIXTURE), {datasets.DATA_ENV: "/nowhere"}) == FIXTURE
    with pytest.raises(SystemExit, match="routing_eval.jsonl"):
        routing_data(str(tmp_path), {})


def test_training_never_opens_the_evaluation_set(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open, real_read_text, real_read_bytes = builtins.open, Path.read_text, Path.read_bytes

    def watch(path: object) -> None:
        opened.append(os.path.realpath(str(path)))

    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (watch(f), real_open(f, *a, **k))[1])
    monkeypatch.setattr(io, "open", builtins.open)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (watch(self), real_read_text(self, *a, **k))[1])
    monkeypatch.setattr(Path, "read_bytes", lambda self: (watch(self), real_read_bytes(self))[1])
    got = load_splits(FIXTURE)
    assert got.fit and got.valid and opened
    assert any("handwritten" in p for p in opened)
    evalset = os.path.realpath(EVALSET)
    assert not [p for p in opened if p.startswith(evalset)]


def test_evaluation_set_is_large_balanced_and_documented() -> None:
    rows = read_dir(EVALSET)
    labels = Counter(r["label"] for r in rows)
    assert min(labels.values()) >= 200, labels
    assert len({r["source"] for r in rows}) >= 10
    assert len({r["lang"] for r in rows}) >= 8
    assert any(r["request"].get("tools") for r in rows) and any(r["request"].get("response_format") for r in rows)
    readme = (EVALSET / "README.md").read_text()
    assert "Provenance" in readme and "Label guidelines" in readme
    hand = {_user_text(r) for r in read_dir(datasets.HANDWRITTEN_DIR)}
    assert not hand & {_user_text(r) for r in rows}


def test_chat_format_builds_real_request_bodies() -> None:
    text = """### doc:page
Line one of a page.
### r1 medium lang=es
@system
Be brief.
@tool get_order(order_id:string, full:boolean?) Look up an order
@format json_schema {"type": "object"}
@max_tokens 50
@user
{{doc:page}}

¿Qué dice?
@call get_order {"order_id": "A1"}
@result {"status": "ok"}
"""
    (row,) = parse(text, "demo")
    body = row["request"]
    assert row["id"] == "demo/r1" and row["label"] == "medium" and row["lang"] == "es"
    assert body["messages"][1]["content"] == "Line one of a page.\n\n¿Qué dice?"
    assert body["messages"][2]["tool_calls"][0]["function"] == {"name": "get_order", "arguments": '{"order_id":"A1"}'}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_r1_1", "content": '{"status": "ok"}'}
    assert body["tools"][0]["function"]["parameters"]["required"] == ["order_id"]
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert body["max_tokens"] == 50
    with pytest.raises(ValueError, match="id label"):
        parse("### r2 hard\n@user\nhi\n", "demo")


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
