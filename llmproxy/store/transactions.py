"""Write transactions that cannot leave a connection stuck.

`BEGIN IMMEDIATE` takes the write lock before anything is read, waiting on the busy timeout; a
deferred transaction that first reads and then writes fails at once, without waiting, whenever
another connection committed in between (SQLITE_BUSY_SNAPSHOT). Any failure rolls back: a
connection left inside a failed transaction would keep its stale snapshot, and every later write
on it would fail with "database is locked" until the process restarts. Write transactions on one
connection take turns (an aiosqlite connection is shared by tasks): a second BEGIN would fail,
and its rollback would undo the first.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
import asyncio
from contextlib import asynccontextmanager
from weakref import WeakKeyDictionary

import aiosqlite

_turns: WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = WeakKeyDictionary()


@asynccontextmanager
async def write_transaction(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    turn = _turns.get(db)
    if turn is None:
        turn = _turns[db] = asyncio.Lock()
    async with turn:
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            await db.commit()
        except BaseException:
            try:
                await db.rollback()
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                pass
            raise
