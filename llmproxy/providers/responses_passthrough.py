"""OpenAI Responses in, OpenAI Responses out: an OpenAI model behind the Responses front door.

The client's bytes go to OpenAI's own /v1/responses unchanged when nothing needs rewriting (else
only `model`, and a conversation the gateway stored replacing `previous_response_id`); the answer
and the stream come back as OpenAI sent them. On the way the gateway reads the answer (or, in a
stream, the lifecycle events: response.completed / incomplete / failed, error) into the internal
completion, for usage, cost, the cache and the conversation store. One instance per request: it
holds that request's body and, once answered, OpenAI's Response object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest, Usage
from ..errors import GatewayError, UpstreamError
from ..registry import ModelEntry
from . import chat, openai
from .base import StreamState, UpstreamRequest
from .sse import SSEFramer, encode

RELAYS_ANSWER = True
_ENDS = (b"event: response.completed", b"event: response.incomplete", b"event: response.failed", b"event: error")
# incomplete_details.reason -> the chat finish_reason
FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


class Passthrough:
    """The adapter a Responses request uses for providers of kind "openai"."""

    __slots__ = ("body", "raw", "changes", "answer")
    RELAYS_ANSWER = RELAYS_ANSWER

    def __init__(self, body: dict[str, Any], raw: bytes, changes: dict[str, Any] | None = None) -> None:
        self.body, self.raw, self.changes = body, raw, changes
        self.answer: dict[str, Any] | None = None  # OpenAI's Response object, once it came

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        payload = self.raw
        if self.changes is not None or self.body["model"] != model.provider_model:
            body = {**self.body, **(self.changes or {}), "model": model.provider_model}
            if self.changes:  # the stored conversation is in `input` now: OpenAI must not look the id up
                body.pop("previous_response_id", None)
            payload = orjson.dumps(body)
        headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
        if creds.api_key is not None:
            headers["authorization"] = "Bearer " + creds.api_key.value
        if creds.headers:
            headers.update(creds.headers)
        return UpstreamRequest(creds.base_url + "/responses", headers, payload)

    def parse_response(self, body: bytes, model: ModelEntry) -> ChatCompletion:
        """The internal completion (usage, cost, cache); the client gets `body` itself."""
        try:
            response = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{model.provider} sent a response that is not JSON") from None
        if not isinstance(response, dict) or not isinstance(response.get("output"), list):
            if isinstance(response, dict) and isinstance(response.get("error"), dict):
                raise openai.map_error(500, body, {}, provider=model.provider)
            raise UpstreamError(f"{model.provider} sent a response without output")
        self.answer = response
        return completion(response, model.id)

    @staticmethod
    def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = openai.NAME) -> GatewayError:
        return openai.map_error(status, body, headers, provider=provider)

    def relay_stream(self, chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        return self._relay(chunks, model, state)

    async def _relay(self, chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        """Complete events out as they come; the end, its usage and the final Response learnt on the way."""
        framer = SSEFramer()
        async for chunk in chunks:
            ready = framer.feed(chunk)
            if ready:
                if any(end in ready for end in _ENDS):
                    self._learn(ready, state, model)
                yield ready
        rest = framer.flush()
        if rest:
            self._learn(rest, state, model)
            yield rest
        if not state.completed and not state.errored:
            yield encode(UpstreamError(f"{model.provider} stream ended before it was complete").to_dict())

    def _learn(self, ready: bytes, state: StreamState, model: ModelEntry) -> None:
        for block in ready.split(b"\n\n"):
            if not block.startswith(_ENDS):
                continue
            if block.startswith((b"event: response.failed", b"event: error")):
                state.errored = True
                continue
            start = block.find(b"\ndata:")
            try:
                response = orjson.loads(block[start + 6 :]).get("response") if start >= 0 else None
            except (orjson.JSONDecodeError, AttributeError):
                response = None
            if isinstance(response, dict):
                self.answer = response
                done = completion(response, model.id)
                state.usage = done["usage"]
                state.finish_reason = done["choices"][0]["finish_reason"]
            state.completed = True


def completion(response: dict[str, Any], model: str) -> ChatCompletion:
    """A Response object as the internal chat completion: its text, function calls and reasoning
    summary in one assistant message, its usage in chat's terms."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    texts.append(str(part.get("refusal") or ""))
        elif kind == "function_call":
            calls.append(
                chat.tool_call(
                    str(item.get("call_id") or item.get("id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
            )
        elif kind == "reasoning":
            reasoning += [str(s.get("text") or "") for s in item.get("summary") or () if isinstance(s, dict)]
    incomplete = response.get("incomplete_details") or {}
    finish = "tool_calls" if calls else FINISH.get(str(incomplete.get("reason")), "stop") if incomplete else "stop"
    choice = chat.message_choice(
        0, "".join(texts) if texts or not calls else None, calls, finish, "\n".join(reasoning) or None
    )
    created = response.get("created_at")
    return chat.completion(
        str(response.get("id") or ""),
        str(response.get("model") or model),
        [choice],
        usage(response.get("usage")),
        int(created) if isinstance(created, (int, float)) else None,
    )


def usage(value: Any) -> Usage | None:
    """Responses usage -> chat usage."""
    if not isinstance(value, dict):
        return None
    inputs = value.get("input_tokens_details") or {}
    outputs = value.get("output_tokens_details") or {}
    out = chat.usage(
        int(value.get("input_tokens") or 0),
        int(value.get("output_tokens") or 0),
        cached=int(inputs.get("cached_tokens") or 0),
        reasoning=int(outputs.get("reasoning_tokens") or 0),
    )
    return out
