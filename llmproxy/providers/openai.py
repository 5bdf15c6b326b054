"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM, OpenRouter, Groq...).

The request goes upstream as the client sent it (unknown fields included) with only the model name
swapped; the stream is relayed byte for byte, except that upstream is always asked for usage and
the usage chunk is dropped again when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest
from ..errors import GatewayError, UpstreamError, from_upstream_status
from ..registry import ModelEntry
from .base import StreamState, UpstreamRequest
from .retry_after import retry_after
from .sse import DONE, SSEFramer, encode

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # ends in /v1, as the official SDK takes it

RELAYS_ANSWER = True  # parse_response changes nothing: the provider's bytes can go to the client as they are


def build_request(
    req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
) -> UpstreamRequest:
    """`raw` is the client's body as it came: sent on untouched when the model name stays and the
    stream already asks for usage, so upstream sees exactly what the client wrote."""
    return request_to("/chat/completions", req, model, creds, stream=stream, raw=raw)


def request_to(
    path: str, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None
) -> UpstreamRequest:
    """A POST of `req` (or of `raw`, the client's own bytes, when nothing in it must change) to
    `{base}{path}`, a stream always asking for usage (the gateway records and charges it)."""
    options = req.get("stream_options")
    asks_usage = isinstance(options, dict) and options.get("include_usage") is True
    if raw is not None and req.get("model") == model.provider_model and (not stream or asks_usage):
        payload = raw
    else:
        body = dict(req)
        body["model"] = model.provider_model
        if stream and not asks_usage:
            body["stream_options"] = (
                {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
            )
        payload = orjson.dumps(body)
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    if creds.api_key is not None:
        headers["authorization"] = "Bearer " + creds.api_key.value
    if creds.headers:
        headers.update(creds.headers)
    return UpstreamRequest(creds.base_url + path, headers, payload)


def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
    try:
        completion = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model.provider} sent a response that is not JSON") from None
    if not isinstance(completion, dict) or "choices" not in completion:
        if isinstance(completion, dict) and isinstance(completion.get("error"), dict):
            raise map_error(500, body, {}, provider=model.provider)
        raise UpstreamError(f"{model.provider} sent a response without choices")
    return completion


async def relay_stream(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
    """Pass events through as they complete; learn usage and finish reason on the way."""
    framer = SSEFramer()
    async for chunk in chunks:
        ready = framer.feed(chunk)
        if ready:
            out = _inspect(ready, state)
            if out:
                yield out
    rest = framer.flush()
    if rest:
        out = _inspect(rest, state)
        if out:
            yield out
    if not state.completed and not state.errored:
        yield encode(UpstreamError(f"{model.provider} stream ended before it was complete").to_dict())


def _inspect(ready: bytes, state: StreamState) -> bytes:
    """Complete events in, the events to relay out; the state learns from them on the way.

    The bytes are searched, not parsed (this runs for every event of every stream), for keys
    followed by a colon with any JSON spacing: a string value can never be followed by a colon,
    so `"usage" :` is always a key, never text inside the content."""
    finish = _last_value(ready, b'"finish_reason"', _STRING)
    if finish >= 0:
        state.finish_reason = ready[finish + 1 : ready.find(b'"', finish + 1)].decode()
    if _DONE_EVENT in ready:
        state.completed = True
    if _last_value(ready, b'"usage"', _OBJECT) < 0 and _last_value(ready, b'"error"', _OBJECT_OR_STRING) < 0:
        return ready
    kept = []
    for event in ready.split(b"\n\n"):
        if event.startswith(b"data:") and (b'"usage"' in event or b'"error"' in event):
            try:
                payload = orjson.loads(event[5:])
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, dict):
                if payload.get("error"):
                    state.errored = True
                elif isinstance(payload.get("usage"), dict):
                    state.usage = payload["usage"]
                    if not state.include_usage and not payload.get("choices"):
                        continue  # the usage chunk the gateway asked for on its own behalf
        if event:
            kept.append(event)
    return b"\n\n".join(kept) + b"\n\n" if kept else b""


def _last_value(buf: bytes, key: bytes, starts: tuple[bytes, ...]) -> int:
    """Where the value of the last `key` in `buf` begins, if that value starts with one of `starts`
    (a quote for a string, a brace for an object), else -1."""
    end, size = len(buf), len(key)
    while (pos := buf.rfind(key, 0, end)) >= 0:
        i = pos + size
        if buf[i : i + 1] != b":":  # compact JSON is the common case: no loop for it
            while buf[i : i + 1] in _BLANKS:
                i += 1
            if buf[i : i + 1] != b":":
                end = pos
                continue
        i += 1
        value = buf[i : i + 1]
        while value in _BLANKS:
            i += 1
            value = buf[i : i + 1]
        if value in starts:
            return i
        end = pos
    return -1


_BLANKS = (b" ", b"\t")  # JSON spacing inside one data line (a line end would end the line)
_STRING, _OBJECT, _OBJECT_OR_STRING = (b'"',), (b"{",), (b"{", b'"')
_DONE_EVENT = DONE[:-2]


def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = NAME) -> GatewayError:
    message, code, param = f"HTTP {status}", None, None
    try:
        err = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        err = None
    if isinstance(err, dict):
        message = str(err.get("message") or message)
        code = err.get("code") if isinstance(err.get("code"), str) else None
        param = err.get("param") if isinstance(err.get("param"), str) else None
    elif isinstance(err, str):
        message = err
    return from_upstream_status(provider, status, message, retry_after=retry_after(headers), code=code, param=param)
