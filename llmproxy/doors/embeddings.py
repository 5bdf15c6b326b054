"""The embeddings front door: POST /v1/embeddings in OpenAI's format, on every provider that embeds.

`parse` checks the request as OpenAI does (a clear 400 naming the field, before anything is sent)
and gives it the embedding adapters of each provider kind (providers/openai_embeddings.py,
gemini_embeddings.py; a kind without embeddings refuses with a 400 naming the model). The request
is its own internal form: the pipeline routes, limits, caches and records it like a chat request,
and the router only ever picks embedding models for it.

`auto` is refused: vectors of two models live in different spaces, so a router that picked another
model tomorrow (a price change, a provider down) would silently break every index built today.

`encoding_format: "base64"` is OpenAI's packing of each vector as little-endian float32 bytes;
where the provider answered floats (Gemini, compatible servers), the gateway packs them itself.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..context import EMBEDDINGS, ChatCompletion, RequestContext
from ..errors import GatewayError, InvalidRequest
from ..providers import ADAPTERS, gemini_embeddings
from ..providers.embedding_parts import NoEmbeddings
from ..providers.openai_embeddings import COMPATIBLE, OPENAI
from ..router import is_auto
from ..validation import parse_object

ENCODINGS = ("float", "base64")
MAX_MODEL_NAME = 256
# Provider kind -> its embeddings adapter; a kind with no embeddings API refuses.
EMBEDDING_ADAPTERS: dict[str, Any] = {kind: NoEmbeddings(kind) for kind in ADAPTERS}
EMBEDDING_ADAPTERS.update({"openai": OPENAI, "openai-compatible": COMPATIBLE, "gemini": gemini_embeddings})


def parse(raw: bytes) -> dict[str, Any]:
    """The request, checked: a 400 naming the first field that is wrong."""
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object with 'model' and 'input'")
    body = parse_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise InvalidRequest("model must be a non-empty string (an embedding model's name)", param="model")
    if is_auto(model):
        raise InvalidRequest(
            "'auto' does not choose embedding models: vectors of different models cannot be "
            "compared, so an index needs one model for good; name it (GET /v1/models lists "
            "the embedding models)",
            code="model_not_supported",
            param="model",
        )
    check_input(body.get("input"), "input" in body)
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise InvalidRequest(
            f"encoding_format must be 'float' or 'base64', not {str(encoding)[:40]!r}", param="encoding_format"
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise InvalidRequest("user must be a string", param="user")
    return body


def check_input(value: Any, present: bool) -> None:
    """A string, a list of strings, a list of token ids, or a list of lists of token ids; never empty."""
    if not present:
        raise InvalidRequest("input is required: a string or a list of strings to embed", param="input")
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("input must not be an empty string", param="input")
        return
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "input must be a non-empty string, a non-empty list of strings, or token arrays", param="input"
        )
    first = value[0]
    if _token(first):
        for i, token in enumerate(value):
            if not _token(token):
                raise InvalidRequest(
                    f"input[{i}] must be a token id (a non-negative integer), like input[0]", param=f"input[{i}]"
                )
        return
    for i, item in enumerate(value):
        if isinstance(first, str):
            if not isinstance(item, str) or not item:
                raise InvalidRequest(f"input[{i}] must be a non-empty string, like input[0]", param=f"input[{i}]")
        elif not isinstance(item, list) or not item or not all(_token(t) for t in item):
            raise InvalidRequest(
                f"input[{i}] must be a non-empty string or a non-empty array of token ids "
                "(non-negative integers), and every item of the same kind",
                param=f"input[{i}]",
            )


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def render(answer: ChatCompletion, encoding: str) -> ChatCompletion:
    """The answer with every vector in the encoding the client asked for."""
    data = []
    for item in answer["data"]:
        vector = item["embedding"]
        if encoding == "base64" and isinstance(vector, list):
            item = {**item, "embedding": pack(vector)}
        elif encoding == "float" and isinstance(vector, str):
            item = {**item, "embedding": unpack(vector)}
        data.append(item)
    return {**answer, "data": data}


def pack(vector: list[float]) -> str:
    """OpenAI's base64 embedding: the vector as little-endian float32, base64-encoded."""
    floats = array("f", vector)
    if sys.byteorder != "little":
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode("ascii")


def unpack(text: str) -> list[float]:
    floats = array("f")
    floats.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        floats.byteswap()
    return floats.tolist()


class EmbeddingsDoor:
    """OpenAI embeddings in, OpenAI embeddings out, around the pipeline's stages."""

    name = "embeddings"
    native = False  # the cache keeps the internal answer (parsed), rendered again on a hit

    @staticmethod
    def parse(ctx: RequestContext, raw: bytes) -> None:
        ctx.body = parse(raw)
        ctx.raw_body = raw
        ctx.endpoint = EMBEDDINGS
        ctx.requested_model = ctx.body["model"]
        ctx.adapters = EMBEDDING_ADAPTERS

    @staticmethod
    def answer(ctx: RequestContext, completion: ChatCompletion) -> bytes:
        encoding = ctx.body.get("encoding_format") or "float"
        if ctx.response_body is not None:
            if encoding == "float":
                return ctx.response_body  # the provider's own answer: floats, as asked
            if completion.get("data") is None:  # left in the bytes by the adapter
                completion = orjson.loads(ctx.response_body)
            data = completion.get("data") or ()
            if not data or not isinstance(data[0].get("embedding"), list):
                return ctx.response_body  # already base64, as asked
        return orjson.dumps(render(completion, encoding))

    @staticmethod
    def stream(ctx: RequestContext, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return pieces  # never reached: an embeddings request is not a stream

    @staticmethod
    def cached(ctx: RequestContext, body: bytes) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
        return orjson.dumps(render(orjson.loads(body), ctx.body.get("encoding_format") or "float")), None

    @staticmethod
    def error(exc: GatewayError) -> tuple[int, bytes]:
        return exc.status, exc.to_json()


DOOR = EmbeddingsDoor()
