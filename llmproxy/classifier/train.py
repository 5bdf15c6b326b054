"""Fit the classifier: `python -m llmproxy.classifier.train [--out PATH]`.

Multinomial logistic regression, L2, full-batch Adam in numpy (training-only dependency), over the
exact runtime features (features.featurize). Decision offsets are then tuned on the validation
split to keep under-routing (complex -> simple) low; the held-out split is never read here.
Deterministic: same data and code give the same weights file.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from llmproxy.classifier.datasets import Row, Splits, load_splits
from llmproxy.classifier.features import DIM, N_DENSE, featurize
from llmproxy.classifier.model import CLASSES, DEFAULT_WEIGHTS, FORMAT, encode_weights

L2 = 1e-4  # chosen with --search on the validation split (benchmark rows + unseen bank-A templates)
STEPS = 300
LEARNING_RATE = 0.05
MAX_UNDER_ROUTING = 0.03  # on validation: complex rows predicted simple and confident, per row group
MIN_PROB = 0.5
MIN_MARGIN = 0.12
SYNTH_WEIGHT = 1.0  # per-row weight of synthetic chat relative to benchmark rows


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


def fit(x: tuple[np.ndarray, np.ndarray, np.ndarray, int], y: np.ndarray, sample_w: np.ndarray,
        l2: float = L2) -> np.ndarray:
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
        w -= LEARNING_RATE * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
        if step == STEPS:
            loss = -(np.log(p[np.arange(n), y] + 1e-12) * sw).sum()
            print(f"  step {step}: weighted log-loss {loss:.4f}")
    return w


def tune_offsets(p: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, float, float]:
    """Offsets (simple, medium=0, complex) maximising the mean over row groups (benchmark, synthetic)
    of macro-F1, with under-routing bounded in every group. Under-routing counts complex rows that
    would reach the small model: predicted simple *and* confident (unsure ones go to the router default)."""
    best: tuple[float, tuple[float, float, float]] = (-1.0, (0.0, 0.0, 0.0))
    logp = np.log(p + 1e-12)
    top2 = np.sort(p, 1)[:, ::-1]
    confident = (top2[:, 0] >= MIN_PROB) & (top2[:, 0] - top2[:, 1] >= MIN_MARGIN)
    grid = np.arange(-2.0, 2.01, 0.25)
    for o_s, o_c in itertools.product(grid, grid):
        pred = (logp + np.array([o_s, 0.0, o_c])).argmax(1)
        scores = []
        for g in np.unique(groups):
            sel = groups == g
            complex_rows = sel & (y == 2)
            under = ((pred == 0) & confident)[complex_rows].mean() if complex_rows.any() else 0.0
            if under > MAX_UNDER_ROUTING:
                break
            scores.append(_macro_f1(pred[sel], y[sel]))
        else:
            score = float(np.mean(scores))
            if score > best[0] + 1e-9:
                best = (score, (float(o_s), 0.0, float(o_c)))
    print(f"  validation mean macro-F1 over groups {best[0]:.3f} with offsets {best[1]}")
    return best[1]


def weights_for(rows: list[Row], synth_weight: float = SYNTH_WEIGHT) -> np.ndarray:
    return np.array([synth_weight if r["source"].startswith("synth") else 1.0 for r in rows])


def _macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    f1s = [2 * ((pred == c) & (y == c)).sum() / max((pred == c).sum() + (y == c).sum(), 1) for c in range(3)]
    return float(np.mean(f1s))


def search(splits: Splits) -> None:
    """Validation macro-F1 (benchmark rows, synthetic rows) for a small grid; prints, changes nothing."""
    x_fit, x_val = design(splits.fit), design(splits.valid)
    y_fit = np.array([CLASSES.index(r["label"]) for r in splits.fit])
    y_val = np.array([CLASSES.index(r["label"]) for r in splits.valid])
    synth = np.array([r["source"].startswith("synth") for r in splits.valid])
    for synth_weight, l2 in itertools.product((1.0, 0.3), (1e-5, 3e-5, 1e-4, 3e-4)):
        w = fit(x_fit, y_fit, weights_for(splits.fit, synth_weight), l2)
        pred = logits(w, x_val).argmax(1)
        print(f"synth_weight={synth_weight} l2={l2}: valid macro-F1 benchmarks "
              f"{_macro_f1(pred[~synth], y_val[~synth]):.3f}, synthetic {_macro_f1(pred[synth], y_val[synth]):.3f}")


def train(out: Path) -> dict[str, Any]:
    splits = load_splits()
    print(f"fit rows {len(splits.fit)}, validation rows {len(splits.valid)} (held-out rows untouched)")
    y_fit = np.array([CLASSES.index(r["label"]) for r in splits.fit])
    w = fit(design(splits.fit), y_fit, weights_for(splits.fit))
    y_val = np.array([CLASSES.index(r["label"]) for r in splits.valid])
    p_val = softmax(logits(w, design(splits.valid)))
    groups = np.array([r["source"].startswith("synth") for r in splits.valid])
    offsets = tune_offsets(p_val, y_val, groups)
    doc = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "dim": DIM,
        "n_dense": N_DENSE,
        "offsets": list(offsets),
        "min_prob": MIN_PROB,
        "min_margin": MIN_MARGIN,
        "meta": {"l2": L2, "steps": STEPS, "fit_rows": len(splits.fit), "valid_rows": len(splits.valid),
                 "synth_weight": SYNTH_WEIGHT},
        "weights": encode_weights(w.astype(np.float32).tolist()),
    }
    out.write_bytes(orjson.dumps(doc))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--search", action="store_true", help="print validation scores of a small grid; write nothing")
    args = parser.parse_args(argv)
    if args.search:
        search(load_splits())
    else:
        train(args.out)


if __name__ == "__main__":
    main()
