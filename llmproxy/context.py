"""RequestContext: what the pipeline's stages read and write, and the payload type aliases.

OpenAI payloads stay plain dicts inside the gateway; the aliases say which one a signature means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ProviderSettings
    from .registry import ModelEntry

ChatRequest = dict[str, Any]
ChatCompletion = dict[str, Any]
ChatChunk = dict[str, Any]
Usage = dict[str, Any]

# The up-front token estimate of a request is its body's size / BYTES_PER_TOKEN, until the
# provider reports the real usage (rate limits reserve it, cost estimates start from it).
BYTES_PER_TOKEN = 4

# The client API a request came in through (RequestContext.endpoint): the router serves each only
# with models of the modes it accepts, the cache keeps their answers apart, metrics label by it.
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
COMPLETIONS = "/v1/completions"


@dataclass(slots=True)
class Principal:
    """Who is calling: the master key, a virtual key or a JWT subject."""

    kind: str  # "anonymous" (loopback, no master key), "master", "key", "jwt"
    key_id: str | None = None
    user: str | None = None
    role: str = "admin"
    allowed_models: tuple[str, ...] | None = None  # None: every model; "prefix*" matches a prefix
    rpm: int | None = None  # requests/min; None: unlimited
    tpm: int | None = None  # tokens/min; None: unlimited
    budget_usd: float | None = None  # spend cap of the key; None: none
    budget_period: str = "total"  # "day", "month" (UTC) or "total"
    strategy: str | None = None  # the key's own "auto" strategy (cost, quality, latency); None: the default
    complexity: str | None = None  # the key's own complexity for "auto" (simple, medium, complex); None: classify


def model_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Whether a Principal's allowed_models admits `name`: an exact name, or "prefix*"."""
    for pattern in allowed:
        if pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return True
    return False


@dataclass(slots=True)
class Attempt:
    """One try at one candidate, for the log line and fallback accounting."""

    provider: str
    model: str
    status: int
    error: str | None = None
    ms: float = 0.0
    retryable: bool = False
    retry_after_s: float | None = None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    body: ChatRequest
    raw_body: bytes | None = None  # the client's body as it came (adapters may send it on unchanged)
    # A front door's own adapters by provider kind, for the providers that speak the client's format
    # (they get raw_body); None: the chat adapters. Other kinds get the internal request only.
    adapters: dict[str, Any] | None = None
    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)
    client_headers: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    requested_model: str = ""
    stream: bool = False
    include_usage: bool = False  # what the client asked for; upstream is always asked
    strategy: str | None = None
    complexity: str | None = None
    complexity_score: float | None = None
    complexity_confident: bool = True
    candidates: list[tuple[ProviderSettings, ModelEntry]] = field(default_factory=list)
    escalation: list[tuple[ProviderSettings, ModelEntry]] = field(default_factory=list)  # auto:cascade's next tier
    cascade: Any = None  # cascade.FirstAttempt when the cheaper tier's answer was not used
    model: ModelEntry | None = None  # the model that answered (or was last tried)
    provider: ProviderSettings | None = None
    attempts: list[Attempt] = field(default_factory=list)
    cache_status: str = "bypass"
    served_model: str | None = None  # a cache hit: the model and provider that gave the answer it replays
    served_provider: str | None = None
    cache_key: str | None = None  # set by the cache stage when this request's answer may be stored
    cache_id: int = 0  # ...with its first 64 bits (the row id on disk)
    cache_ttl_s: float = 0.0  # ...and for how long
    response_body: bytes | None = None  # the provider's answer as sent, when it goes to the client unchanged
    usage: Usage | None = None
    finish_reason: str | None = None
    cost_usd: float | None = None
    saved_usd: float | None = None  # what a cache hit saved (its cost_usd is 0)
    upstream_s: float = 0.0  # time spent waiting on the provider, excluded from overhead
    first_token_s: float | None = None
    status: int = 200
    error_type: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    rate_hold: Any = None  # the ratelimit stage's reservation, settled in record
    admission: Any = None  # a shared limit check prepared, not yet sent (ratelimit_shared.py)
    endpoint: str = CHAT  # the client API it came through (CHAT, EMBEDDINGS, COMPLETIONS)

    def overhead_ms(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        return max(0.0, (now - self.started - self.upstream_s) * 1000.0)
