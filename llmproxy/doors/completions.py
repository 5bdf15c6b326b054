"""The legacy completions front door: POST /v1/completions in OpenAI's format (`text_completion`).

`parse` checks the request as OpenAI does and makes the internal chat request from it: the prompt
becomes one user message. A model that serves the legacy API gets the client's own request instead
(providers/openai_completions.py); every other model answers through chat, and the answer, the
stream and a cache hit come back here as `choices[].text`.

Two choices where the legacy API and chat differ: without `max_tokens` the legacy API stops after
16 tokens; a chat model is given no such cut (16 tokens make a poor answer and a reasoning model's
empty one), while a legacy model still gets OpenAI's own default. `logprobs`, `echo`, `suffix`,
`best_of` > 1, several prompts and token prompts stay in the internal request only when they ask
for something, so that the chat targets refuse them (400 naming the field) and the cache keys on them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..context import COMPLETIONS, ChatCompletion, RequestContext
from ..errors import GatewayError, InvalidRequest
from ..providers import ADAPTERS
from ..providers.openai_completions import LegacyTarget
from ..validation import parse_object

MAX_MODEL_NAME = 256
_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
_COUNTS = {"n": (1, 128), "best_of": (0, 20), "logprobs": (0, 5), "max_tokens": (0, None), "seed": (None, None)}
_CHAT_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "stream",
    "stream_options",
)


def parse(raw: bytes) -> dict[str, Any]:
    """The client's request, checked: a 400 naming the first field that is wrong."""
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object with 'model' and 'prompt'")
    body = parse_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise InvalidRequest("model must be a non-empty string", param="model")
    _check_prompt(body)
    for name, (low, high) in _NUMBERS.items():
        value = body.get(name)
        if value is not None and (not _number(value) or not low <= value <= high):
            raise InvalidRequest(f"{name} must be a number from {low:g} to {high:g}", param=name)
    for name, (lo, hi) in _COUNTS.items():
        value = body.get(name)
        if value is not None and (
            not _integer(value) or (lo is not None and value < lo) or (hi is not None and value > hi)
        ):
            bounds = f" from {lo} to {hi}" if hi is not None else f" of at least {lo}" if lo is not None else ""
            raise InvalidRequest(f"{name} must be an integer{bounds}", param=name)
    for name in ("echo", "stream"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise InvalidRequest(f"{name} must be true or false", param=name)
    for name in ("suffix", "user"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise InvalidRequest(f"{name} must be a string", param=name)
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and (not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequest("stop must be a string or a list of at most 4 strings", param="stop")
    for name in ("logit_bias", "stream_options"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise InvalidRequest(f"{name} must be an object", param=name)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise InvalidRequest("stream_options is only allowed with stream: true", param="stream_options")
    if body.get("max_tokens") == 0 and body.get("echo") is not True:
        raise InvalidRequest("max_tokens must be at least 1 (0 only with echo: true)", param="max_tokens")
    best_of, n = body.get("best_of"), body.get("n") or 1
    if best_of is not None and best_of < n:
        raise InvalidRequest("best_of must be at least n", param="best_of")
    if best_of is not None and best_of > 1 and body.get("stream") is True:
        raise InvalidRequest("best_of above 1 cannot be streamed", param="best_of")
    return body


def _check_prompt(body: dict[str, Any]) -> None:
    if "prompt" not in body or body["prompt"] is None:
        raise InvalidRequest("prompt is required: a string, a list of strings, or token arrays", param="prompt")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise InvalidRequest("prompt must be a string, a non-empty list of strings, or token arrays", param="prompt")
    if all(_token(t) for t in prompt) or all(isinstance(p, str) for p in prompt):
        return
    for i, item in enumerate(prompt):
        if not isinstance(item, list) or not item or not all(_token(t) for t in item):
            raise InvalidRequest(
                f"prompt[{i}] must be a string or a non-empty array of token ids, like the other items",
                param=f"prompt[{i}]",
            )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token(value: Any) -> bool:
    return _integer(value) and value >= 0


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The internal chat request: the prompt as one user message, the fields chat shares, and the
    legacy-only fields that ask for something (see the module docstring)."""
    prompt = body["prompt"]
    single = isinstance(prompt, str) or (len(prompt) == 1 and isinstance(prompt[0], str))
    text = prompt if isinstance(prompt, str) else "\n".join(p for p in prompt if isinstance(p, str))
    chat: dict[str, Any] = {"model": body["model"], "messages": [{"role": "user", "content": text}]}
    for name in _CHAT_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_tokens"):
        chat["max_completion_tokens"] = body["max_tokens"]
    if not single:
        chat["prompt"] = prompt
    if body.get("echo") is True:
        chat["echo"] = True
    if body.get("logprobs") is not None:
        chat["logprobs"] = body["logprobs"]
    if body.get("suffix"):
        chat["suffix"] = body["suffix"]
    if body.get("best_of") is not None and body["best_of"] > 1:
        chat["best_of"] = body["best_of"]
    return chat


def text_completion(completion: ChatCompletion) -> ChatCompletion:
    """A chat completion as a legacy one: each choice's message content as its text."""
    if completion.get("object") == "text_completion":
        return completion
    answer: ChatCompletion = {
        "id": _legacy_id(completion.get("id")),
        "object": "text_completion",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    answer["choices"] = [
        {
            "text": (choice.get("message") or {}).get("content") or "",
            "index": choice.get("index", i),
            "logprobs": None,
            "finish_reason": choice.get("finish_reason"),
        }
        for i, choice in enumerate(completion.get("choices") or ())
    ]
    if completion.get("usage") is not None:
        answer["usage"] = completion["usage"]
    if completion.get("system_fingerprint"):
        answer["system_fingerprint"] = completion["system_fingerprint"]
    return answer


def _legacy_id(value: Any) -> str:
    text = str(value or "")
    return "cmpl-" + text.removeprefix("chatcmpl-") if not text.startswith("cmpl-") else text


def chunk_event(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """A chat.completion.chunk as a text_completion chunk; None for one that carries nothing a legacy
    client reads (the role chunk)."""
    choices = []
    for choice in chunk.get("choices") or ():
        text = (choice.get("delta") or {}).get("content") or ""
        if text or choice.get("finish_reason"):
            choices.append(
                {
                    "text": text,
                    "index": choice.get("index", 0),
                    "logprobs": None,
                    "finish_reason": choice.get("finish_reason"),
                }
            )
    usage = chunk.get("usage")
    if not choices and not usage:
        return None
    out = {
        "id": _legacy_id(chunk.get("id")),
        "object": "text_completion",
        "created": chunk.get("created", 0),
        "model": chunk.get("model", ""),
        "choices": choices,
    }
    if usage:
        out["usage"] = usage
    return out


async def relay(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The internal stream as the legacy API streams: chat chunks rewritten, legacy chunks (from a
    passthrough), errors and [DONE] as they are."""
    async for piece in pieces:
        out = []
        for event in piece.split(b"\n\n"):
            if not event:
                continue
            if event.startswith(b"data: {") and b'"chat.completion.chunk"' in event:
                try:
                    chunk = orjson.loads(event[6:])
                except orjson.JSONDecodeError:
                    chunk = None  # not ours to mend: it goes on as it came
                if isinstance(chunk, dict):
                    converted = chunk_event(chunk)
                    if converted is None:
                        continue
                    event = b"data: " + orjson.dumps(converted)
            out.append(event + b"\n\n")
        if out:
            yield b"".join(out)


async def _replay(completion: ChatCompletion, include_usage: bool) -> AsyncIterator[bytes]:
    """A cached answer as a legacy stream: per choice its text and finish, the usage if asked, [DONE]."""
    base = {
        "id": completion.get("id", ""),
        "object": "text_completion",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    events = [b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n" for choice in completion["choices"]]
    if include_usage and completion.get("usage") is not None:
        events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": completion["usage"]}) + b"\n\n")
    yield b"".join(events) + b"data: [DONE]\n\n"


class CompletionsDoor:
    """OpenAI legacy completions in and out, around the pipeline's stages."""

    name = "completions"
    native = False  # the cache keeps the internal answer (parsed), rendered again on a hit

    @staticmethod
    def parse(ctx: RequestContext, raw: bytes) -> None:
        body = parse(raw)
        ctx.body = to_chat(body)
        ctx.raw_body = raw
        ctx.endpoint = COMPLETIONS
        ctx.requested_model = body["model"]
        ctx.stream = body.get("stream") is True
        options = body.get("stream_options")
        ctx.include_usage = bool(ctx.stream and isinstance(options, dict) and options.get("include_usage"))
        ctx.adapters = {kind: LegacyTarget(kind, body) for kind in ADAPTERS}

    @staticmethod
    def answer(ctx: RequestContext, completion: ChatCompletion) -> bytes:
        if completion.get("object") == "text_completion" and ctx.response_body is not None:
            return ctx.response_body  # the legacy server's own answer, as it sent it
        return orjson.dumps(text_completion(completion))

    @staticmethod
    def stream(ctx: RequestContext, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return relay(pieces)

    @staticmethod
    def cached(ctx: RequestContext, body: bytes) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
        completion = text_completion(orjson.loads(body))
        if not ctx.stream:
            return orjson.dumps(completion), None
        return None, _replay(completion, ctx.include_usage)

    @staticmethod
    def error(exc: GatewayError) -> tuple[int, bytes]:
        return exc.status, exc.to_json()


DOOR = CompletionsDoor()
