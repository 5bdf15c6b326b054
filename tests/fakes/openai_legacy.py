"""The fake OpenAI server's embeddings and legacy completions routes, checked as strictly as the real
API checks them (field names and types from the API reference and openai-python's
EmbeddingCreateParams / CompletionCreateParams):

POST /v1/embeddings   model must be an embedding model; input a non-empty string, or at most 2048
                      strings / token ids / token arrays; encoding_format float or base64;
                      dimensions only for text-embedding-3 models and at most their size; an unknown
                      field is refused ("Unrecognized request argument supplied").
POST /v1/completions  model must be a completion model (a chat model gets OpenAI's 404 "This is a
                      chat model..."); prompt required; every field of the legacy API, nothing else.

Vectors are made from the text (a hash seeds them), so the same input always gets the same vector
and a test can check the order of a joined batch with `vector(text, size)`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

EMBEDDING_MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "slow-embed": 8,
}
COMPLETION_MODELS = {"gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", "llama3.3", "fail-completion"}
NOT_CHAT = {"gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", *EMBEDDING_MODELS}  # chat refuses them
MAX_INPUTS = 2048
EMBEDDING_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}
COMPLETION_FIELDS = {
    "model",
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
}

Check = Callable[[Request], Awaitable[Response | dict[str, Any]]]


def vector(text: str, size: int) -> list[float]:
    """The fake's embedding of a text: deterministic, unit length."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] + i * 37) % 251) / 125.0 - 1.0 for i in range(size)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _key(item: Any) -> str:
    return item if isinstance(item, str) else "tokens:" + ",".join(map(str, item if isinstance(item, list) else [item]))


def routes(state: Any, error: Callable[..., Response], authorized: Check) -> list[Route]:
    """The two routes, for the fake's app. `authorized` answers the request's key check and body:
    a Response when refused, else the parsed body (recorded in the state)."""

    async def embeddings(request: Request) -> Response:
        body = await authorized(request)
        if isinstance(body, Response):
            return body
        state.embedding_requests.append(body)
        unknown = sorted(set(body) - EMBEDDING_FIELDS)
        if unknown:
            return error(400, f"Unrecognized request argument supplied: {unknown[0]}", "invalid_request_error", None)
        model = body.get("model")
        if model == "fail-embed":
            return error(503, "fake failure 503", "server_error", None)
        if model not in EMBEDDING_MODELS:
            return error(
                404 if isinstance(model, str) else 400,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        if model == "slow-embed":
            import asyncio

            await asyncio.sleep(0.2)
        items = _inputs(body.get("input"))
        if items is None:
            return error(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                "invalid_request_error",
                None,
            )
        if len(items) > MAX_INPUTS:
            return error(
                400, f"'$.input' is invalid: at most {MAX_INPUTS} inputs per request.", "invalid_request_error", None
            )
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return error(
                400,
                f"Invalid value for 'encoding_format': '{encoding}'.",
                "invalid_request_error",
                None,
                "encoding_format",
            )
        size = EMBEDDING_MODELS[model]
        dimensions = body.get("dimensions")
        if dimensions is not None:
            if not model.startswith("text-embedding-3"):
                return error(
                    400,
                    "This model does not support specifying dimensions.",
                    "invalid_request_error",
                    None,
                    "dimensions",
                )
            if not isinstance(dimensions, int) or not 1 <= dimensions <= size:
                return error(
                    400,
                    f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {size}.",
                    "invalid_request_error",
                    None,
                    "dimensions",
                )
            size = dimensions
        data = []
        for index, item in enumerate(items):
            values = vector(_key(item), size)
            embedding: Any = (
                values if encoding == "float" else base64.b64encode(struct.pack(f"<{size}f", *values)).decode()
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(max(1, len(i) // 4) if isinstance(i, str) else len(i) if isinstance(i, list) else 1 for i in items)
        return Response(
            orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
            media_type="application/json",
        )

    async def completions(request: Request) -> Response:
        body = await authorized(request)
        if isinstance(body, Response):
            return body
        state.completion_requests.append(body)
        unknown = sorted(set(body) - COMPLETION_FIELDS)
        if unknown:
            return error(400, f"Unrecognized request argument supplied: {unknown[0]}", "invalid_request_error", None)
        model = body.get("model")
        if model == "fail-completion":
            return error(503, "fake failure 503", "server_error", None)
        if model not in COMPLETION_MODELS:
            return error(
                404,
                "This is a chat model and not supported in the v1/completions endpoint. Did you mean "
                "to use v1/chat/completions?",
                "invalid_request_error",
                None,
                "model",
            )
        prompts = _prompts(body.get("prompt"))
        if prompts is None:
            return error(
                400, "'$.prompt' is invalid. Please check the API reference.", "invalid_request_error", None, "prompt"
            )
        if body.get("stream_options") is not None and body.get("stream") is not True:
            return error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "invalid_request_error",
                None,
                "stream_options",
            )
        max_tokens = body.get("max_tokens") or 16
        choices = []
        for p, prompt in enumerate(prompts):
            words = f"echo: {prompt}".split(" ")
            cut = words[:max_tokens]
            text = " ".join(cut) + (body.get("suffix") or "")
            if body.get("echo"):
                text = prompt + text
            for k in range(body.get("n") or 1):
                choice: dict[str, Any] = {
                    "text": text,
                    "index": p * (body.get("n") or 1) + k,
                    "logprobs": None,
                    "finish_reason": "length" if len(words) > max_tokens else "stop",
                }
                if body.get("logprobs") is not None:
                    choice["logprobs"] = {
                        "tokens": cut,
                        "token_logprobs": [-0.5] * len(cut),
                        "top_logprobs": [{w: -0.5} for w in cut],
                        "text_offset": list(range(len(cut))),
                    }
                choices.append(choice)
        usage = {"prompt_tokens": 5 * len(prompts), "completion_tokens": sum(len(c["text"].split()) for c in choices)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        answer = {
            "id": "cmpl-fake123",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "usage": usage,
        }
        if body.get("stream"):
            return StreamingResponse(
                _stream(answer, bool((body.get("stream_options") or {}).get("include_usage"))),
                media_type="text/event-stream",
            )
        return Response(orjson.dumps(answer), media_type="application/json")

    return [
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]


def _inputs(value: Any) -> list[Any] | None:
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        return [value]
    if all(isinstance(s, str) and s for s in value):
        return value
    if all(isinstance(a, list) and a and all(isinstance(t, int) and t >= 0 for t in a) for a in value):
        return value
    return None


def _prompts(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(t, int) for t in value):
        return ["tokens:" + ",".join(map(str, value))]
    if all(isinstance(s, str) for s in value):
        return value
    if all(isinstance(a, list) and a and all(isinstance(t, int) for t in a) for a in value):
        return ["tokens:" + ",".join(map(str, a)) for a in value]
    return None


async def _stream(answer: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """The answer as OpenAI streams legacy completions: text in pieces per choice, the finish on the
    last piece, the usage chunk (choices empty) when asked, [DONE]."""
    base = {k: answer[k] for k in ("id", "object", "created", "model", "system_fingerprint")}
    for choice in answer["choices"]:
        words = choice["text"].split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            piece = {
                "text": word + ("" if last else " "),
                "index": choice["index"],
                "logprobs": None,
                "finish_reason": choice["finish_reason"] if last else None,
            }
            yield b"data: " + orjson.dumps({**base, "choices": [piece]}) + b"\n\n"
    if include_usage:
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": answer["usage"]}) + b"\n\n"
    yield b"data: [DONE]\n\n"
