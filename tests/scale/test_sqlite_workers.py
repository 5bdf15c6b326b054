"""Workers started together on a new data directory (`serve --workers N`) open one SQLite file at
once: the schema is made once, by one of them, and every one of them opens it."""
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
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        try:
            for proc in procs:
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err[-2000:]
        finally:
            for proc in procs:   # one stuck on a lock must not outlive the test
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        db = sqlite3.connect(path)
        try:
            versions = dict(db.execute("SELECT component, version FROM schema_versions"))
            assert set(versions) >= {"usage", "keys", "cache"} and all(v > 0 for v in versions.values())
        finally:
            db.close()
