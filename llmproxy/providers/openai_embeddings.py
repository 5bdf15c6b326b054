"""OpenAI embeddings (POST /embeddings), on OpenAI and on any OpenAI-compatible server (Ollama, vLLM,
TEI...): the client's request goes upstream as it came, only the model name swapped.

OpenAI itself answers base64 when asked, so its answer is relayed as it is. A compatible server is
always asked for floats (not every one encodes base64) and the front door encodes them when the
client wanted base64. At most 2048 inputs per call: OpenAI's API reference for `input` ("any array
must be 2048 dimensions or less"); larger batches are split (embedding_parts.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest
from ..errors import GatewayError, InvalidRequest, UpstreamError
from ..registry import ModelEntry
from . import openai
from .base import StreamState, UpstreamRequest

MAX_INPUTS = 2048


class OpenAIEmbeddings:
    """The embeddings adapter of one provider kind: "openai" (base64 asked upstream as the client asks
    it) or "openai-compatible" (floats always)."""

    NAME = openai.NAME
    DEFAULT_BASE_URL = openai.DEFAULT_BASE_URL
    RELAYS_ANSWER = True
    MAX_INPUTS = MAX_INPUTS

    def __init__(self, *, base64_upstream: bool) -> None:
        self.base64_upstream = base64_upstream

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        """`raw` (the client's body) goes as it is when nothing in it must change."""
        floats_only = not self.base64_upstream and req.get("encoding_format") == "base64"
        if raw is None or req["model"] != model.provider_model or floats_only:
            body = {**req, "model": model.provider_model}
            if floats_only:
                body["encoding_format"] = "float"
            raw = orjson.dumps(body)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if creds.api_key is not None:
            headers["authorization"] = "Bearer " + creds.api_key.value
        if creds.headers:
            headers.update(creds.headers)
        return UpstreamRequest(creds.base_url + "/embeddings", headers, raw)

    @staticmethod
    def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
        return parse_response(body, model)

    @staticmethod
    def finish(answer: ChatCompletion, req: ChatRequest) -> ChatCompletion:
        return answer

    @staticmethod
    def relay_stream(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        raise InvalidRequest("embeddings are never streamed")

    @staticmethod
    def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = openai.NAME) -> GatewayError:
        return openai.map_error(status, body, headers, provider=provider)


def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
    """What the gateway reads of the answer: its usage. An answer that ends in its usage object (as
    OpenAI's does) is not parsed further: its vectors stay in the bytes, which go to the client as
    they are (`data` None; embedding_parts.whole parses them when they are needed: a cache entry,
    a joined batch, base64 to pack). Parsing 1536 floats would cost more than the rest of the
    gateway's work on the request."""
    usage = trailing_usage(body)
    if usage is not None:
        return {"object": "list", "data": None, "usage": usage}
    return parse_whole(body, model)


def trailing_usage(body: bytes) -> dict[str, Any] | None:
    """The usage object, when it is the answer's last member; None when the bytes do not say so plainly."""
    end = body.rstrip()
    if not body.startswith(b"{") or not end.endswith(b"}}"):
        return None
    key = body.rfind(b'"usage"')
    start = body.find(b"{", key)
    if key < 0 or start < 0 or body[key + 7 : start].strip() != b":" or body.find(b"}", start) != len(end) - 2:
        return None
    try:
        usage = orjson.loads(body[start : len(end) - 1])
    except orjson.JSONDecodeError:
        return None
    return usage if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int) else None


def parse_whole(body: bytes, model: ModelEntry) -> ChatCompletion:
    """The answer parsed whole, checked for a list of embeddings (and given a usage if it has none)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model.provider} sent an embeddings answer that is not JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            raise openai.map_error(500, body, {}, provider=model.provider)
        raise UpstreamError(f"{model.provider} sent an embeddings answer without data")
    usage = answer.get("usage")
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
        # Some compatible servers leave usage out; the record stage still needs a count.
        answer["usage"] = {"prompt_tokens": 0, "total_tokens": 0}
    return answer


OPENAI = OpenAIEmbeddings(base64_upstream=True)
COMPATIBLE = OpenAIEmbeddings(base64_upstream=False)
