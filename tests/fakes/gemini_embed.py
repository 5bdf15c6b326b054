"""The fake Gemini server's `models/{m}:batchEmbedContents`, checked as the real API checks it (field
names from the REST reference: BatchEmbedContentsRequest, EmbedContentRequest, Content, Part):

- only `requests`, each with `model` (which must name the model of the URL, "models/..."), `content`
  (parts of text), and optionally `taskType`, `title`, `outputDimensionality` (1 to the model's size);
- at most 100 requests ("at most 100 requests can be in one batch", as the real API answers);
- the model must be an embedding model.

Vectors come from openai_legacy.vector, and like Gemini's own only the full-size ones are unit
length: a vector cut by outputDimensionality keeps the length its first values happen to have.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.openai_legacy import vector

EMBEDDING_MODELS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
MAX_REQUESTS = 100
REQUEST_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}
TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}


class Invalid(Exception):
    pass


def check(body: Any, model: str) -> list[tuple[str, int | None]]:
    """The texts and sizes a batch asks for; Invalid naming what the real API would refuse."""
    if not isinstance(body, dict) or set(body) - {"requests"}:
        unknown = sorted(set(body) - {"requests"}) if isinstance(body, dict) else ["(body)"]
        raise Invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise Invalid("* BatchEmbedContentsRequest.requests: contents is not specified")
    if len(requests) > MAX_REQUESTS:
        raise Invalid(f"* BatchEmbedContentsRequest.requests: at most {MAX_REQUESTS} requests can be in one batch")
    out = []
    for i, one in enumerate(requests):
        where = f"requests[{i}]"
        if not isinstance(one, dict):
            raise Invalid(f"Invalid value at '{where}'")
        unknown = sorted(set(one) - REQUEST_FIELDS)
        if unknown:
            raise Invalid(
                f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': Cannot find field."
            )
        if one.get("model") != f"models/{model}":
            raise Invalid(
                f"* BatchEmbedContentsRequest.{where}.model: the model of each request must be the "
                f"batch's model (models/{model}), not {one.get('model')!r}"
            )
        content = one.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts or set(content) - {"parts", "role"}:
            raise Invalid(f"* BatchEmbedContentsRequest.{where}.content: contents is not specified")
        texts = []
        for part in parts:
            if not isinstance(part, dict) or set(part) != {"text"} or not isinstance(part["text"], str):
                raise Invalid(f"* BatchEmbedContentsRequest.{where}.content.parts: only text parts are supported")
            texts.append(part["text"])
        if not "".join(texts).strip():
            raise Invalid(f"* BatchEmbedContentsRequest.{where}.content.parts: text must not be empty")
        size = one.get("outputDimensionality")
        if size is not None and (not isinstance(size, int) or not 1 <= size <= EMBEDDING_MODELS[model]):
            raise Invalid(
                f"* BatchEmbedContentsRequest.{where}.output_dimensionality: must be between 1 and "
                f"{EMBEDDING_MODELS[model]}"
            )
        if one.get("taskType") is not None and one["taskType"] not in TASK_TYPES:
            raise Invalid(f"Invalid value at '{where}.task_type'")
        out.append(("".join(texts), size))
    return out


async def batch_embed(request: Request, state: Any, model: str, error: Any) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    state.embed_requests.append(body)
    if model not in EMBEDDING_MODELS:
        return error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is not supported for batchEmbedContents.",
        )
    try:
        wanted = check(body, model)
    except Invalid as exc:
        state.rejected.append(str(exc))
        return error(400, "INVALID_ARGUMENT", str(exc))
    full = EMBEDDING_MODELS[model]
    embeddings = [
        {"values": [v * 3.0 for v in vector(text, full)][: size or full] if size else vector(text, full)}
        for text, size in wanted
    ]
    return Response(orjson.dumps({"embeddings": embeddings}), media_type="application/json")
