"""The records that stores hand out and take in: the same for every backend (SQLite today,
PostgreSQL next), so that nothing above store/ learns which one it talks to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class TooManyKeys(Exception):
    """The owner already holds as many live keys as allowed."""

    def __init__(self, owner: str, limit: int) -> None:
        super().__init__(owner)
        self.owner, self.limit = owner, limit


@dataclass(slots=True)
class KeySecret:
    hash: str
    prefix: str
    created_at: float
    expires_at: float | None  # set when the key was rotated: the old value's grace period ends here


@dataclass(slots=True)
class KeyRecord:
    id: str
    name: str
    owner: str | None
    role: str
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str
    expires_at: float | None
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    revoked_at: float | None
    strategy: str | None = None  # "auto" requests: cost, quality or latency; None: the default
    parent_id: str | None = None  # the user key that made this one: its budget binds this one too
    complexity: str | None = None  # "auto" requests: simple, medium or complex; None: the classifier decides
    secrets: list[KeySecret] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """What the admin API and the CLI show: everything but the key value (a prefix at most)."""
        current = [s for s in self.secrets if s.expires_at is None]
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "role": self.role,
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "expires_at": self.expires_at,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "revoked_at": self.revoked_at,
            "strategy": self.strategy,
            "parent_id": self.parent_id,
            "complexity": self.complexity,
            "prefix": current[0].prefix if current else None,
            "previous": [
                {"prefix": s.prefix, "expires_at": s.expires_at} for s in self.secrets if s.expires_at is not None
            ],
        }


@dataclass(slots=True)
class UserRecord:
    name: str
    password_hash: str
    role: str
    disabled: bool
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class CredentialRow:
    provider: str
    ciphertext: bytes
    vault_key_id: str
    version: int  # the generation that set this value: never repeats, kept by re-encryption
    hint: str
    created_at: float
    updated_at: float


class UsageRow(NamedTuple):
    """One finished request in the usage log: the usage table's columns, in order (the log line of
    the request is made from it too)."""

    ts: float  # when the request started (unix seconds)
    request_id: str
    key_id: str | None
    user: str | None
    requested_model: str
    model: str | None  # the model that answered (or was last tried)
    provider: str | None
    strategy: str | None
    complexity: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    ttft_ms: float | None
    overhead_ms: float
    cache: str  # hit, miss or bypass
    attempts: int
    status: int
    error_type: str | None
    saved_usd: float | None  # what a cache hit saved
    cache_write_tokens: int | None


class Window(NamedTuple):
    """Raw log rows in [since, until) (unix seconds), optionally of one key or one user."""

    since: float
    until: float
    key_id: str | None = None
    user: str | None = None


class AutoRouted(NamedTuple):
    """Tokens and cost of the successful, non-cached requests that `auto` routed, on one side of a
    long-context threshold."""

    long: bool
    requests: int
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    completion_tokens: int
    cost_usd: float


class StoredResponse(NamedTuple):
    """A Responses API answer kept for retrieve and previous_response_id: the Response object as
    the client got it, and the whole conversation it answered (the stored turns before it, then
    its own input) as a JSON array of items with ids."""

    id: str
    tenant: str
    created_at: float
    model: str
    response: bytes
    items: bytes
