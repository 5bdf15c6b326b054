"""POST /v1/embeddings and /v1/completions as plain ASGI handlers, beside the chat endpoint.

OpenAI's other two front doors: the same headers as chat (Authorization, x-request-id, the
x-llmproxy-* controls, cache-control), the request run through the pipeline's door entry, served
raw like chat so that an embeddings request costs the gateway what a chat request does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import pipeline
from .disconnects import Disconnects
from .doors.completions import DOOR as COMPLETIONS
from .doors.embeddings import DOOR as EMBEDDINGS
from .endpoint import Receive, Scope, Send, answer, openai_context


def _handler(door: pipeline.Door) -> Callable[..., Awaitable[None]]:
    def handle(
        gw: pipeline.Gateway,
        new_id: Callable[[], str],
        scope: Scope,
        receive: Receive,
        send: Send,
        disconnects: Disconnects,
    ) -> Awaitable[None]:
        ctx, authorization, declared = openai_context(scope, new_id)
        return answer(gw, ctx, door, authorization, declared, receive, send, disconnects)

    return handle


_embeddings, _completions = _handler(EMBEDDINGS), _handler(COMPLETIONS)
ROUTES = {
    "/v1/embeddings": _embeddings,
    "/embeddings": _embeddings,
    "/v1/completions": _completions,
    "/completions": _completions,
}
