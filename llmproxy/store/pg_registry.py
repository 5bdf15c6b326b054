"""The registry's version history on PostgreSQL: every models.json version any gateway wrote, and
the lock that lets one refresh or rollback run at a time across the whole deployment.

Each gateway keeps its own registry directory (registry/versions.py writes it); this table is the
deployment's record of which version is current. A writer publishes the version it wrote; the
others copy any newer version into their own directory under the same number and swap it in.
`PostgresRegistryHistory` answers store.protocols.RegistryHistory.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .pg_sql import affected

CHANGES_CHANNEL = "llmproxy_registry"
_LOCK = 0x6C6C7267  # "llrg": the advisory lock id of registry writers

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE registry_versions (
        version BIGINT PRIMARY KEY,
        document BYTEA NOT NULL,
        published_at DOUBLE PRECISION NOT NULL
    );
    """,
)


class PostgresRegistryHistory:
    """The registry_versions table over the shared pool (store.postgres.PostgresStore.pool)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        """Try to become the deployment's one registry writer without waiting; yields whether it
        did. The advisory lock belongs to a connection held until the block ends, so a writer that
        dies releases it with its connection."""
        async with self.pool.acquire() as db:
            locked = bool(await db.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK))
            try:
                yield locked
            finally:
                if locked:
                    await db.execute("SELECT pg_advisory_unlock($1)", _LOCK)

    async def publish(self, version: int, document: bytes) -> bool:
        """Record `version` (its models.json bytes) and tell the other gateways; False when that
        version number is already taken (the first writer's document stands)."""
        async with self.pool.acquire() as db, db.transaction():
            status = await db.execute(
                "INSERT INTO registry_versions (version, document, published_at) "
                "VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
                version,
                document,
                time.time(),
            )
            stored = affected(status) == 1
            if stored:
                await db.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, str(version))
        return stored

    async def latest(self) -> int:
        """The newest published version; 0 when none was."""
        async with self.pool.acquire() as db:
            return int(await db.fetchval("SELECT coalesce(max(version), 0) FROM registry_versions"))

    async def read(self, version: int) -> bytes | None:
        async with self.pool.acquire() as db:
            value = await db.fetchval("SELECT document FROM registry_versions WHERE version = $1", version)
        return bytes(value) if value is not None else None
