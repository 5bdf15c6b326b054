"""Stored Responses API answers on SQLite: their table, and `SQLiteResponsesStore`, which owns every
query on it (it implements store.protocols.ResponsesStore).

One row per stored response: the Response object and the conversation it answered, as the JSON
bytes the gateway already has (a StoredResponse's fields, in its order, are the row's). Rows go in
in batches, many per statement, on a writer thread (executemany's one statement per row handed the
GIL back and forth with the event loop's thread at every row); a tenant's row is found by its id,
and a query for another tenant's id finds nothing. Retention deletes by age, oldest first.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..background import writer_thread
from .cache_sql import connect_writer, transaction
from .records import StoredResponse

T = TypeVar("T")

# Never edit a shipped migration; append a new one.
MIGRATIONS: tuple[str, ...] = (
    # Rows in append order (seq). Response ids start with their time (the gateway's, and OpenAI's
    # own), so the unique index on them grows at its end instead of dirtying a random leaf page
    # per row at every batch.
    """
    CREATE TABLE responses (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        created REAL NOT NULL,
        model TEXT NOT NULL,
        response BLOB NOT NULL,
        items BLOB NOT NULL
    );
    CREATE UNIQUE INDEX responses_id ON responses (id);
    CREATE INDEX responses_created ON responses (created);
    """,
)

_INSERT = "INSERT OR REPLACE INTO responses (id, tenant, created, model, response, items) VALUES (?, ?, ?, ?, ?, ?)"
_GET = "SELECT id, tenant, created, model, response, items FROM responses WHERE id = ? AND tenant = ?"
_DELETE = "DELETE FROM responses WHERE id = ? AND tenant = ?"
_DELETE_OLD = (
    "DELETE FROM responses WHERE seq IN (SELECT seq FROM responses WHERE created < ? ORDER BY created LIMIT ?)"
)
ROWS_PER_INSERT = 256  # a power of two; 6 values a row, well under SQLite's 32766 per statement
# Many rows per statement (the writer thread gives the GIL back around each one); power-of-two sizes
# only, so the statement cache holds a handful of programs.
_INSERTS = {1 << n: _INSERT + ", (?, ?, ?, ?, ?, ?)" * ((1 << n) - 1) for n in range(ROWS_PER_INSERT.bit_length())}


class SQLiteResponsesStore:
    """The stored responses' queries: reads over an aiosqlite connection, writes (batches, deletes,
    retention) on a thread of its own over a plain sqlite3 connection, one call per transaction, as
    the usage log and the cache's disk tier write."""

    def __init__(self, db: aiosqlite.Connection, writer: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self.db = db
        self._writer = writer
        self._thread = thread

    @classmethod
    async def open(cls, path: Path) -> SQLiteResponsesStore:
        """On a database whose migrations have run (SQLiteStore.open)."""
        db = await aiosqlite.connect(path, timeout=5.0)
        await db.execute("PRAGMA busy_timeout=5000")
        thread = writer_thread("llmproxy-responses-writer")
        writer = await asyncio.get_running_loop().run_in_executor(thread, connect_writer, path)
        return cls(db, writer, thread)

    async def close(self) -> None:
        await self.db.close()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
        self._thread.shutdown()

    async def put_many(self, records: Sequence[StoredResponse]) -> None:
        await self._write(_put_many, records)

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        async with self.db.execute(_GET, (response_id, tenant)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredResponse(row[0], row[1], row[2], row[3], bytes(row[4]), bytes(row[5]))

    async def delete(self, tenant: str, response_id: str) -> bool:
        return await self._write(_count, _DELETE, (response_id, tenant)) > 0

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        total = 0
        while True:
            deleted = await self._write(_count, _DELETE_OLD, (cutoff_ts, batch))
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(0)  # let the batches in between two deletes

    def _write(self, work: Callable[..., T], *args: Any) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(self._thread, transaction, self._writer, work, *args)


def _put_many(db: sqlite3.Connection, rows: Sequence[StoredResponse]) -> None:
    start = 0
    while start < len(rows):
        size = min(ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
        db.execute(_INSERTS[size], [value for row in rows[start : start + size] for value in row])
        start += size


def _count(db: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> int:
    return max(db.execute(sql, args).rowcount, 0)
