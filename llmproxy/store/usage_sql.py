"""The usage log's tables and queries (SQLite)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

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

COLUMNS = ("ts", "request_id", "key_id", "user", "requested_model", "model", "provider", "strategy",
           "complexity", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
           "cost_usd", "latency_ms", "ttft_ms", "overhead_ms", "cache", "attempts", "status", "error_type")
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


async def insert_usage(db: aiosqlite.Connection, rows: Sequence[Sequence[Any]]) -> None:
    await db.executemany(_INSERT, rows)
    await db.commit()


async def count_usage(db: aiosqlite.Connection) -> int:
    async with db.execute("SELECT count(*) FROM usage") as cur:
        (n,) = await cur.fetchone()
    return int(n)
