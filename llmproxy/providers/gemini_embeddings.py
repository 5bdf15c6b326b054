"""Gemini embeddings: OpenAI's embeddings request -> `models/{m}:batchEmbedContents`, and back.

Each input becomes one EmbedContentRequest (the model named again, as the API requires, its text as
one part); `dimensions` becomes `outputDimensionality`. Gemini takes text only: token arrays are
refused before anything is sent. A batch holds at most 100 requests (the API answers "at most 100
requests can be in one batch" past that, as reported in langchain-ai/langchainjs#4491 and fixed in
vercel/ai#16575); larger ones are split (embedding_parts.py).

Gemini normalizes only its full-size vectors; a vector cut to fewer dimensions comes back with its
own length, so the gateway scales it to unit length, as OpenAI's `dimensions` does, and cosine or
dot-product search behaves the same behind either provider. Usage: the answer's usageMetadata when
Gemini sends it, else an estimate from the text (four characters to a token).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest
from ..errors import GatewayError, InvalidRequest, UpstreamError
from ..registry import ModelEntry
from . import gemini
from .base import StreamState, UpstreamRequest
from .embedding_parts import inputs

NAME = gemini.NAME
DEFAULT_BASE_URL = gemini.DEFAULT_BASE_URL
RELAYS_ANSWER = False  # translated
MAX_INPUTS = 100
CHARS_PER_TOKEN = 4


def build_request(
    req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
) -> UpstreamRequest:
    name = quote(model.provider_model.removeprefix("models/"), safe="")
    resource = f"models/{name}"
    dimensions = req.get("dimensions")
    requests = []
    for i, item in enumerate(inputs(req)):
        if not isinstance(item, str):
            raise InvalidRequest(
                f"the model '{model.id}' (Gemini) takes text only; input[{i}] is an array of "
                "tokens: send the text instead",
                param="input",
            )
        one: dict[str, Any] = {"model": resource, "content": {"parts": [{"text": item}]}}
        if dimensions is not None:
            one["outputDimensionality"] = dimensions
        requests.append(one)
    headers = {"content-type": "application/json", "accept": "application/json"}
    if creds.api_key is not None:
        headers["x-goog-api-key"] = creds.api_key.value
    if creds.headers:
        headers.update(creds.headers)
    url = f"{creds.base_url}/{gemini.API_VERSION}/{resource}:batchEmbedContents"
    return UpstreamRequest(url, headers, orjson.dumps({"requests": requests}))


def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model.provider} sent an embeddings answer that is not JSON") from None
    if not isinstance(answer, dict):
        raise UpstreamError(f"{model.provider} sent an embeddings answer that is not an object")
    if isinstance(answer.get("error"), dict):
        raise gemini.error_from_body(answer, model.provider)
    embeddings = answer.get("embeddings")
    if not isinstance(embeddings, list):
        raise UpstreamError(f"{model.provider} sent an embeddings answer without embeddings")
    data = []
    for index, item in enumerate(embeddings):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise UpstreamError(f"{model.provider} sent embedding {index} without values")
        data.append({"object": "embedding", "index": index, "embedding": values})
    meta = answer.get("usageMetadata")
    tokens = meta.get("promptTokenCount") if isinstance(meta, dict) else None
    usage = {"prompt_tokens": tokens, "total_tokens": tokens} if isinstance(tokens, int) else None
    return {"object": "list", "data": data, "model": model.id, "usage": usage}


def finish(answer: ChatCompletion, req: ChatRequest) -> ChatCompletion:
    """What needs the request as well as the answer: unit length for cut vectors, the usage estimate."""
    if req.get("dimensions") is not None:
        for item in answer["data"]:
            item["embedding"] = unit(item["embedding"])
    if answer.get("usage") is None:
        tokens = sum(max(1, len(text) // CHARS_PER_TOKEN) for text in inputs(req) if isinstance(text, str))
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return answer


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(v * v for v in vector))
    return [v / norm for v in vector] if norm > 0 else vector


def relay_stream(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
    raise InvalidRequest("embeddings are never streamed")


def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = NAME) -> GatewayError:
    return gemini.map_error(status, body, headers, provider=provider)
