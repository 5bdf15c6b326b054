"""A new database gets the store's page size; an existing one keeps its own and still opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from llmproxy.store.sqlite import PAGE_SIZE, SQLiteStore


def page_size(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()


async def test_a_new_database_is_made_with_the_stores_page_size(tmp_path: Path) -> None:
    path = tmp_path / "data" / "llmproxy.db"
    store = await SQLiteStore.open(path)
    await store.close()
    assert PAGE_SIZE != 4096 and page_size(path) == PAGE_SIZE


async def test_an_existing_database_keeps_its_pages_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "llmproxy.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE leftover (x)")
    db.execute("INSERT INTO leftover VALUES (1)")
    db.commit()
    db.close()
    store = await SQLiteStore.open(path)
    async with store.db.execute("SELECT count(*) FROM schema_versions") as cur:
        (components,) = await cur.fetchone()  # type: ignore[misc]
    await store.close()
    assert components >= 4 and page_size(path) == 4096
