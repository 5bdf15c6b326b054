"""The response cache's persistent tier on SQLite: its tables, and a backend with its own connections.

The cache opens two connections of its own on the gateway's database file: one that reads (a hit
that fell out of memory) and one that writes (batched inserts, purges, the sweep) on a thread of
its own. In WAL mode a reader never waits on a writer, so a long batch of usage rows or cache
inserts cannot hold up a lookup.

Entries live in generations: tables `cache_entries_<n>` of about 1/32 of the disk budget each
(GENERATIONS), the newest taking the inserts; the view `cache_entries` shows them all, newest
first, and `cache_generations` counts each one's entries and bytes. Within a table rows go in batch
after batch (an integer primary key that only grows), so a batch appends to its end; a unique index
on the first 64 bits of the cache key finds an entry, and the full key is kept to rule out a
collision. That index takes a batch's keys at random pages: with one table for the whole budget,
each batch rewrote most of an index that grew with the disk, and the writer's CPU per row grew with
it. In a generation the index stays small. Measured (8,192-row batches of the bench's answers,
interleaved runs on a noisy machine, writer CPU per row): with 250,000 entries on disk 3.7-6.2 us
against 5.4-8.6 in one table, with a million 6.2-7.7 against 11.1-16.4. The bound and the expiry
drop whole generations, oldest first (a DROP TABLE, not a scan), so no index on the expiry is kept
up either.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..background import writer_thread
from ..idfilter import entry_id

T = TypeVar("T")

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
    # 2: append order (seq) instead of a random rowid, and only the indexes the hot writer needs:
    # id (lookups), (expires, size) (the sweep; it also sums the sizes without reading the bodies).
    # Purging by model or tenant is an admin action and may scan.
    """
    CREATE TABLE cache_entries_v2 (
        seq INTEGER PRIMARY KEY,
        id INTEGER NOT NULL,
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
    INSERT INTO cache_entries_v2 (id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body)
        SELECT id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body
        FROM cache_entries ORDER BY created;
    DROP TABLE cache_entries;
    ALTER TABLE cache_entries_v2 RENAME TO cache_entries;
    CREATE UNIQUE INDEX cache_entries_id ON cache_entries (id);
    CREATE INDEX cache_entries_expires ON cache_entries (expires, size);
    """,
    # 3: generations (module docstring); the entries so far are the first one.
    """
    DROP INDEX cache_entries_expires;
    ALTER TABLE cache_entries RENAME TO cache_entries_1;
    CREATE TABLE cache_generations (
        generation INTEGER PRIMARY KEY,
        entries INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        newest_expiry REAL NOT NULL
    );
    INSERT INTO cache_generations
        SELECT 1, count(*), coalesce(sum(size), 0), coalesce(max(expires), 0) FROM cache_entries_1;
    CREATE VIEW cache_entries AS SELECT 1 AS generation, * FROM cache_entries_1;
    """,
)

# (id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body)
RESTRICTED = "|models:"  # as cache.py names a model restriction in a tenant
_TENANTS_PER_STATEMENT = 300  # three parameters each, well under SQLite's limit
Row = tuple[int, str, str, str, "str | None", "str | None", float, float, "float | None", int, bytes]
COLUMNS = "id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body"
GENERATIONS = 32  # the disk budget over the size of one generation
MIN_GENERATION_BYTES = 1 << 20
# The cache writer's page cache: the newest generation's id index takes a batch's inserts at random
# pages, each revisited many times within the batch (2 MiB holds the index of about 100,000
# entries). It does not carry them from one batch to the next: the usage writer commits to the same
# file several times a second, and SQLite drops a connection's whole page cache when another one has
# written (measured: a repeated scan re-read every page after another connection's one-row commit).
WRITER_CACHE_KIB = 16 * 1024
# The writer's prepared statements: each generation has its own INSERTs (one per power of two up to
# ROWS_PER_INSERT, about 1.5 MiB of programs together), so the sqlite3 module's default of 128
# would keep a dozen past generations' worth; this keeps the newest one's and the sweep's.
WRITER_STATEMENTS = 24
ROWS_PER_INSERT = 512  # a power of two; 11 values a row: under SQLite's limit of 32766 per statement


_INSERTS = {  # by rows; {table} is the newest generation's
    1 << n: f"INSERT OR REPLACE INTO {{table}} ({COLUMNS}) VALUES "
    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * (1 << n))
    for n in range(ROWS_PER_INSERT.bit_length())
}
# Of one id, the newest generation's copy (an answer stored again lands in the newest generation).
_SELECT = f"SELECT {COLUMNS} FROM cache_entries WHERE id = ? ORDER BY generation DESC LIMIT 1"
_GENERATIONS = "SELECT generation, entries, bytes, newest_expiry FROM cache_generations ORDER BY generation"
# The oldest rows (lowest seq) of a table whose sizes add up to what must go: reads its front only.
_OLDEST = "SELECT seq, size FROM {table} ORDER BY seq LIMIT ?"


def generation_bytes(max_disk_bytes: int) -> int:
    """How many bytes of answers one generation takes before the next one starts."""
    return max(MIN_GENERATION_BYTES, max_disk_bytes // GENERATIONS)


def _table(generation: int) -> str:
    return f"cache_entries_{int(generation)}"


class SQLiteCacheStore:
    """The persistent tier of the response cache. Every method may raise; the cache treats a failure
    as a miss (reads) or a lost write (writes), never as a failed request.

    Reads go through aiosqlite. Writes run on a thread of their own over a plain sqlite3
    connection, one call per transaction (BEGIN, the statements, COMMIT): the event loop hands a
    whole batch over once, instead of once per statement, which on a busy core each waits for the
    GIL and a thread switch."""

    def __init__(
        self,
        reader: aiosqlite.Connection,
        writer: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        generation_bytes: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._thread = thread
        self._generation_bytes = generation_bytes

    @classmethod
    async def open(cls, path: Path, max_disk_bytes: int = 1 << 30) -> SQLiteCacheStore:
        """Connections on an existing database whose migrations have run (SQLiteStore.open);
        `max_disk_bytes` (the cache's budget) sets the size of a generation."""
        reader = await aiosqlite.connect(path, timeout=0.05)
        # The reader must never queue behind a lock for long: a slow read is only a miss.
        await reader.execute("PRAGMA busy_timeout=50")
        thread = writer_thread("llmproxy-cache-writer")
        writer = await asyncio.get_running_loop().run_in_executor(
            thread, connect_writer, path, WRITER_CACHE_KIB, WRITER_STATEMENTS
        )
        return cls(reader, writer, thread, generation_bytes(max_disk_bytes))

    async def get(self, id_: int) -> Row | None:
        async with self._reader.execute(_SELECT, (id_,)) as cur:
            row = await cur.fetchone()
        return tuple(row) if row is not None else None

    async def put_many(self, rows: Sequence[Sequence[Any]]) -> None:
        await self._write(_put_many, rows, self._generation_bytes)

    async def ids(self, now: float) -> list[int]:
        """The ids of the entries on disk, for the in-memory index of what the disk holds (read from
        each generation's id index; expired ones too, until their generation goes: a read finds
        them expired)."""
        async with self._reader.execute("SELECT id FROM cache_entries") as cur:
            return [r[0] for r in await cur.fetchall()]

    async def purge(
        self, *, key: str | None = None, model: str | None = None, tenants: Collection[str] | None = None
    ) -> int:
        """Delete the entries matching every given filter (all entries when none is given); a
        tenant matches with or without a model restriction (`<tenant>|models:...`)."""
        if tenants is not None and not tenants:
            return 0
        return await self._write(_purge, key, model, sorted(tenants) if tenants is not None else None)

    async def sweep(self, now: float, max_bytes: int) -> int:
        """Drop expired entries, then the oldest ones while the table holds more than max_bytes."""
        return await self._write(_sweep, now, max_bytes)

    async def totals(self, now: float) -> tuple[int, int]:
        """(entries, their bytes) on disk, as the generations count them: expired ones too, until
        their generation goes."""
        async with self._reader.execute(
            "SELECT coalesce(sum(entries), 0), coalesce(sum(bytes), 0) FROM cache_generations"
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def close(self) -> None:
        await self._reader.close()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
        self._thread.shutdown()

    def _write(self, work: Callable[..., T], *args: Any) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(self._thread, transaction, self._writer, work, *args)


def bind_none_and_bytes_directly() -> None:
    """Let the sqlite3 module bind None and bytes without searching for an adapter.

    It binds int, float and str at once, but asks every other value how to adapt itself (a dict
    look-up, then an `__adapt__` look-up on its protocol class that fails; Python 3.11 formats the
    AttributeError's message before dropping it). A usage row is half NULLs and a cache row holds
    its body as bytes: under callgrind that search was 4% of the gateway's instructions per request,
    and a 23-column usage insert took 4.2 instead of 2.2 us a row. An adapter registered for the
    type is found at the first look-up; these return the value as it is, so it binds as before
    (NULL, BLOB). Process-wide and idempotent."""
    sqlite3.register_adapter(type(None), _none)
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b itself: no copy


_none: Callable[[Any], None] = {}.get  # a C callable that returns None for any argument


def connect_writer(path: Path, cache_kib: int | None = None, statements: int = 128) -> sqlite3.Connection:
    """A plain connection for a writer thread; `cache_kib`: its page cache, when the default
    (2 MiB) is too small for the indexes it updates; `statements`: how many prepared statements it
    keeps (the sqlite3 module's default, 128, unless its statements name tables that come and go)."""
    bind_none_and_bytes_directly()
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False, cached_statements=statements)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA synchronous=NORMAL")
    # A batch's second INSERT journals the pages the first one dirtied: in memory, not in a new
    # temporary file per batch (bench/cpu.py under strace: 1.56 -> 1.20 pwrite calls a request).
    db.execute("PRAGMA temp_store=MEMORY")
    if cache_kib is not None:
        db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    return db


def transaction(db: sqlite3.Connection, work: Callable[..., T], *args: Any) -> T:
    """BEGIN IMMEDIATE (the write lock first), the work, COMMIT; any failure rolls back, so the
    connection is never left inside a failed transaction (see transactions.py)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db, *args)
        db.execute("COMMIT")
    except BaseException:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original failure is the one to report
        raise
    return result


def _put_many(db: sqlite3.Connection, rows: Sequence[Row], full_at: int) -> None:
    # Into the newest generation, or a new one once it holds `full_at` bytes.
    # Many rows per statement rather than executemany's one: the thread gives the GIL back and takes
    # it again around every statement. Only power-of-two sizes, so that the connection's statement
    # cache holds a handful of programs (one per size, the largest ~1 MB) instead of one per batch
    # size seen. In id order: the id index then takes the batch page after page instead of at
    # random (8192-row batches, 250,000 rows on disk: 8.6 -> 7.2 us of CPU per row). So within one
    # batch (a second or two of answers) the seq order, which the size trim goes by, is the id's,
    # not the answers'; from batch to batch it stays oldest first. (Giving each row the seq of its
    # place instead costs 11.3 us: the table then takes rows out of order.) Of two rows with one id
    # in a batch, only the later is written.
    if not rows:
        return
    rows = sorted({row[0]: row for row in rows}.values(), key=_by_id)
    generation, _, held, _ = db.execute(_GENERATIONS + " DESC LIMIT 1").fetchone()
    if held >= full_at:
        generation = _start_generation(db, generation + 1)
    table = _table(generation)
    start = 0
    while start < len(rows):
        size = min(ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + size]
        db.execute(_INSERTS[size].format(table=table), [value for row in chunk for value in row])
        start += size
    db.execute(
        "UPDATE cache_generations SET entries = entries + ?, bytes = bytes + ?, newest_expiry = max(newest_expiry, ?)"
        " WHERE generation = ?",
        (len(rows), sum(map(_size, rows)), max(map(_expires, rows)), generation),
    )


_by_id = itemgetter(0)
_expires = itemgetter(7)
_size = itemgetter(9)


def _start_generation(db: sqlite3.Connection, generation: int) -> int:
    # The columns of migration 2's table, which migration 3 made the first generation.
    table = _table(generation)
    db.execute(
        f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY, id INTEGER NOT NULL, key TEXT NOT NULL,"
        " tenant TEXT NOT NULL, model TEXT NOT NULL, served_model TEXT, provider TEXT, created REAL NOT NULL,"
        " expires REAL NOT NULL, cost_usd REAL, size INTEGER NOT NULL, body BLOB NOT NULL)"
    )
    db.execute(f"CREATE UNIQUE INDEX {table}_id ON {table} (id)")
    db.execute("INSERT INTO cache_generations VALUES (?, 0, 0, 0)", (generation,))
    _show_generations(db)
    return generation


def _show_generations(db: sqlite3.Connection) -> None:
    """The view of every generation, newest first (remade when one starts or goes)."""
    newest_first = [g for (g,) in db.execute("SELECT generation FROM cache_generations ORDER BY generation DESC")]
    db.execute("DROP VIEW IF EXISTS cache_entries")
    db.execute(
        "CREATE VIEW cache_entries AS "
        + " UNION ALL ".join(f"SELECT {g} AS generation, seq, {COLUMNS} FROM {_table(g)}" for g in newest_first)
    )


def _count(db: sqlite3.Connection, generation: int) -> None:
    """A generation's counts made again from its rows (after a purge or a trim)."""
    db.execute(
        f"UPDATE cache_generations SET (entries, bytes) = (SELECT count(*), coalesce(sum(size), 0) FROM"
        f" {_table(generation)}) WHERE generation = ?",
        (generation,),
    )


def _purge(db: sqlite3.Connection, key: str | None, model: str | None, tenants: list[str] | None) -> int:
    where, args = _where(key=key, model=model)
    removed = 0
    for generation, *_ in db.execute(_GENERATIONS).fetchall():
        table = _table(generation)
        gone = 0
        if tenants is None:
            gone = max(db.execute(f"DELETE FROM {table}{where}", args).rowcount, 0)
        else:
            for start in range(0, len(tenants), _TENANTS_PER_STATEMENT):
                chunk = tenants[start : start + _TENANTS_PER_STATEMENT]
                # every string that starts with "<t>|models:" sorts from it up to "<t>|models;" (';' follows ':')
                either = " OR ".join("tenant = ? OR (tenant >= ? AND tenant < ?)" for _ in chunk)
                sql = f"{where} AND ({either})" if where else f" WHERE ({either})"
                params = (*args, *(v for t in chunk for v in (t, t + RESTRICTED, t + RESTRICTED[:-1] + ";")))
                gone += max(db.execute(f"DELETE FROM {table}{sql}", params).rowcount, 0)
        if gone:
            _count(db, generation)
            removed += gone
    return removed


def _sweep(db: sqlite3.Connection, now: float, max_bytes: int) -> int:
    """Whole generations, oldest first: those whose every entry has expired, then as many as the
    bound needs. The newest one takes the writes: it is emptied once all of it has expired, and
    trimmed from its oldest rows only when the bound is smaller than one generation."""
    generations = db.execute(_GENERATIONS).fetchall()
    total = sum(held for _, _, held, _ in generations)
    removed = dropped = 0
    *older, (newest, entries, _, newest_expiry) = generations
    for generation, count, held, expiry in older:
        if expiry <= now or total > max_bytes:
            db.execute(f"DROP TABLE {_table(generation)}")
            db.execute("DELETE FROM cache_generations WHERE generation = ?", (generation,))
            removed, total, dropped = removed + count, total - held, dropped + 1
    if dropped:
        _show_generations(db)
    table = _table(newest)
    if entries and newest_expiry <= now:
        removed += max(db.execute(f"DELETE FROM {table}").rowcount, 0)
        _count(db, newest)
        return removed
    excess = total - max_bytes
    if excess <= 0:
        return removed
    while excess > 0:
        rows = db.execute(_OLDEST.format(table=table), (1000,)).fetchall()
        if not rows:
            break
        cut = rows[-1][0]
        for seq, size in rows:
            excess -= size
            if excess <= 0:
                cut = seq
                break
        removed += max(db.execute(f"DELETE FROM {table} WHERE seq <= ?", (cut,)).rowcount, 0)
    _count(db, newest)
    return removed


def _where(**filters: str | None) -> tuple[str, tuple[Any, ...]]:
    given = [(name, value) for name, value in filters.items() if value is not None]
    if not given:
        return "", ()
    # served_model too: purging "gpt-4o" should also drop what "auto" answered with gpt-4o; a key
    # is found by its id, which the id index has.
    parts: list[str] = []
    args: list[Any] = []
    for name, value in given:
        if name == "model":
            parts.append("(model = ? OR served_model = ?)")
            args += [value, value]
        elif name == "key":
            try:
                args += [entry_id(value), value]
                parts.append("id = ? AND key = ?")
            except ValueError:  # not hex: no key this cache made, so nothing matches (found by a scan)
                args.append(value)
                parts.append("key = ?")
        else:
            parts.append(f"{name} = ?")
            args.append(value)
    return " WHERE " + " AND ".join(parts), tuple(args)
