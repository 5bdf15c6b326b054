"""Embeddings in several upstream calls: a batch larger than a provider takes at once is split at its
per-call limit, the parts are sent (a few at a time) and the answers joined in the input's order.

All parts go to the same model of the same provider: a failed part fails the attempt as a whole, and a
fallback starts the whole batch again on the next candidate, so one answer never mixes the vectors of
two models. Also here: the adapter for a provider kind that has no embeddings API at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest
from ..errors import GatewayError, InvalidRequest
from ..registry import ModelEntry
from .base import Adapter, StreamState, Transport, UpstreamRequest, UpstreamResult

CONCURRENT_PARTS = 4  # parts of one request in flight at once: faster than one by one, gentle on rate limits

EmbeddingRequest = dict[str, Any]
Embeddings = dict[str, Any]  # OpenAI's CreateEmbeddingResponse: {"object": "list", "data", "model", "usage"}


class EmbeddingAdapter(Adapter, Protocol):
    """An adapter whose requests are embeddings requests, with the most inputs its provider takes per
    call; `finish` completes a parsed answer with what only the request tells."""

    MAX_INPUTS: int

    def finish(self, answer: Embeddings, req: EmbeddingRequest) -> Embeddings: ...


def inputs(req: EmbeddingRequest) -> list[Any]:
    """The request's inputs as a list: one string or one token array is a single input."""
    value = req["input"]
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        return [value]
    return list(value)


def split(req: EmbeddingRequest, limit: int) -> list[EmbeddingRequest]:
    """The request itself when its inputs fit one call; else one request per `limit` inputs."""
    items = inputs(req)
    if len(items) <= limit:
        return [req]
    return [{**req, "input": items[i : i + limit]} for i in range(0, len(items), limit)]


def join(parts: list[Embeddings]) -> Embeddings:
    """One answer from the parts' answers: data renumbered in order, usage summed."""
    data: list[dict[str, Any]] = []
    prompt = 0
    for part in parts:
        for item in part["data"]:
            data.append({**item, "index": len(data)})
        prompt += int((part.get("usage") or {}).get("prompt_tokens") or 0)
    return {**parts[0], "data": data, "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


async def complete(
    transport: Transport,
    adapter: EmbeddingAdapter,
    provider: ProviderSettings,
    model: ModelEntry,
    req: EmbeddingRequest,
    request_id: str | None,
    raw: bytes | None,
    *,
    whole: bool = False,
) -> UpstreamResult:
    """The execute stage's call for an embeddings request: one upstream call, or several joined.
    `whole`: the answer's vectors are needed parsed (the cache keeps it), not only its bytes."""
    parts = split(req, adapter.MAX_INPUTS)
    if len(parts) == 1:
        result = await transport.complete(adapter, provider, model, req, request_id, raw)
        result.completion = adapter.finish(parsed(result) if whole else result.completion, req)
        return result
    started = time.perf_counter()
    answers: list[Embeddings] = []
    for wave in range(0, len(parts), CONCURRENT_PARTS):
        try:
            async with asyncio.TaskGroup() as group:  # a failed part cancels the others of its wave
                tasks = [
                    group.create_task(transport.complete(adapter, provider, model, part, request_id))
                    for part in parts[wave : wave + CONCURRENT_PARTS]
                ]
        except BaseExceptionGroup as failed:
            raise _first_error(failed) from None
        answers += [
            adapter.finish(parsed(task.result()), part)
            for task, part in zip(tasks, parts[wave : wave + CONCURRENT_PARTS], strict=True)
        ]
    return UpstreamResult(join(answers), 200, time.perf_counter() - started)


def parsed(result: UpstreamResult) -> Embeddings:
    """The answer with its vectors, parsing the bytes an adapter left unparsed (data None)."""
    answer = result.completion
    if answer.get("data") is None and result.body is not None:
        answer = {**orjson.loads(result.body), "usage": answer["usage"]}
    return answer


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if isinstance(exc, GatewayError):
            return exc
    return group.exceptions[0]


class NoEmbeddings:
    """The embeddings adapter of a provider kind that serves none (Anthropic): a clear 400 naming the
    model, before anything is sent."""

    NAME = "none"
    DEFAULT_BASE_URL = ""
    RELAYS_ANSWER = False
    MAX_INPUTS = 2048

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        raise InvalidRequest(
            f"the model '{model.id}' belongs to {creds.name} ({self.kind}), which serves no "
            "embeddings API; name an embedding model (GET /v1/models lists them)",
            code="model_not_supported",
            param="model",
        )

    @staticmethod
    def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
        raise InvalidRequest(f"{model.provider} serves no embeddings API")

    @staticmethod
    def relay_stream(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        raise InvalidRequest("embeddings are never streamed")

    @staticmethod
    def finish(answer: Embeddings, req: EmbeddingRequest) -> Embeddings:
        return answer

    @staticmethod
    def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = "none") -> GatewayError:
        return GatewayError(f"{provider} answered HTTP {status}", status=502)
