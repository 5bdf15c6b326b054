"""A locked database slows nothing down: requests never wait on it, and nothing recorded is lost."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fakes.openai_server import FakeState


def test_locked_database_never_fails_or_delays_requests(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    base = gateway_factory()
    db_path = tmp_path / "data" / "llmproxy.db"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(base + "/v1/chat/completions", json=body).status_code == 200
    lock = sqlite3.connect(db_path, timeout=1, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # every other writer and reader now waits
    try:
        slowest = 0.0
        with httpx.Client(timeout=10) as client:
            for i in range(20):
                t = time.perf_counter()
                r = client.post(base + "/v1/chat/completions", json=body | {"stream": i % 2 == 1})
                slowest = max(slowest, time.perf_counter() - t)
                assert r.status_code == 200, r.text
        assert slowest < 1.0, f"a request waited {slowest:.2f}s on the locked database"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    deadline = time.monotonic() + 15
    count = 0
    while time.monotonic() < deadline:
        count = sqlite3.connect(db_path, timeout=5).execute("SELECT count(*) FROM usage").fetchone()[0]
        if count == 21:
            break
        time.sleep(0.2)
    assert count == 21  # the rows kept through the lock were written once it was released
