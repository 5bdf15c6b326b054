"""The usage queue: batches, a full queue said out loud, a failing database retried, everything
written on stop, retention applied."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest

from llmproxy.usage import UsageRecorder


class Store:
    def __init__(self, fail: int = 0) -> None:
        self.batches: list[int] = []
        self.rows: list[Any] = []
        self.fail = fail

    async def write(self, rows: Sequence[Any]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise OSError("database is locked")
        self.batches.append(len(rows))
        self.rows.extend(rows)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def usage_log() -> Any:
    handler = Captured()
    logger = logging.getLogger("llmproxy.usage")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def test_a_full_batch_is_written_before_the_interval() -> None:
    store = Store()
    rec = UsageRecorder(store.write, interval_s=60, batch_size=10, max_rows=1000)
    rec.start()
    for i in range(10):
        rec.add((i,))
    for _ in range(100):
        if store.rows:
            break
        await asyncio.sleep(0.01)
    assert store.batches == [10] and rec.depth == 0
    await rec.stop()


async def test_full_queue_drops_loudly(usage_log: Captured) -> None:
    store = Store()
    rec = UsageRecorder(store.write, interval_s=60, batch_size=1000, max_rows=5)
    for i in range(8):
        rec.add((i,))
    assert rec.depth == 5 and rec.dropped == 3
    assert len([m for m in usage_log.messages if "usage queue full" in m]) == 1
    await rec.stop()
    assert [r[0] for r in store.rows] == [0, 1, 2, 3, 4]


async def test_failed_writes_keep_the_rows_and_retry(usage_log: Captured) -> None:
    store = Store(fail=2)
    rec = UsageRecorder(store.write, interval_s=0.01, batch_size=100, max_rows=1000)
    rec.start()
    for i in range(30):
        rec.add((i,))
    deadline = time.monotonic() + 5
    while len(store.rows) < 30 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the recorder from outside, bounded
        await asyncio.sleep(0.01)
    assert [r[0] for r in store.rows] == list(range(30))
    assert rec.write_failures == 2 and rec.written == 30
    assert any("usage write failed" in m for m in usage_log.messages)
    await rec.stop()


async def test_stop_writes_everything_queued() -> None:
    store = Store()
    rec = UsageRecorder(store.write, interval_s=3600, batch_size=100, max_rows=100_000)
    rec.start()
    for i in range(2345):
        rec.add((i,))
    await rec.stop()
    assert len(store.rows) == 2345 and rec.depth == 0 and max(store.batches) <= 400


async def test_retention_deletes_rows_older_than_the_setting() -> None:
    cutoffs: list[float] = []

    async def retain(cutoff: float) -> int:
        cutoffs.append(cutoff)
        return 7

    rec = UsageRecorder(
        Store().write,
        interval_s=0.01,
        batch_size=10,
        max_rows=10,
        retain=retain,
        retention_days=30,
        retention_every_s=0.02,
    )
    rec.start()
    deadline = time.monotonic() + 5
    while not cutoffs and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the recorder from outside, bounded
        await asyncio.sleep(0.01)
    await rec.stop()
    assert cutoffs and abs(cutoffs[0] - (time.time() - 30 * 86400)) < 5
    assert rec.deleted >= 7
    off = UsageRecorder(Store().write, interval_s=1, batch_size=10, max_rows=10, retain=retain, retention_days=0)
    assert await off.apply_retention() == 0
