"""The shipped weights on the independent evaluation set (training/evalset/): the targets of
docs/classifier.md hold, and the gateway's code never imports the training code."""

from __future__ import annotations

import ast
from pathlib import Path

from llmproxy.classifier import Classifier
from training.chatfile import read_dir
from training.metrics import macro_f1, under_routing

REPO = Path(__file__).resolve().parents[2]


def test_shipped_weights_meet_the_targets_on_the_independent_set() -> None:
    clf = Classifier.load()
    rows = read_dir(REPO / "training" / "evalset")
    y = [r["label"] for r in rows]
    routed = []
    for r in rows:
        c = clf.classify(r["request"])
        routed.append(c.label if c.confident else "medium")  # as the router treats unsure requests
    assert macro_f1(y, routed) >= 0.70
    assert under_routing(y, routed) <= 0.05


def test_the_gateway_never_imports_training_code() -> None:
    for path in (REPO / "llmproxy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not [n for n in names if n.split(".")[0] in ("training", "numpy")], path
