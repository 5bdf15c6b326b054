"""Legacy completions (POST /completions) upstream: the client's request passed through to a provider
that serves the legacy API, or the internal chat request sent to the provider's chat adapter.

Who serves it as it is: OpenAI's completion models (registry mode "completion": gpt-3.5-turbo-instruct,
davinci-002, babbage-002) and any OpenAI-compatible server (vLLM, Ollama, llama.cpp serve
/v1/completions for every model). Everyone else gets the chat translation the front door made
(the prompt as one user message); what only the legacy API can do (`echo`, `logprobs`, `suffix`,
`best_of`, several prompts, token prompts) is refused there with a 400 naming the field, and the
route's next candidate may still take it as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest
from ..errors import GatewayError, InvalidRequest, UpstreamError
from ..registry import ModelEntry
from . import ADAPTERS, openai
from .base import Adapter, StreamState, UpstreamRequest

# Fields of the internal request that only a legacy completions server can honour (the front door
# keeps them there only when they ask for something).
LEGACY_ONLY = ("echo", "logprobs", "suffix", "best_of", "prompt")
_WHY = {
    "echo": "echo (the prompt repeated in the answer)",
    "logprobs": "logprobs",
    "suffix": "suffix",
    "best_of": "best_of",
    "prompt": "a prompt of several texts or of token ids",
}


class LegacyTarget:
    """The completions door's adapter for one provider kind: the client's legacy request passed
    through where the model serves it, the internal chat request otherwise. One per request (it
    holds that request's body)."""

    __slots__ = ("kind", "body", "chat", "RELAYS_ANSWER", "NAME", "DEFAULT_BASE_URL")

    def __init__(self, kind: str, body: dict[str, Any]) -> None:
        self.kind, self.body = kind, body
        self.chat: Adapter = ADAPTERS[kind]
        self.RELAYS_ANSWER = self.chat.RELAYS_ANSWER  # a passthrough answer is relayed too (openai kinds)
        self.NAME, self.DEFAULT_BASE_URL = self.chat.NAME, self.chat.DEFAULT_BASE_URL

    def passes(self, model: ModelEntry) -> bool:
        """Whether this model gets the client's legacy request as it is."""
        return self.kind == "openai-compatible" or (self.kind == "openai" and model.mode == "completion")

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        if self.passes(model):
            return passthrough_request(self.body, raw, model, creds, stream=stream)
        for name in LEGACY_ONLY:
            if name in req:
                raise InvalidRequest(
                    f"the model '{model.id}' answers through chat, which has no {_WHY[name]}; "
                    "use a model that serves the legacy completions API (OpenAI's "
                    "gpt-3.5-turbo-instruct, an OpenAI-compatible server)",
                    param=name,
                )
        return self.chat.build_request(req, model, creds, stream=stream, raw=None)

    def parse_response(self, body: bytes, model: ModelEntry) -> ChatCompletion:
        return parse_text_completion(body, model) if self.passes(model) else self.chat.parse_response(body, model)

    def relay_stream(self, chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        # OpenAI's relay reads finish_reason, usage and [DONE] the same way in text_completion chunks.
        return (openai.relay_stream if self.passes(model) else self.chat.relay_stream)(chunks, model, state)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], *, provider: str = "") -> GatewayError:
        return self.chat.map_error(status, body, headers, provider=provider or self.kind)


def passthrough_request(
    body: dict[str, Any], raw: bytes | None, model: ModelEntry, creds: ProviderSettings, *, stream: bool
) -> UpstreamRequest:
    """The client's legacy request to `{base}/completions`, untouched when the model name stays and a
    stream already asks for usage (the gateway always wants it, to record and charge)."""
    return openai.request_to("/completions", body, model, creds, stream=stream, raw=raw)


def parse_text_completion(body: bytes, model: ModelEntry) -> ChatCompletion:
    """A legacy answer (object "text_completion"), checked for its choices."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model.provider} sent a completion that is not JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            raise openai.map_error(500, body, {}, provider=model.provider)
        raise UpstreamError(f"{model.provider} sent a completion without choices")
    answer["object"] = "text_completion"  # some compatible servers leave it out; the door reads it
    return answer
