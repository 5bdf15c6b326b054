"""SQLite store (WAL, one file in the data directory): schema, migrations and the queries.

aiosqlite runs every statement on its own thread, so the event loop never waits on the disk.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

# Each entry moves the schema one version forward (PRAGMA user_version); never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        user TEXT,
        requested_model TEXT,
        model TEXT,
        provider TEXT,
        strategy TEXT,
        complexity TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        cached_tokens INTEGER,
        reasoning_tokens INTEGER,
        cost_usd REAL,
        latency_ms REAL,
        ttft_ms REAL,
        overhead_ms REAL,
        cache TEXT,
        attempts INTEGER,
        status INTEGER,
        error_type TEXT
    );
    CREATE INDEX usage_ts ON usage (ts);
    CREATE INDEX usage_key_ts ON usage (key_id, ts);
    """,
)

USAGE_COLUMNS = ("ts", "request_id", "key_id", "user", "requested_model", "model", "provider", "strategy",
                 "complexity", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
                 "cost_usd", "latency_ms", "ttft_ms", "overhead_ms", "cache", "attempts", "status", "error_type")
_INSERT_USAGE = (f"INSERT INTO usage ({', '.join(USAGE_COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in USAGE_COLUMNS)})")


class SQLiteStore:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, timeout=5.0)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db, path)
        await store._migrate()
        return store

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> bool:
        try:
            async with self.db.execute("SELECT 1") as cur:
                return (await cur.fetchone()) == (1,)
        except Exception:  # noqa: BLE001 - readiness only asks yes or no
            return False

    async def insert_usage(self, rows: Sequence[Sequence[Any]]) -> None:
        await self.db.executemany(_INSERT_USAGE, rows)
        await self.db.commit()

    async def count_usage(self) -> int:
        async with self.db.execute("SELECT count(*) FROM usage") as cur:
            (n,) = await cur.fetchone()
        return int(n)
