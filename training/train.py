"""Fit the classifier: `python -m training.train [--data DIR] [--out PATH]`.

Multinomial logistic regression, L2, full-batch Adam in numpy (training-only dependency), over the
exact runtime features (features.featurize). On the validation split the probabilities are then
calibrated (one temperature) and per-class decision offsets are chosen for macro-F1 under a cap on
under-routing (complex -> simple). The held-out split and the independent evaluation set
(training/evalset/) are never read here. Deterministic: same data and code give the same weights file.
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from training.datasets import Row, Splits, load_splits, routing_data
from llmproxy.classifier.features import DIM, N_DENSE, featurize
from llmproxy.classifier.model import CLASSES, DEFAULT_WEIGHTS, FORMAT, encode_weights

L2 = 3e-4  # chosen with --search on the validation split (see docs/classifier.md)
STEPS = 300
LEARNING_RATE = 0.05
MAX_UNDER_ROUTING = 0.05  # on validation: complex rows predicted simple and confident, per row group
MIN_PROB = 0.5
MIN_MARGIN = 0.12
SYNTH_WEIGHT = 1.0  # per-row weight of synthetic chat relative to benchmark rows
HAND_WEIGHT = 20.0  # per-row weight of hand-written requests (few rows, closest to real traffic)
GROUPS = ("benchmark", "synthetic", "handwritten")


def design(rows: list[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """COO arrays (row, col, value) of the feature matrix."""
    r_idx: list[int] = []
    c_idx: list[int] = []
    vals: list[float] = []
    for i, row in enumerate(rows):
        feats = featurize(row["request"])
        r_idx.extend([i] * len(feats))
        c_idx.extend(feats.keys())
        vals.extend(feats.values())
    return np.array(r_idx), np.array(c_idx), np.array(vals, dtype=np.float64), len(rows)


def logits(w: np.ndarray, x: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> np.ndarray:
    rows, cols, vals, n = x
    return np.stack([np.bincount(rows, weights=w[k, cols] * vals, minlength=n) for k in range(w.shape[0])], 1)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit(
    x: tuple[np.ndarray, np.ndarray, np.ndarray, int], y: np.ndarray, sample_w: np.ndarray, l2: float = L2
) -> np.ndarray:
    rows, cols, vals, n = x
    k = len(CLASSES)
    w = np.zeros((k, DIM))
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    onehot = np.eye(k)[y]
    sw = sample_w / sample_w.sum()
    for step in range(1, STEPS + 1):
        p = softmax(logits(w, x))
        resid = (p - onehot) * sw[:, None]
        grad = np.stack([np.bincount(cols, weights=resid[rows, c] * vals, minlength=DIM) for c in range(k)])
        grad += l2 * w
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        w -= LEARNING_RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        if step == STEPS:
            loss = -(np.log(p[np.arange(n), y] + 1e-12) * sw).sum()
            print(f"  step {step}: weighted log-loss {loss:.4f}")
    return w


def group_of(row: Row) -> str:
    source = row["source"]
    return "synthetic" if source.startswith("synth") else "handwritten" if source == "handwritten" else "benchmark"


def calibrate(z: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising validation log-loss of softmax(z / T) (a 1-D grid; deterministic)."""
    best = (float("inf"), 1.0)
    for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 61)):
        p = softmax(z / t)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
        best = min(best, (float(loss), float(t)))
    print(f"  temperature {best[1]:.3f} (validation log-loss {best[0]:.4f})")
    return best[1]


def tune_offsets(
    p: np.ndarray, y: np.ndarray, groups: np.ndarray, group_weight: dict[str, float]
) -> tuple[float, float, float]:
    """Per-class offsets on log-probabilities (simple, medium = 0, complex) maximising the weighted mean
    over row groups of macro-F1, with under-routing at most MAX_UNDER_ROUTING in every group. Under-routing
    counts complex rows that would reach the small model: predicted simple *and* confident (unsure ones
    go to the router default)."""
    best: tuple[float, tuple[float, float, float]] = (-1.0, (0.0, 0.0, 0.0))
    logp = np.log(p + 1e-12)
    top2 = np.sort(p, 1)[:, ::-1]
    confident = (top2[:, 0] >= MIN_PROB) & (top2[:, 0] - top2[:, 1] >= MIN_MARGIN)
    grid = np.arange(-2.0, 2.01, 0.125)
    names = [g for g in GROUPS if (groups == g).any()]
    for o_s, o_c in itertools.product(grid, grid):
        pred = (logp + np.array([o_s, 0.0, o_c])).argmax(1)
        score = total = 0.0
        for g in names:
            sel = groups == g
            complex_rows = sel & (y == 2)
            under = ((pred == 0) & confident)[complex_rows].mean() if complex_rows.any() else 0.0
            if under > MAX_UNDER_ROUTING:
                break
            score += group_weight[g] * _macro_f1(pred[sel], y[sel])
            total += group_weight[g]
        else:
            if score / total > best[0] + 1e-9:
                best = (score / total, (float(o_s), 0.0, float(o_c)))
    print(f"  validation weighted macro-F1 over groups {best[0]:.3f} with offsets {best[1]}")
    return best[1]


