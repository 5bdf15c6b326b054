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
from .base import StreamState, UpstreamRequest, retry_after
from .sse import DONE, encode

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"   # ends in /v1, as the official SDK takes it

RELAYS_ANSWER = True   # parse_response changes nothing: the provider's bytes can go to the client as they are
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_FINISH = b'"finish_reason":"'


def build_request(req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool,
                  raw: bytes | None = None) -> UpstreamRequest:
    """`raw` is the client's body as it came: sent on untouched when the model name stays and the
    stream already asks for usage, so upstream sees exactly what the client wrote."""
    options = req.get("stream_options")
    asks_usage = isinstance(options, dict) and options.get("include_usage") is True
    if raw is not None and req["model"] == model.provider_model and (not stream or asks_usage):
        payload = raw
    else:
        body = dict(req)
        body["model"] = model.provider_model
        if stream and not asks_usage:
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
        payload = orjson.dumps(body)
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    if creds.api_key is not None:
        headers["authorization"] = "Bearer " + creds.api_key.value
    if creds.headers:
        headers.update(creds.headers)
    return UpstreamRequest(creds.base_url + "/chat/completions", headers, payload)


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
    buf = b""
    async for chunk in chunks:
        buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            continue
        ready, buf = buf[:end + 2], buf[end + 2:]
        out = _inspect(ready, state)
        if out:
            yield out
    if buf.strip():
        out = _inspect(buf + b"\n\n", state)
        if out:
            yield out
    if not state.completed and not state.errored:
        yield encode(UpstreamError(f"{model.provider} stream ended before it was complete").to_dict())


def _inspect(ready: bytes, state: StreamState) -> bytes:
    pos = ready.rfind(_FINISH)
    if pos >= 0:
        start = pos + len(_FINISH)
        state.finish_reason = ready[start:ready.find(b'"', start)].decode()
    if DONE[:-2] in ready:
        state.completed = True
    if b'data: {"error"' in ready:
        state.errored = True
    if not any(m in ready for m in _USAGE_MARKERS):
        return ready
    kept = []
    for event in ready.split(b"\n\n"):
        if event and any(m in event for m in _USAGE_MARKERS) and event.startswith(b"data:"):
            try:
                payload = orjson.loads(event[5:])
            except orjson.JSONDecodeError:
                kept.append(event)
                continue
            if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                state.usage = payload["usage"]
                if not state.include_usage and not payload.get("choices"):
                    continue   # the usage chunk the gateway asked for on its own behalf
        if event:
            kept.append(event)
    return b"\n\n".join(kept) + b"\n\n" if kept else b""


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
