"""Workers started together on a new data directory (`serve --workers N`): they open one SQLite
file at once (the schema is made once, by one of them, and every one opens it) and they all end
up with the same vault key (one of them creates the key file; none reads it half-written)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

OPEN = """
import asyncio, sys
from pathlib import Path
from llmproxy.store.sqlite import SQLiteStore
async def main():
    store = await SQLiteStore.open(Path(sys.argv[1]))
    await store.close()
asyncio.run(main())
"""


def test_four_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    for round_ in range(2):
        path = tmp_path / f"round{round_}" / "llmproxy.db"
        path.parent.mkdir()
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        try:
            for proc in procs:
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err[-2000:]
        finally:
            for proc in procs:  # one stuck on a lock must not outlive the test
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        db = sqlite3.connect(path)
        try:
            versions = dict(db.execute("SELECT component, version FROM schema_versions"))
            assert set(versions) >= {"usage", "keys", "cache"} and all(v > 0 for v in versions.values())
        finally:
            db.close()


def test_a_database_that_cannot_be_opened_fails_the_process_instead_of_hanging_it(tmp_path: Path) -> None:
    """Any failure while opening closes the connection: its (non-daemon) thread would otherwise keep
    the process alive after the error, as a worker that lost a start-up race once did."""
    path = tmp_path / "llmproxy.db"
    path.write_bytes(b"this is not an SQLite database" * 200)
    proc = subprocess.run([sys.executable, "-c", OPEN, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not a database" in proc.stderr


KEY = """
import sys
from pathlib import Path
from llmproxy.config import Settings
from llmproxy.vault import load_key
print(load_key(Settings(data_dir=Path(sys.argv[1]))).key_id)
"""


def test_four_processes_starting_on_a_new_data_directory_share_one_vault_key(tmp_path: Path) -> None:
    for round_ in range(3):
        data = tmp_path / f"round{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", KEY, str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        ids = set()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-2000:]
            ids.add(out.strip())
        assert len(ids) == 1, ids
        assert sorted(p.name for p in data.iterdir()) == ["secret.key"]  # nothing left aside
