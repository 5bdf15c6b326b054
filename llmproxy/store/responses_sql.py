"""Stored Responses API answers on SQLite: their table, and `SQLiteResponsesStore`, which owns every
query on it (it implements store.protocols.ResponsesStore).

One row per stored response: the Response object and the conversation it answered, as the JSON
bytes the gateway already has. Rows go in in batches (the door's writer hands them over after the
answers went out); a tenant's row is found by its id, and a query for another tenant's id finds
nothing. Retention deletes by age, oldest first, in batches.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from .records import StoredResponse
from .transactions import Transactions

# Never edit a shipped migration; append a new one.
MIGRATIONS: tuple[str, ...] = (
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

_INSERT = ("INSERT OR REPLACE INTO responses (id, tenant, created, model, response, items) "
           "VALUES (?, ?, ?, ?, ?, ?)")
_GET = "SELECT id, tenant, created, model, response, items FROM responses WHERE id = ? AND tenant = ?"
_DELETE = "DELETE FROM responses WHERE id = ? AND tenant = ?"
_DELETE_OLD = "DELETE FROM responses WHERE seq IN (SELECT seq FROM responses WHERE created < ? ORDER BY created LIMIT ?)"


class SQLiteResponsesStore:
    """The stored responses' queries over a connection of its own (reads and writes; the writes
    take turns through its Transactions)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._transactions = Transactions(db)

    @classmethod
    async def open(cls, path: Path) -> SQLiteResponsesStore:
        """On a database whose migrations have run (SQLiteStore.open)."""
        db = await aiosqlite.connect(path, timeout=5.0)
        await db.execute("PRAGMA busy_timeout=5000")
        await db.execute("PRAGMA synchronous=NORMAL")
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    async def put_many(self, records: Sequence[StoredResponse]) -> None:
        async with self._transactions.write() as db:
            await db.executemany(_INSERT, [(r.id, r.tenant, r.created_at, r.model, r.response, r.items)
                                           for r in records])

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        async with self.db.execute(_GET, (response_id, tenant)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredResponse(row[0], row[1], row[2], row[3], bytes(row[4]), bytes(row[5]))

    async def delete(self, tenant: str, response_id: str) -> bool:
        async with self._transactions.write() as db:
            cur = await db.execute(_DELETE, (response_id, tenant))
            deleted = cur.rowcount
            await cur.close()
        return deleted > 0

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        total = 0
        while True:
            async with self._transactions.write() as db:
                cur = await db.execute(_DELETE_OLD, (cutoff_ts, batch))
                deleted = cur.rowcount
                await cur.close()
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(0)   # let the writer and the readers in between two deletes
