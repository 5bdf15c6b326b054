"""`llmproxy usage`: the same report as GET /admin/usage, as a table, CSV or JSON, from the local
database or from a running gateway."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from llmproxy.cli import main
from llmproxy.store.sqlite import SQLiteStore
from llmproxy.store.usage_sql import SQLiteUsageStore
from tests.observability.test_usage_store import DAY, T0, row

REPO = Path(__file__).resolve().parents[2]


def seed(data_dir: Path) -> None:
    asyncio.run(_seed(data_dir))


async def _seed(data_dir: Path) -> None:
    store = await SQLiteStore.open(data_dir / "llmproxy.db")
    try:
        await SQLiteUsageStore.over(store.db).insert(
            [
                row(
                    T0 + 10, model="gpt-4o", provider="openai", cost_usd=0.25, prompt_tokens=1000, completion_tokens=100
                ),
                row(
                    T0 + 20, model="gpt-4o", provider="openai", cost_usd=0.25, prompt_tokens=1000, completion_tokens=100
                ),
                row(
                    T0 + DAY + 5,
                    model="claude-sonnet-4-5",
                    provider="anthropic",
                    cost_usd=1.5,
                    prompt_tokens=20000,
                    completion_tokens=3000,
                    key_id="k2",
                ),
            ]
        )
    finally:
        await store.close()


def test_table_csv_and_json_from_the_local_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    assert main(["usage", "--data-dir", str(tmp_path), "--group-by", "model,provider"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "usage from the beginning to now (UTC)"
    header = out[1].split()
    assert header[:3] == ["model", "provider", "requests"]
    body = {line.split()[0]: line.split() for line in out[3:] if line and not line.startswith(("-", "TOTAL"))}
    assert body["gpt-4o"][1:3] == ["openai", "2"] and body["gpt-4o"][-2] == "0.500000"
    assert body["claude-sonnet-4-5"][6] == "20,000"
    total = [line for line in out if line.startswith("TOTAL")][0].split()
    assert total[1] == "3" and total[-2] == "2.000000"

    since = time.strftime("%Y-%m-%d", time.gmtime(T0 + DAY))
    assert main(["usage", "--data-dir", str(tmp_path), "--group-by", "day,key", "--since", since, "--csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(t["day"], t["key_id"], t["requests"], t["cost_usd"]) for t in table] == [(since, "k2", "1", "1.50000000")]

    assert main(["usage", "--data-dir", str(tmp_path), "--group-by", "key", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["object"] == "usage" and doc["totals"]["requests"] == 3 and doc["source"] == "rollup"


def test_missing_database_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--data-dir", str(tmp_path / "none")]) == 1
    assert "no usage database" in capsys.readouterr().err
    (tmp_path / "llmproxy.db").touch()
    assert main(["usage", "--data-dir", str(tmp_path), "--group-by", "prompt"]) == 2
    assert "cannot group by 'prompt'" in capsys.readouterr().err


def test_from_a_running_gateway(gateway_factory: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    url = gateway_factory()
    for i in range(3):
        httpx.post(
            url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"cli {i}"}]},
        )
    deadline = time.monotonic() + 5
    while httpx.get(url + "/admin/usage").json()["totals"]["requests"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert main(["usage", "--url", url, "--group-by", "model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["gpt-4o-mini", "3"] for line in lines)
    assert main(["usage", "--url", "http://127.0.0.1:9", "--group-by", "model"]) == 1


def test_as_a_command(tmp_path: Path) -> None:
    seed(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "llmproxy", "usage", "--data-dir", str(tmp_path), "--group-by", "provider"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[3:5]] == ["anthropic", "openai"]
