"""SQLite store (WAL, one file in the data directory): the connection and the schema migrations.

Each component (usage, keys, cache, ...) owns its tables and queries in its own module under
store/ and registers its migrations in MIGRATIONS; versions are kept per component, so features
can grow their schemas independently. aiosqlite runs every statement on its own thread, so the
event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

import aiosqlite

from . import cache_sql, keys_sql, responses_sql, usage_sql

# component -> ordered migration scripts; never edit a shipped one, append a new one.
MIGRATIONS: dict[str, tuple[str, ...]] = {
    "usage": usage_sql.MIGRATIONS,
    "keys": keys_sql.MIGRATIONS,
    "cache": cache_sql.MIGRATIONS,
    "responses": responses_sql.MIGRATIONS,
}
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
# A new database's page size. The writers append rows in batches: with 16 KiB pages a batch takes a
# quarter of the WAL frames and writes, and of the checkpoint's reads and writes (the cache writer:
# 0.67 -> 0.17 writes and 0.30 -> 0.06 reads a stored row). On the reference bench, six pairs of
# interleaved runs at c=16 gave 0.794-0.852 against 0.779-0.817 (medians 0.818 and 0.798), every
# pair in its favour. An existing database keeps the page size it was made with (SQLite ignores the
# setting once it holds a page).
PAGE_SIZE = 16384
log = logging.getLogger("llmproxy.store")


def prepare_files(path: Path) -> None:
    """The data directory and the database file, private to the gateway's user before SQLite opens
    them: the directory 0700 when made here (or already holding this database), the file 0600.
    SQLite gives the -wal and -shm files the database file's mode; those of an older install
    (0644) are tightened too."""
    directory = path.parent
    ours = not directory.exists() or path.exists()
    directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if ours:
        try:
            os.chmod(directory, PRIVATE_DIR)  # mkdir's mode passes through the umask; this does not
        except PermissionError:  # someone else's directory: the files stay private
            ours = False
    if not ours and directory.stat().st_mode & 0o077:
        log.warning(
            "the data directory %s is open to other users; its files are private (0600), but consider chmod 700",
            directory,
        )
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        try:
            os.chmod(directory / name, PRIVATE_FILE)
        except FileNotFoundError:
            pass


class SQLiteStore:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        prepare_files(path)
        db = await aiosqlite.connect(path, timeout=5.0)
        store = cls(db, path)
        try:
            await store._prepare_alone()
        except BaseException:
            # closed on any failure: its thread would otherwise keep the process from exiting
            await db.close()
            raise
        return store

    async def _prepare_alone(self) -> None:
        """A new file's page size, the journal mode and the migrations, under an exclusive lock on a
        file beside the database: workers started together on a new file (`serve --workers N`)
        would otherwise race to switch it to WAL (one of them refused, "database is locked") and
        all find version 0 and run the same CREATE TABLEs; the first prepares, the others find
        nothing left to do."""
        fd = os.open(self.path.with_name(self.path.name + ".migrate-lock"), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            await self.db.execute("PRAGMA busy_timeout=5000")
            await self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL: a new file's first write
            async with self.db.execute("PRAGMA journal_mode=WAL") as cursor:
                await cursor.fetchall()  # its row read, so no statement is left open holding a read lock
            await self.db.execute("PRAGMA synchronous=NORMAL")
            await self._migrate()
        finally:
            os.close(fd)  # releases the lock

    async def _migrate(self) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for component, scripts in MIGRATIONS.items():
            async with self.db.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)) as cur:
                row = await cur.fetchone()
            version = row[0] if row else 0
            for number, script in enumerate(scripts[version:], start=version + 1):
                await self.db.executescript(
                    f"BEGIN; {script}; INSERT INTO schema_versions (component, version) VALUES ('{component}', {number}) "
                    f"ON CONFLICT (component) DO UPDATE SET version = excluded.version; COMMIT;"
                )

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> bool:
        try:
            async with self.db.execute("SELECT 1") as cur:
                return (await cur.fetchone()) == (1,)
        except Exception:  # noqa: BLE001 - readiness only asks yes or no
            return False
