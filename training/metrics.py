"""Evaluation metrics: 3-class accuracy / macro-F1, ROC-AUC, RouteLLM's APGR and CPT, routing cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LABELS = ("simple", "medium", "complex")


def accuracy(y: Sequence[str], pred: Sequence[str]) -> float:
    return sum(a == b for a, b in zip(y, pred, strict=True)) / max(len(y), 1)


def macro_f1(y: Sequence[str], pred: Sequence[str]) -> float:
    """Mean F1 over the classes present in `y` (a class absent from y and pred is skipped)."""
    scores = []
    for c in LABELS:
        tp = sum(a == c and b == c for a, b in zip(y, pred, strict=True))
        n_true = sum(a == c for a in y)
        n_pred = sum(b == c for b in pred)
        if n_true == 0:
            continue
        scores.append(0.0 if tp == 0 else 2 * tp / (n_true + n_pred))
    return sum(scores) / max(len(scores), 1)


def under_routing(y: Sequence[str], pred: Sequence[str]) -> float:
    """Share of truly complex rows sent to the small tier (predicted simple)."""
    complex_pred = [b for a, b in zip(y, pred, strict=True) if a == "complex"]
    return sum(b == "simple" for b in complex_pred) / len(complex_pred) if complex_pred else float("nan")


def roc_auc(positive: Sequence[bool], score: Sequence[float]) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    order = sorted(range(len(score)), key=score.__getitem__)
    ranks = [0.0] * len(score)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and score[order[j + 1]] == score[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    n_pos = sum(positive)
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    rank_sum = sum(r for r, p in zip(ranks, positive, strict=True) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@dataclass(frozen=True, slots=True)
class GapCurve:
    """Performance gap recovered as a function of the share of calls sent to the strong model."""

    calls: list[float]  # strong-call share at each tie-group boundary, 0 .. 1
    pgr: list[float]  # (quality - weak quality) / (strong quality - weak quality)

    def apgr(self) -> float:
        """Area under PGR(calls), trapezoid (RouteLLM's average performance gap recovered)."""
        return sum(
            (self.calls[i + 1] - self.calls[i]) * (self.pgr[i + 1] + self.pgr[i]) / 2
            for i in range(len(self.calls) - 1)
        )

    def cpt(self, target: float) -> float:
        """Smallest strong-call share reaching PGR >= target (linear inside a tie group)."""
        for i in range(1, len(self.calls)):
            if self.pgr[i] >= target:
                lo, hi = self.pgr[i - 1], self.pgr[i]
                frac = 1.0 if hi == lo else (target - lo) / (hi - lo)
                return self.calls[i - 1] + max(0.0, min(1.0, frac)) * (self.calls[i] - self.calls[i - 1])
        return 1.0


def gap_curve(score: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> GapCurve:
    """Route the highest-scored prompts to the strong model first; ties move together."""
    n = len(score)
    order = sorted(range(n), key=lambda i: -score[i])
    q_weak = sum(weak)
    gap = sum(strong) - q_weak
    calls, pgr = [0.0], [0.0]
    quality = q_weak
    i = 0
    while i < n:
        j = i
        while j < n and score[order[j]] == score[order[i]]:
            quality += strong[order[j]] - weak[order[j]]
            j += 1
        calls.append(j / n)
        pgr.append((quality - q_weak) / gap if gap else 0.0)
        i = j
    return GapCurve(calls, pgr)


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens (input, output) for each routing tier."""

    small: tuple[float, float] = (0.15, 0.60)
    medium: tuple[float, float] = (1.25, 10.0)
    frontier: tuple[float, float] = (5.0, 25.0)

    def tier(self, label: str) -> tuple[float, float]:
        return {"simple": self.small, "medium": self.medium, "complex": self.frontier}[label]


OUTPUT_TOKENS = {"simple": 150, "medium": 500, "complex": 1000}  # assumed answer length by true label


def request_cost(input_tokens: int, true_label: str, routed_label: str, prices: Prices) -> float:
    price_in, price_out = prices.tier(routed_label)
    return (input_tokens * price_in + OUTPUT_TOKENS[true_label] * price_out) / 1e6


def recall(y: Sequence[str], pred: Sequence[str], label: str) -> float:
    """Share of rows truly `label` predicted `label` (nan when there are none)."""
    hits = [b == label for a, b in zip(y, pred, strict=True) if a == label]
    return sum(hits) / len(hits) if hits else float("nan")
