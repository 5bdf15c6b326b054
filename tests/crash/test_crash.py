"""Crashes and a full disk, on a real `llmproxy serve` process: SIGKILL in a burst loses at most the
usage rows of the last flush window and leaves a database that opens cleanly; a full data
directory fails the usage writes (counted, logged, retried) while requests keep being served."""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import free_port
from tests.integration.test_serve import REPO, spawn, wait_ready

FLUSH_S = 0.25  # usage.flush_interval_s, the README's default
MASTER = "sk-master-crash-tests-0123456789"


def start(tmp_path: Path, data_dir: Path, base: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    registry = tmp_path / "registry" / "models.json"
    if not registry.exists():
        registry.parent.mkdir(parents=True)
        shutil.copy(REPO / "registry" / "models.json", registry)
    (tmp_path / "llmproxy.toml").write_text(
        f'[usage]\nflush_interval_s = {FLUSH_S}\n[registry]\npath = "{registry}"\nauto_update = false\n'
    )
    proc = spawn(
        ["serve", "--port", str(port), "--data-dir", str(data_dir), "--log-format", "text"],
        {
            "OPENAI_API_KEY": API_KEY,
            "LLMPROXY_OPENAI_BASE_URL": base,
            "LLMPROXY_MASTER_KEY": MASTER,
            "LLMPROXY_LOG_LEVEL": "info",
        },
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def chat(client: httpx.Client, url: str, request_id: str) -> httpx.Response:
    return client.post(
        url + "/v1/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {MASTER}", "x-request-id": request_id},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": request_id}]},
    )


def usage_ids(db_path: Path) -> set[str]:
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {row[0] for row in db.execute("SELECT request_id FROM usage")}
    finally:
        db.close()


def test_sigkill_in_a_burst_loses_at_most_the_last_flush_window(
    tmp_path: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    data = tmp_path / "data"
    proc, url = start(tmp_path, data, openai_upstream[0])
    answered: list[tuple[str, float]] = []  # (request id, when its answer arrived)
    stop = threading.Event()

    def burst() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                rid = uuid.uuid4().hex
                try:
                    if chat(client, url, rid).status_code == 200:
                        answered.append((rid, time.monotonic()))
                except httpx.TransportError:
                    return

    workers = [threading.Thread(target=burst) for _ in range(8)]
    try:
        for w in workers:
            w.start()
        time.sleep(2.0)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=15)
        if proc.poll() is None:
            proc.kill()
    assert len(answered) > 50, "the burst did not get going"
    stored = usage_ids(data / "llmproxy.db")
    # A row is queued before its answer is sent and written within one flush interval (plus the
    # time the write itself takes on a busy machine): everything answered before that is on disk.
    window = FLUSH_S + 0.75
    must_have = {rid for rid, at in answered if at < killed_at - window}
    lost = must_have - stored
    print(
        f"\n{len(answered)} answered, {len(stored)} rows on disk, "
        f"{len({rid for rid, _ in answered} - stored)} not written (all in the last {window:g} s)"
    )
    assert not lost, f"{len(lost)} rows answered more than {window} s before the kill are missing"
    assert stored <= {rid for rid, _ in answered} | stored  # (the kill may also catch rows in flight)

    # It starts again on the same files, serves, and writes.
    proc, url = start(tmp_path, data, openai_upstream[0])
    try:
        rid = uuid.uuid4().hex
        with httpx.Client() as client:
            assert chat(client, url, rid).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert rid in usage_ids(data / "llmproxy.db")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs as the data directory (root only; skipped where mount is not permitted)."""
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here ({(done.stderr or done.stdout).strip() or done.returncode})"
        print(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    found = re.search(rf"^{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_full_disk_keeps_serving_counts_logs_and_corrupts_nothing(
    tmp_path: Path, small_disk: Path, openai_upstream: tuple[str, FakeState]
) -> None:
    proc, url = start(tmp_path, small_disk, openai_upstream[0])
    ids = [uuid.uuid4().hex for _ in range(40)]
    try:
        filler = fill(small_disk)
        with httpx.Client() as client:
            statuses = [chat(client, url, rid).status_code for rid in ids]
        assert statuses == [200] * len(ids)
        deadline = time.monotonic() + 10
        while metric(url, "llmproxy_usage_write_failures") < 1:
            assert time.monotonic() < deadline, "no failed usage write was counted"
            time.sleep(0.2)
        assert httpx.get(url + "/healthz").status_code == 200
        filler.unlink()  # space again: the kept rows are written on a later flush
        deadline = time.monotonic() + 15
        while metric(url, "llmproxy_usage_rows_written") < len(ids):
            if time.monotonic() > deadline:
                proc.send_signal(signal.SIGTERM)
                pytest.fail(
                    "the rows kept for retry were not written once space came back:\n"
                    + proc.communicate(timeout=30)[1][-3000:]
                )
            time.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    logs = proc.stderr.read()
    assert "usage write failed" in logs and "Traceback" not in logs.split("usage write failed")[0][-2000:]
    assert usage_ids(small_disk / "llmproxy.db") >= set(ids)  # integrity_check is part of usage_ids
