"""The disk tier's generations on a real SQLite file: writes go to the newest table, the bound and
the expiry drop whole tables oldest first, a lookup finds the newest copy, and a database from
before generations is carried over."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmproxy.idfilter import entry_id
from llmproxy.store import cache_sql, sqlite as sqlite_store
from llmproxy.store.cache_sql import MIN_GENERATION_BYTES, SQLiteCacheStore
from llmproxy.store.sqlite import SQLiteStore

BODY = 100 * 1024
PER_BATCH = 11  # 1.1 MB: past a minimal generation (1 MiB), so each batch after the first starts one


def row(name: str, expires: float, body: bytes = b"x" * BODY) -> tuple[Any, ...]:
    key = (name.encode().hex() * 32)[:32]
    return (entry_id(key), key, "key:a", "gpt-4o-mini", None, None, time.time(), expires, None, len(body), body)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteCacheStore]:
    base = await SQLiteStore.open(tmp_path / "llmproxy.db")
    disk = await SQLiteCacheStore.open(base.path, max_disk_bytes=16 * MIN_GENERATION_BYTES)
    yield disk
    await disk.close()
    await base.close()


def generations(path: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT generation, entries FROM cache_generations ORDER BY generation").fetchall()


async def test_batches_fill_one_generation_then_start_the_next(store: SQLiteCacheStore, tmp_path: Path) -> None:
    later = time.time() + 3600
    for batch in range(3):
        await store.put_many([row(f"b{batch}-{i}", later) for i in range(PER_BATCH)])
    await store.put_many([])  # nothing to write: no generation starts
    path = tmp_path / "llmproxy.db"
    assert generations(path) == [(1, PER_BATCH), (2, PER_BATCH), (3, PER_BATCH)]
    assert await store.totals(time.time()) == (3 * PER_BATCH, 3 * PER_BATCH * BODY)
    assert len(await store.ids(time.time())) == 3 * PER_BATCH
    found = await store.get(row("b0-3", later)[0])
    assert found is not None and found[1] == row("b0-3", later)[1]  # read from the oldest generation


async def test_an_answer_stored_again_is_read_from_the_newest_generation(store: SQLiteCacheStore) -> None:
    later = time.time() + 3600
    await store.put_many([row(f"old-{i}", later) for i in range(PER_BATCH)] + [row("again", later, b"first")])
    await store.put_many([row(f"new-{i}", later) for i in range(PER_BATCH)])
    await store.put_many([row("again", later, b"second")])
    found = await store.get(row("again", later)[0])
    assert found is not None and found[10] == b"second"


async def test_the_bound_drops_whole_generations_oldest_first(store: SQLiteCacheStore, tmp_path: Path) -> None:
    later = time.time() + 3600
    for batch in range(4):
        await store.put_many([row(f"b{batch}-{i}", later) for i in range(PER_BATCH)])
    removed = await store.sweep(time.time(), 2 * PER_BATCH * BODY)
    assert removed == 2 * PER_BATCH
    assert generations(tmp_path / "llmproxy.db") == [(3, PER_BATCH), (4, PER_BATCH)]
    assert await store.get(row("b1-0", later)[0]) is None
    assert await store.get(row("b2-0", later)[0]) is not None
    with sqlite3.connect(tmp_path / "llmproxy.db") as db:  # the view shows what is left, newest first
        assert db.execute("SELECT count(*) FROM cache_entries").fetchone()[0] == 2 * PER_BATCH
        assert db.execute("SELECT generation FROM cache_entries LIMIT 1").fetchone()[0] == 4


async def test_expired_generations_go_and_the_newest_is_emptied_once_expired(
    store: SQLiteCacheStore, tmp_path: Path
) -> None:
    soon, later = time.time() + 0.2, time.time() + 3600
    await store.put_many([row(f"soon-{i}", soon) for i in range(PER_BATCH)])
    await store.put_many([row(f"late-{i}", later) for i in range(PER_BATCH)])
    await store.put_many([row(f"last-{i}", soon) for i in range(PER_BATCH)])
    await asyncio.sleep(0.3)
    assert await store.sweep(time.time(), 1 << 40) == 2 * PER_BATCH
    assert generations(tmp_path / "llmproxy.db") == [(2, PER_BATCH), (3, 0)]
    assert await store.get(row("late-0", later)[0]) is not None


async def test_a_purge_reaches_every_generation_and_recounts_it(store: SQLiteCacheStore, tmp_path: Path) -> None:
    later = time.time() + 3600
    await store.put_many([row(f"a{i}", later) for i in range(PER_BATCH)])
    await store.put_many([row(f"b{i}", later) for i in range(PER_BATCH)])
    assert await store.purge(key=row("a5", later)[1]) == 1
    assert generations(tmp_path / "llmproxy.db") == [(1, PER_BATCH - 1), (2, PER_BATCH)]
    assert await store.purge(key="not a key: no hex") == 0
    assert await store.purge(model="gpt-4o-mini") == 2 * PER_BATCH - 1
    assert await store.totals(time.time()) == (0, 0)


async def test_a_database_from_before_generations_keeps_its_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "llmproxy.db"
    later = time.time() + 3600
    with monkeypatch.context() as m:  # the schema as it was: one table
        m.setitem(sqlite_store.MIGRATIONS, "cache", cache_sql.MIGRATIONS[:2])
        old = await SQLiteStore.open(path)
        await old.close()
    with sqlite3.connect(path) as db:
        db.execute(
            f"INSERT INTO cache_entries ({cache_sql.COLUMNS}) VALUES ({', '.join('?' * 11)})", row("kept", later)
        )
    base = await SQLiteStore.open(path)
    disk = await SQLiteCacheStore.open(base.path)
    try:
        found = await disk.get(row("kept", later)[0])
        assert found is not None and found[1] == row("kept", later)[1]
        assert await disk.totals(time.time()) == (1, BODY)
        await disk.put_many([row("new", later)])
        assert generations(path) == [(1, 2)]
    finally:
        await disk.close()
        await base.close()
