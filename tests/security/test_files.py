"""The data directory and the database files are private to the gateway's user."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import httpx

from llmproxy.config import Secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_is_0700_and_database_wal_shm_and_key_0600(
    tmp_path: Path, gateway_factory: Callable[..., str]
) -> None:
    url = gateway_factory(master_key=Secret("sk-master-files-0123456789"))
    r = httpx.post(
        url + "/admin/keys", json={"name": "k"}, headers={"authorization": "Bearer sk-master-files-0123456789"}
    )
    assert r.status_code == 201
    data = tmp_path / "data"
    assert mode(data) == 0o700
    files = {p.name: mode(p) for p in data.iterdir()}
    assert {"llmproxy.db", "llmproxy.db-wal", "llmproxy.db-shm", "secret.key"} <= set(files), files
    assert all(m == 0o600 for m in files.values()), {n: oct(m) for n, m in files.items()}


def test_an_older_install_with_open_files_is_tightened(tmp_path: Path, gateway_factory: Callable[..., str]) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = sqlite3.connect(data / "llmproxy.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE leftover (x)")
    db.commit()
    for p in data.iterdir():
        p.chmod(0o644)
    gateway_factory()
    assert mode(data) == 0o700
    assert all(mode(p) == 0o600 for p in data.iterdir()), {p.name: oct(mode(p)) for p in data.iterdir()}
    db.close()


def test_an_existing_shared_directory_is_not_changed_but_the_files_are_private(tmp_path: Path, openai_upstream) -> None:
    import asyncio

    from llmproxy.store.sqlite import SQLiteStore

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "someone-elses.txt").write_text("x")

    async def open_close() -> None:
        store = await SQLiteStore.open(shared / "llmproxy.db")
        try:
            await store.db.execute("CREATE TABLE t (x)")
            await store.db.commit()
            assert mode(shared / "llmproxy.db-wal") == 0o600
        finally:
            await store.close()

    asyncio.run(open_close())
    assert mode(shared) == 0o755  # not ours to lock: other things live there
    assert mode(shared / "llmproxy.db") == 0o600
