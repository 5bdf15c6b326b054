"""The background threads (the SQLite writers, the log writer) run at a lower priority than the
event loop's thread, so that a burst of their work does not hold up a request (background.py)."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest

from llmproxy.background import BACKGROUND_NICE
from llmproxy.logs import LineWriter
from llmproxy.store.cache_sql import SQLiteCacheStore
from llmproxy.store.responses_sql import SQLiteResponsesStore
from llmproxy.store.sqlite import SQLiteStore
from llmproxy.store.usage_sql import SQLiteUsageStore

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_the_sqlite_writers_threads_run_at_the_background_priority(tmp_path: Path) -> None:
    base = await SQLiteStore.open(tmp_path / "llmproxy.db")
    stores = [
        await SQLiteCacheStore.open(base.path),
        await SQLiteUsageStore.open(base.path),
        await SQLiteResponsesStore.open(base.path),
    ]
    try:
        for store in stores:
            assert await store._write(lambda *_: _nice()) == BACKGROUND_NICE, type(store).__name__
        assert _nice() < BACKGROUND_NICE  # the caller's thread (the event loop's) keeps its own
    finally:
        for store in stores:
            await store.close()
        await base.db.close()


def test_the_log_writers_thread_runs_at_the_background_priority() -> None:
    seen: list[int] = []
    writer = LineWriter(io.BytesIO(), interval_s=0.01)
    writer.write((lambda _item: (seen.append(_nice()), b"line\n")[1],))
    writer.start()
    writer.stop()
    assert seen == [BACKGROUND_NICE] and _nice() < BACKGROUND_NICE
