"""The shipped linear model: weights file format, loading, and scoring a feature vector."""

from __future__ import annotations

import base64
import math
import sys
from array import array
from dataclasses import dataclass
from operator import mul
from pathlib import Path
from typing import Any

import orjson

from llmproxy.classifier.features import DIM, N_DENSE, Features

CLASSES: tuple[str, ...] = ("simple", "medium", "complex")
FORMAT = "llmproxy-classifier/2"
DEFAULT_WEIGHTS = Path(__file__).with_name("data") / "weights.json"


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Multinomial logistic regression over hashed features, with decision settings."""

    weights: tuple[array[float], ...]  # one float32 array of length DIM per class
    offsets: tuple[float, ...]  # added to the logits before argmax (tuned on a validation split)
    min_prob: float  # below this top probability the prediction is not confident
    min_margin: float  # ... or when the top two probabilities are closer than this
    meta: dict[str, Any]

    def probabilities(self, feats: Features) -> list[float]:
        idx = list(feats.keys())
        vals = list(feats.values())
        logits = [sum(map(mul, map(w.__getitem__, idx), vals)) for w in self.weights]
        top = max(logits)
        exps = [math.exp(z - top) for z in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def decide(self, probs: list[float]) -> tuple[int, float, bool]:
        """(class index, score in [0, 1], confident) from class probabilities."""
        adjusted = [math.log(max(p, 1e-12)) + o for p, o in zip(probs, self.offsets, strict=True)]
        best = max(range(len(CLASSES)), key=adjusted.__getitem__)
        score = probs[1] * 0.5 + probs[2]
        ranked = sorted(probs, reverse=True)
        confident = ranked[0] >= self.min_prob and ranked[0] - ranked[1] >= self.min_margin
        return best, min(max(score, 0.0), 1.0), confident


def encode_weights(rows: list[list[float]]) -> str:
    packed = array("f", [x for row in rows for x in row])
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _decode_weights(blob: str, n_classes: int) -> tuple[array[float], ...]:
    packed = array("f")
    packed.frombytes(base64.b64decode(blob))
    if sys.byteorder != "little":
        packed.byteswap()
    if len(packed) != n_classes * DIM:
        raise ValueError(f"weights hold {len(packed)} floats, expected {n_classes} x {DIM}")
    return tuple(packed[k * DIM : (k + 1) * DIM] for k in range(n_classes))


def load_model(path: str | Path | None = None) -> LinearModel:
    """Read a weights file (default: the one shipped in the package)."""
    raw = orjson.loads(Path(path or DEFAULT_WEIGHTS).read_bytes())
    if raw.get("format") != FORMAT:
        raise ValueError(f"not a classifier weights file (format {raw.get('format')!r}, want {FORMAT!r})")
    if tuple(raw["classes"]) != CLASSES or raw["dim"] != DIM or raw["n_dense"] != N_DENSE:
        raise ValueError("weights were trained with a different feature layout; retrain them")
    return LinearModel(
        weights=_decode_weights(raw["weights"], len(CLASSES)),
        offsets=tuple(float(o) for o in raw["offsets"]),
        min_prob=float(raw["min_prob"]),
        min_margin=float(raw["min_margin"]),
        meta=dict(raw.get("meta", {})),
    )
