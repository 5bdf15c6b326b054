"""`llmproxy serve` as a real process: 2,000 requests, SIGTERM while their usage rows are still
queued, and 2,000 rows in the database afterwards."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import httpx

from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import free_port
from tests.integration.test_serve import spawn, wait_ready

REQUESTS = 2000
IN_FLIGHT = 50


async def send_all(url: str) -> list[str]:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(i: int) -> str:
            async with gate:
                r = await client.post(
                    "/v1/chat/completions",
                    json={
                        "model": "gpt-4o-mini",
                        "stream": i % 4 == 0,
                        "messages": [{"role": "user", "content": f"request {i}"}],
                    },
                )
                await r.aread()
                assert r.status_code == 200, r.text
                return r.headers["x-request-id"]

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def test_sigterm_writes_every_queued_usage_row(tmp_path: Path, openai_upstream: tuple[str, FakeState]) -> None:
    base, _ = openai_upstream
    port = free_port()
    # Nothing is flushed on a timer or by batch size, so every row is still queued at SIGTERM.
    (tmp_path / "llmproxy.toml").write_text("[usage]\nflush_interval_s = 3600\nbatch_size = 1000000\n")
    data = tmp_path / "state"
    proc = spawn(
        ["serve", "--port", str(port), "--data-dir", str(data)],
        {
            "LLMPROXY_OPENAI_BASE_URL": base,
            "OPENAI_API_KEY": API_KEY,
            "LLMPROXY_LOG_LEVEL": "warning",
            "LLMPROXY_REGISTRY_AUTO_UPDATE": "false",
        },
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        ids = asyncio.run(send_all(url))
        metrics = httpx.get(url + "/metrics").text
        queued = [line for line in metrics.splitlines() if line.startswith("llmproxy_usage_queue_depth ")]
        assert queued == [f"llmproxy_usage_queue_depth {float(REQUESTS)}"]
        db = sqlite3.connect(data / "llmproxy.db")
        assert db.execute("SELECT count(*) FROM usage").fetchone() == (0,)
        db.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, -signal.SIGTERM)
    db = sqlite3.connect(data / "llmproxy.db")
    assert db.execute("SELECT count(*), count(DISTINCT request_id) FROM usage").fetchone() == (REQUESTS, REQUESTS)
    assert {r for (r,) in db.execute("SELECT request_id FROM usage")} == set(ids)
    assert db.execute("SELECT sum(requests) FROM usage_daily").fetchone() == (REQUESTS,)
    assert db.execute("SELECT count(*) FROM usage WHERE status != 200 OR model != 'gpt-4o-mini'").fetchone() == (0,)
    assert API_KEY not in proc.stderr.read()