def weights_for(rows: list[Row], synth_weight: float = SYNTH_WEIGHT, hand_weight: float = HAND_WEIGHT) -> np.ndarray:
    per_group = {"synthetic": synth_weight, "handwritten": hand_weight, "benchmark": 1.0}
    return np.array([per_group[group_of(r)] for r in rows])


def _macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    f1s = [
        2 * ((pred == c) & (y == c)).sum() / max((pred == c).sum() + (y == c).sum(), 1)
        for c in range(3)
        if (y == c).any()
    ]
    return float(np.mean(f1s))


def search(splits: Splits) -> None:
    """Validation macro-F1 per group for a small grid; prints, changes nothing."""
    x_fit, x_val = design(splits.fit), design(splits.valid)
    y_fit = np.array([CLASSES.index(r["label"]) for r in splits.fit])
    y_val = np.array([CLASSES.index(r["label"]) for r in splits.valid])
    groups = np.array([group_of(r) for r in splits.valid])
    for synth_weight, hand_weight, l2 in itertools.product((1.0, 0.3), (1.0, 5.0, 20.0), (1e-4, 3e-4)):
        w = fit(x_fit, y_fit, weights_for(splits.fit, synth_weight, hand_weight), l2)
        pred = logits(w, x_val).argmax(1)
        scores = ", ".join(
            f"{g} {_macro_f1(pred[groups == g], y_val[groups == g]):.3f}" for g in GROUPS if (groups == g).any()
        )
        print(f"synth_weight={synth_weight} hand_weight={hand_weight} l2={l2}: valid macro-F1 {scores}")


_EMPTY = Path(__file__).with_name("synth")  # a folder without *.chat files
GROUP_WEIGHT = {"benchmark": 1.0, "synthetic": 1.0, "handwritten": 2.0}  # realistic rows count double


def train(out: Path, data_dir: Path | None, handwritten: bool = True) -> dict[str, Any]:
    splits = load_splits(data_dir) if handwritten else load_splits(data_dir, handwritten_dir=_EMPTY)
    print(
        f"fit rows {len(splits.fit)}, validation rows {len(splits.valid)} (held-out rows untouched); "
        f"benchmark data {'read' if data_dir else 'not given: left out'}"
    )
    y_fit = np.array([CLASSES.index(r["label"]) for r in splits.fit])
    w = fit(design(splits.fit), y_fit, weights_for(splits.fit))
    y_val = np.array([CLASSES.index(r["label"]) for r in splits.valid])
    z_val = logits(w, design(splits.valid))
    temperature = calibrate(z_val, y_val)
    groups = np.array([group_of(r) for r in splits.valid])
    offsets = tune_offsets(softmax(z_val / temperature), y_val, groups, GROUP_WEIGHT)
    doc = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "dim": DIM,
        "n_dense": N_DENSE,
        "offsets": list(offsets),
        "temperature": temperature,
        "min_prob": MIN_PROB,
        "min_margin": MIN_MARGIN,
        "meta": {
            "l2": L2,
            "steps": STEPS,
            "fit_rows": len(splits.fit),
            "valid_rows": len(splits.valid),
            "synth_weight": SYNTH_WEIGHT,
            "hand_weight": HAND_WEIGHT,
            "benchmarks": data_dir is not None,
            "max_under_routing": MAX_UNDER_ROUTING,
            "handwritten": handwritten,
        },
        "weights": encode_weights((w / temperature).astype(np.float32).tolist()),
    }
    out.write_bytes(orjson.dumps(doc))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--data", default=None, help="folder of the public routing files (or LLMPROXY_ROUTING_DATA)")
    parser.add_argument("--search", action="store_true", help="print validation scores of a small grid; write nothing")
    parser.add_argument(
        "--without-handwritten",
        action="store_true",
        help="leave the hand-written training requests out (the ablation in docs/classifier.md)",
    )
    args = parser.parse_args(argv)
    data_dir = routing_data(args.data, dict(os.environ))
    if args.search:
        search(load_splits(data_dir))
    else:
        train(args.out, data_dir, handwritten=not args.without_handwritten)


if __name__ == "__main__":
    main()
