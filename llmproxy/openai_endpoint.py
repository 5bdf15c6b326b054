"""POST /v1/embeddings and /v1/completions as plain ASGI handlers, beside the chat endpoint.

OpenAI's other two front doors: the same headers as chat (Authorization, x-request-id, the
x-llmproxy-* controls, cache-control), the request run through the pipeline's door entry, served
raw like chat so that an embeddings request costs the gateway what a chat request does.
"""

from __future__ import annotations

from .doors.completions import DOOR as COMPLETIONS
from .doors.embeddings import DOOR as EMBEDDINGS
from .endpoint import door_handler


_embeddings, _completions = door_handler(EMBEDDINGS), door_handler(COMPLETIONS)
ROUTES = {
    "/v1/embeddings": _embeddings,
    "/embeddings": _embeddings,
    "/v1/completions": _completions,
    "/completions": _completions,
}
