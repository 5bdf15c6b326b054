"""The classify stage: the request's complexity, for requests that the router decides ("auto")."""
from __future__ import annotations

from ..context import RequestContext
from . import Classifier


def classify(ctx: RequestContext, classifier: Classifier) -> None:
    result = classifier.classify(ctx.body)
    ctx.complexity, ctx.complexity_score, ctx.complexity_confident = result.label, result.score, result.confident
