"""Evaluation metrics on small cases worked by hand."""

from __future__ import annotations

import math

from training.metrics import Prices, accuracy, gap_curve, macro_f1, recall, request_cost, roc_auc, under_routing


def test_accuracy_f1_under_routing() -> None:
    y = ["simple", "medium", "complex", "complex"]
    pred = ["simple", "complex", "complex", "simple"]
    assert accuracy(y, pred) == 0.5
    assert math.isclose(macro_f1(y, pred), (2 / 3 + 0 + 0.5) / 3)
    assert under_routing(y, pred) == 0.5


def test_roc_auc_with_ties() -> None:
    assert roc_auc([False, True], [0.1, 0.9]) == 1.0
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5


def test_gap_curve_perfect_and_constant_routers() -> None:
    weak, strong = [0, 1, 0, 1], [1, 1, 1, 1]  # rows 0 and 2 need the strong model
    perfect = gap_curve([1.0, 0.0, 1.0, 0.0], weak, strong)
    assert perfect.cpt(1.0) == 0.5
    assert perfect.apgr() == 0.5 * 0.5 + 0.5 * 1.0  # reaches 1 at half the calls, flat after
    constant = gap_curve([0.0] * 4, weak, strong)
    assert constant.apgr() == 0.5 and constant.cpt(0.5) == 0.5


def test_cost_uses_routed_tier_prices() -> None:
    p = Prices()
    assert request_cost(1_000_000, "simple", "complex", p) == 5.0 + 150 * 25 / 1e6
    assert request_cost(0, "complex", "simple", p) == 1000 * 0.60 / 1e6


def test_recall_per_class() -> None:
    y = ["simple", "simple", "complex", "medium"]
    pred = ["simple", "medium", "simple", "medium"]
    assert recall(y, pred, "simple") == 0.5 and recall(y, pred, "complex") == 0.0 and recall(y, pred, "medium") == 1.0
    assert math.isnan(recall(["simple"], ["simple"], "complex"))
