"""What the rest of the gateway asks of each store: one Protocol per component, implemented by the
SQLite classes (the embedded default) and the PostgreSQL ones (several processes).

    UsageStore   store/usage_sql.SQLiteUsageStore, store/pg_usage.PostgresUsageStore
                 the usage log, its roll-up and its reports
    KeysStore    store/keys_sql.KeysDB, store/pg_keys.PostgresKeysStore
                 keys, users, provider credentials, the audit log
    CacheBackend cache_tiers.py (SQLiteCacheStore in store/cache_sql.py)   the response cache's disk tier
    RegistryHistory store/pg_registry.PostgresRegistryHistory
                 the deployment's published registry versions (one process: the files are the history)
    ResponsesStore store/responses_sql.SQLiteResponsesStore, store/pg_responses.PostgresResponsesStore
                 stored Responses API answers

Only the calls made from outside store/ are here; opening and closing a store is the business of
store/backends.open_stores, the one place that picks a backend from the settings. Records crossing
this seam are in store/records.py. tests/test_store_protocols.py checks every class against these
structurally, tests/scale/test_store_backends.py their behaviour on both backends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from .records import AutoRouted, CredentialRow, KeyRecord, StoredResponse, UserRecord, Window


class UsageStore(Protocol):
    async def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        """One batch of usage rows (store.usage_sql.COLUMNS order) and the roll-up, atomically."""
        ...

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        """Retention: raw rows older than `cutoff_ts` deleted in batches; the roll-up stays."""
        ...

    async def spend_by_key(self, since_ts: float) -> dict[str, float]:
        """USD per key from the start of the UTC day holding `since_ts` (the budget check)."""
        ...

    async def aggregate(
        self,
        *,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        key_id: str | None = None,
        user: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Usage summed per group, and which table answered ("rollup" or "log")."""
        ...

    async def overview(self, by: str, window: Window, *, bucket_s: int = 0) -> dict[Any, dict[str, Any]]:
        """The dashboard's measures and p50/p99 latency per group ("all", "bucket", "model", "provider")."""
        ...

    async def auto_routed(self, window: Window, long_threshold: int | None) -> list[AutoRouted]:
        """Tokens and cost of `auto`-routed requests, on each side of a long-context threshold."""
        ...


class KeysStore(Protocol):
    async def audit(
        self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
    ) -> None: ...

    async def generation(self) -> int:
        """The change counter: it moves with every write, so another process sees a change by polling it."""
        ...

    async def keys(self) -> list[KeyRecord]: ...

    async def key(self, key_id: str) -> KeyRecord | None: ...

    async def insert_key(
        self,
        actor: str,
        key_id: str,
        digest: str,
        prefix: str,
        fields: dict[str, Any],
        *,
        max_per_owner: int | None = None,
    ) -> None: ...

    async def update_key(self, actor: str, key_id: str, fields: dict[str, Any]) -> bool: ...

    async def revoke_key(self, actor: str, key_id: str) -> None: ...

    async def rotate_key(self, actor: str, key_id: str, digest: str, prefix: str, grace_s: float) -> None: ...

    async def users(self) -> list[UserRecord]: ...

    async def insert_user(self, actor: str, name: str, password_hash: str, role: str) -> None: ...

    async def update_user(
        self,
        actor: str,
        name: str,
        *,
        password_hash: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> None: ...

    async def delete_user(self, actor: str, name: str) -> int: ...

    async def namespace_jwt_owners(self, namespace: str) -> int: ...

    async def credentials(self) -> list[CredentialRow]: ...

    async def vault_key_id(self) -> str | None: ...

    async def put_credential(
        self, actor: str, provider: str, ciphertext: bytes, vault_key_id: str, hint: str
    ) -> None: ...

    async def delete_credential(self, actor: str, provider: str) -> None: ...

    async def reencrypt(
        self, actor: str, old_key_id: str, new_key_id: str, rows: Iterable[tuple[str, bytes, int]]
    ) -> None: ...

    async def audit_entries(
        self, *, limit: int = 100, since: float | None = None, actor: str | None = None
    ) -> list[dict[str, Any]]: ...


class RegistryHistory(Protocol):
    def exclusive(self) -> AbstractAsyncContextManager[bool]:
        """Try to become the deployment's one registry writer, without waiting: yields whether it did."""
        ...

    async def publish(self, version: int, document: bytes) -> bool:
        """Record a version written (its models.json bytes); False when that number is taken."""
        ...

    async def latest(self) -> int:
        """The newest published version; 0 when none was."""
        ...

    async def read(self, version: int) -> bytes | None: ...


class ResponsesStore(Protocol):
    """Stored Responses API answers, each readable only by the tenant that made it."""

    async def put_many(self, records: Sequence[StoredResponse]) -> None:
        """One batch, atomically (a record whose id exists replaces it)."""
        ...

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, tenant: str, response_id: str) -> bool: ...

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        """Retention: records made before `cutoff_ts`, deleted in batches."""
        ...
