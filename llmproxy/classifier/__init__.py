"""Request complexity classifier: simple / medium / complex, offline, CPU, well under 1 ms.

    classifier = Classifier.load()            # explicit; reads the shipped weights file
    classifier.classify(request)              # -> Complexity(label, score, confident)

Training, data and evaluation live outside the installed package, in the repository's training/
folder (python -m training.train, python -m training.evaluate); at runtime only the stdlib and orjson
are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmproxy.classifier.features import ChatRequest, featurize
from llmproxy.classifier.model import CLASSES, LinearModel, load_model

__all__ = ["Classifier", "Complexity"]


@dataclass(frozen=True, slots=True)
class Complexity:
    label: str  # "simple" | "medium" | "complex"
    score: float  # in [0, 1], higher = harder
    confident: bool  # False near a boundary or on a low top probability: the router uses its default


@dataclass(frozen=True, slots=True)
class Classifier:
    model: LinearModel

    @classmethod
    def load(cls, path: str | Path | None = None) -> Classifier:
        """Load weights from `path`, by default the file shipped in the package."""
        return cls(load_model(path))

    def classify(self, request: ChatRequest) -> Complexity:
        probs = self.model.probabilities(featurize(request))
        best, score, confident = self.model.decide(probs)
        return Complexity(label=CLASSES[best], score=round(score, 4), confident=confident)
