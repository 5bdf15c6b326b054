"""The classify stage: the request's complexity, for requests that the router decides ("auto").

A client that knows says so: the `x-llmproxy-complexity: simple|medium|complex` request header wins,
then the API key's own default (`complexity` on the key), then the classifier. A hint is taken as
confident; the classifier's own answer carries its confidence.
"""

from __future__ import annotations

from ..config import LABELS
from ..context import RequestContext
from ..errors import InvalidRequest
from . import Classifier

HINT_HEADER = "x-llmproxy-complexity"


def classify(ctx: RequestContext, classifier: Classifier | None) -> None:
    hint = ctx.client_headers.get(HINT_HEADER)
    if hint is not None:
        hint = hint.strip().lower()
        if hint not in LABELS:
            raise InvalidRequest(
                f"{HINT_HEADER} must be one of {', '.join(LABELS)}, not {hint!r}",
                param=HINT_HEADER,
                code="invalid_complexity",
            )
    elif ctx.principal is not None and ctx.principal.complexity in LABELS:
        hint = ctx.principal.complexity
    if hint is not None:
        ctx.complexity, ctx.complexity_score, ctx.complexity_confident = hint, None, True
        return
    if classifier is not None:
        result = classifier.classify(ctx.body)
        ctx.complexity, ctx.complexity_score, ctx.complexity_confident = result.label, result.score, result.confident
