"""Write transactions that cannot leave a connection stuck.

`BEGIN IMMEDIATE` takes the write lock before anything is read, waiting on the busy timeout; a
deferred transaction that first reads and then writes fails at once, without waiting, whenever
another connection committed in between (SQLITE_BUSY_SNAPSHOT). Any failure rolls back: a
connection left inside a failed transaction would keep its stale snapshot, and every later write
on it would fail with "database is locked" until the process restarts. Write transactions on one
connection take turns (an aiosqlite connection is shared by tasks): a second BEGIN would fail,
and its rollback would undo the first. The turn is a lock held by the connection's owner, a
`Transactions` object.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite


class Transactions:
    """The write transactions of one connection, one at a time. Whoever owns the connection owns
    this object and hands it to everything that writes on that connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._turn:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                await self.db.commit()
            except BaseException:
                try:
                    await self.db.rollback()
                except Exception:  # noqa: BLE001 - the original failure is the one to report
                    pass
                raise
