"""The response cache's persistent tier on SQLite: its table, and a backend with its own connections.

The cache opens two connections of its own on the gateway's database file: one that reads (a hit
that fell out of memory) and one that writes (batched inserts, purges, the sweep). In WAL mode a
reader never waits on a writer, so a long batch of usage rows or cache inserts cannot hold up a
lookup. Rows are keyed by the first 64 bits of the cache key (a rowid lookup, the fastest SQLite
has); the full key is kept to rule out a collision.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .transactions import write_transaction

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cache_entries (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        tenant TEXT NOT NULL,
        model TEXT NOT NULL,
        served_model TEXT,
        provider TEXT,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        cost_usd REAL,
        size INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX cache_entries_expires ON cache_entries (expires);
    CREATE INDEX cache_entries_created ON cache_entries (created);
    CREATE INDEX cache_entries_model ON cache_entries (model);
    CREATE INDEX cache_entries_tenant ON cache_entries (tenant);
    """,
)

# (id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body)
RESTRICTED = "|models:"   # as cache.py names a model restriction in a tenant
_TENANTS_PER_STATEMENT = 300   # three parameters each, well under SQLite's limit
Row = tuple[int, str, str, str, "str | None", "str | None", float, float, "float | None", int, bytes]
COLUMNS = "id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body"
_INSERT = f"INSERT OR REPLACE INTO cache_entries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {COLUMNS} FROM cache_entries WHERE id = ?"
# Oldest first until what is left fits: a running total over the entries, newest first.
_TRIM = """
DELETE FROM cache_entries WHERE id IN (
    SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY created DESC, id) AS running FROM cache_entries)
    WHERE running > ?)
"""


class SQLiteCacheStore:
    """The persistent tier of the response cache. Every method may raise; the cache treats a failure
    as a miss (reads) or a lost write (writes), never as a failed request."""

    def __init__(self, reader: aiosqlite.Connection, writer: aiosqlite.Connection) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, path: Path) -> SQLiteCacheStore:
        """Connections on an existing database whose migrations have run (SQLiteStore.open)."""
        reader = await aiosqlite.connect(path, timeout=0.05)
        writer = await aiosqlite.connect(path, timeout=5.0)
        # The reader must never queue behind a lock for long: a slow read is only a miss.
        await reader.execute("PRAGMA busy_timeout=50")
        await writer.execute("PRAGMA busy_timeout=5000")
        await writer.execute("PRAGMA synchronous=NORMAL")
        return cls(reader, writer)

    async def get(self, id_: int) -> Row | None:
        async with self._reader.execute(_SELECT, (id_,)) as cur:
            row = await cur.fetchone()
        return tuple(row) if row is not None else None  # type: ignore[return-value]

    async def put_many(self, rows: Sequence[Row]) -> None:
        async with write_transaction(self._writer):
            await self._writer.executemany(_INSERT, rows)

    async def ids(self, now: float) -> list[int]:
        """The ids of the live entries, for the in-memory index of what the disk holds."""
        async with self._reader.execute("SELECT id FROM cache_entries WHERE expires > ?", (now,)) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def purge(self, *, key: str | None = None, model: str | None = None,
                    tenants: Collection[str] | None = None) -> int:
        """Delete the entries matching every given filter (all entries when none is given); a
        tenant matches with or without a model restriction (`<tenant>|models:...`)."""
        if tenants is not None and not tenants:
            return 0
        where, args = _where(key=key, model=model)
        families = sorted(tenants) if tenants is not None else [None]
        removed = 0
        async with write_transaction(self._writer):
            for start in range(0, max(len(families), 1), _TENANTS_PER_STATEMENT):
                chunk = families[start:start + _TENANTS_PER_STATEMENT]
                sql, params = where, args
                if tenants is not None:
                    # a range on the indexed column: every string that starts with "<t>|models:"
                    # sorts from it up to "<t>|models;" (';' follows ':')
                    either = " OR ".join("tenant = ? OR (tenant >= ? AND tenant < ?)" for _ in chunk)
                    sql = f"{where} AND ({either})" if where else f" WHERE ({either})"
                    params = (*args, *(v for t in chunk for v in (t, t + RESTRICTED, t + RESTRICTED[:-1] + ";")))
                cur = await self._writer.execute(f"DELETE FROM cache_entries{sql}", params)
                removed += max(cur.rowcount, 0)
        return removed

    async def sweep(self, now: float, max_bytes: int) -> int:
        """Drop expired entries, then the oldest ones while the table holds more than max_bytes."""
        async with write_transaction(self._writer):
            cur = await self._writer.execute("DELETE FROM cache_entries WHERE expires <= ?", (now,))
            removed = max(cur.rowcount, 0)
            cur = await self._writer.execute(_TRIM, (max_bytes,))
            removed += max(cur.rowcount, 0)
        return removed

    async def totals(self, now: float) -> tuple[int, int]:
        """(live entries, their bytes) on disk."""
        async with self._reader.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM cache_entries WHERE expires > ?", (now,)) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()


def _where(**filters: str | None) -> tuple[str, tuple[Any, ...]]:
    given = [(name, value) for name, value in filters.items() if value is not None]
    if not given:
        return "", ()
    # served_model too: purging "gpt-4o" should also drop what "auto" answered with gpt-4o.
    parts = ["(model = ? OR served_model = ?)" if name == "model" else f"{name} = ?" for name, _ in given]
    args: list[Any] = []
    for name, value in given:
        args.extend((value, value) if name == "model" else (value,))
    return " WHERE " + " AND ".join(parts), tuple(args)
