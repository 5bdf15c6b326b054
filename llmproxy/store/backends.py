"""The one place that picks the storage backend from the settings: `open_stores(settings)` returns
the store objects every other module talks to through store/protocols.py, without knowing which
backend answers.

    no database URL (the default)   SQLite file <data_dir>/llmproxy.db for everything, one process
    database.url = postgresql://... PostgreSQL (asyncpg pool) for usage, identity and stored
                                    responses, shared by every gateway process; the SQLite file keeps
                                    only what is local to a process (the response cache's disk tier)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from .keys_sql import KeysDB
from . import pg_keys, pg_registry
from .pg_keys import PostgresKeysStore
from .pg_registry import PostgresRegistryHistory
from .pg_responses import PostgresResponsesStore
from .pg_usage import PostgresUsageStore
from .postgres import UNREACHABLE, PostgresStore
from .protocols import KeysStore, RegistryHistory, ResponsesStore, UsageStore
from .responses_sql import SQLiteResponsesStore
from .sqlite import SQLiteStore
from .usage_sql import SQLiteUsageStore


DATABASE_AWAY = UNREACHABLE  # the exceptions that mean "the shared database cannot be reached now"


@dataclass(slots=True)
class Stores:
    """What a gateway (or the CLI) stores through, opened together and closed together."""

    backend: str  # "sqlite" or "postgresql": for logs, /readyz and /metrics only
    usage: UsageStore  # the usage log: batch writes, retention, reports, spend
    keys: KeysStore  # keys, users, provider credentials, audit
    local: SQLiteStore  # this process's SQLite file (the cache's disk tier lives beside it)
    responses: ResponsesStore  # stored Responses API answers
    _ping: Callable[[], Awaitable[bool]]
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _shared: PostgresStore | None = None
    # The deployment's published registry versions; None for one process (its files are the history).
    registry: RegistryHistory | None = None

    @property
    def local_path(self) -> Path:
        return self.local.path

    async def ping(self) -> bool:
        """Whether the shared database answers now (readiness)."""
        return await self._ping()

    def watch_changes(self, on_change: Callable[[], None], *, what: str = "identity") -> None:
        """Call `on_change` soon after another process changes keys, users or credentials
        (`what` "identity") or publishes a registry version ("registry"), on PostgreSQL by
        LISTEN/NOTIFY. Only a hint: callers still poll, which is all the SQLite file offers."""
        if self._shared is None:
            return
        channel = pg_registry.CHANGES_CHANNEL if what == "registry" else pg_keys.CHANGES_CHANNEL
        task = asyncio.create_task(self._shared.follow(channel, on_change), name=f"store-changes-{what}")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self._closers.append(stop)

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()
        self._closers.clear()


async def open_stores(settings: Settings) -> Stores:
    """Open the configured backend (migrating its schema) and the process's local SQLite file."""
    local = await SQLiteStore.open(settings.data_dir / "llmproxy.db")
    closers: list[Callable[[], Awaitable[None]]] = [local.close]
    try:
        url = settings.database.url
        if url is None:
            usage = await SQLiteUsageStore.open(local.path)
            closers.append(usage.close)
            # The identity tables on a connection of their own: their transactions are never split
            # by a usage batch committing on the shared one.
            identity = await SQLiteStore.open(local.path)
            closers.append(identity.close)
            responses = await SQLiteResponsesStore.open(local.path)
            closers.append(responses.close)
            return Stores("sqlite", usage, KeysDB(identity.db), local, responses, local.ping, closers)
        shared = await PostgresStore.open(url.value, max_size=settings.database.pool_size)
        closers.append(shared.close)
        return Stores(
            "postgresql",
            PostgresUsageStore(shared.pool),
            PostgresKeysStore(shared.pool),
            local,
            PostgresResponsesStore(shared.pool),
            shared.ping,
            closers,
            shared,
            PostgresRegistryHistory(shared.pool),
        )
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
