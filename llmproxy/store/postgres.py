"""PostgreSQL store (asyncpg): the connection pool and the schema migrations.

The PostgreSQL twin of sqlite.py, for deployments of several processes or machines. Each component
(usage, keys, registry, responses) owns its tables and queries in its own module (pg_usage.py, ...) and its
migrations; versions are kept per component in `schema_versions`, as for SQLite. Migrations run
under an advisory lock, so gateways starting together never apply one twice.

The pool reconnects by itself: when the server goes away, calls fail fast (the caller keeps its
in-memory state and retries later) and the next call after the server is back gets a new connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from . import pg_keys, pg_registry, pg_responses, pg_usage

# component -> ordered migration scripts; never edit a shipped one, append a new one.
MIGRATIONS: dict[str, tuple[str, ...]] = {
    "usage": pg_usage.MIGRATIONS,
    "keys": pg_keys.MIGRATIONS,
    "registry": pg_registry.MIGRATIONS,
    "responses": pg_responses.MIGRATIONS,
}
_MIGRATION_LOCK = 0x6C6C6D70  # "llmp": one advisory lock id for every llmproxy schema change
# What a call raises when the server is away (down, restarting, unreachable), as opposed to a
# query's own error: the app answers those 503, never 500.
UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
)
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 10.0
log = logging.getLogger("llmproxy.store")


class DatabaseUnavailable(RuntimeError):
    """The database could not be opened at start-up; the message names where (never the password)."""


class PostgresStore:
    """The pool every PostgreSQL store class of one process shares."""

    def __init__(self, pool: Any, url: str) -> None:
        self.pool = pool
        self._url = url

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresStore:
        """Connect (failing at startup, with the server's message, when it cannot) and migrate."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                init=pg_usage.prepare_connection,
                server_settings={"application_name": "llmproxy"},
            )
        except (*UNREACHABLE, OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(
                f"cannot open the PostgreSQL database {where(url)} (LLMPROXY_DATABASE_URL / database.url): {exc}"
            ) from None
        store = cls(pool, url)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self.pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            for component, scripts in MIGRATIONS.items():
                version = await db.fetchval("SELECT version FROM schema_versions WHERE component = $1", component) or 0
                for number, script in enumerate(scripts[version:], start=version + 1):
                    await db.execute(script)
                    await db.execute(
                        "INSERT INTO schema_versions (component, version) VALUES ($1, $2) "
                        "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                        component,
                        number,
                    )
                    log.info("postgresql schema migrated", extra={"component": component, "version": number})

    async def follow(self, channel: str, on_notify: Callable[[], None], *, retry_s: float = 1.0) -> None:
        """Call `on_notify` on every NOTIFY on `channel`, and once each time listening (re)starts,
        since changes may have been made while it was not. Holds a connection of its own outside
        the pool; reconnects every `retry_s` while the server is away. Runs until cancelled."""
        while True:
            try:
                db = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(retry_s)
                continue
            lost = asyncio.Event()
            try:
                db.add_termination_listener(lambda _db, lost=lost: lost.set())
                await db.add_listener(channel, lambda *_: on_notify())
                on_notify()
                await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            finally:
                db.terminate()
            await asyncio.sleep(retry_s)

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=1.0) as db:
                return bool(await db.fetchval("SELECT 1", timeout=1.0) == 1)
        except Exception:  # noqa: BLE001 - readiness only asks yes or no
            return False


def where(url: str) -> str:
    """host:port/database of a database URL, for messages: the user and password left out."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path or ''}"
