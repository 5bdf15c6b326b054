"""`llmproxy users | keys` on the data directory: bootstrap on a fresh install with the gateway
stopped, and changes made while it runs reach it within ~2 s."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from llmproxy import cli
from llmproxy.config import Settings
from tests.auth.conftest import Gw


def spawn_cli(*argv: str, stdin: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "llmproxy", *argv], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_bootstrap_on_a_fresh_install_then_serve(launch: Callable[..., Gw], settings: Callable[..., Settings]) -> None:
    config = settings(master_key=None)
    data = str(config.data_dir)
    assert not config.data_dir.exists()
    admin = spawn_cli("users", "create-admin", "--name", "root", "--data-dir", data, stdin="root-password-1\n")
    assert admin == {"name": "root", "role": "admin", "login": "POST /admin/login"}
    key = spawn_cli(
        "keys",
        "create",
        "--name",
        "first",
        "--rpm",
        "10",
        "--models",
        "gpt-4o-mini,ollama/*",
        "--metadata",
        '{"team": "x"}',
        "--data-dir",
        data,
    )
    assert key["key"].startswith("sk-") and key["rpm"] == 10 and key["models"] == ["gpt-4o-mini", "ollama/*"]
    listed = spawn_cli("keys", "list", "--data-dir", data)
    assert [k["id"] for k in listed] == [key["id"]] and key["key"] not in json.dumps(listed)

    gw = launch(config)
    assert gw.chat(None).status_code == 401  # keys exist: keyless loopback calls are over
    assert gw.chat(key["key"]).status_code == 200
    login = gw.admin("POST", "/admin/login", token=None, json={"username": "root", "password": "root-password-1"})
    assert gw.admin("GET", "/admin/keys", token=login.json()["access_token"]).status_code == 200


def test_cli_changes_reach_a_running_gateway_within_two_seconds(
    launch: Callable[..., Gw],
    settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = settings()
    data = str(config.data_dir)
    gw = launch(config)
    key = run_cli(monkeypatch, capsys, "keys", "create", "--name", "live", "--data-dir", data)
    deadline = time.monotonic() + 2.5
    while gw.chat(key["key"]).status_code != 200:  # a key made by the CLI starts working
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run_cli(monkeypatch, capsys, "keys", "update", key["id"], "--rpm", "1000", "--data-dir", data)
    rotated = run_cli(monkeypatch, capsys, "keys", "rotate", key["id"], "--grace", "0", "--data-dir", data)
    deadline = time.monotonic() + 2.5
    while gw.chat(rotated["key"]).status_code != 200:  # the new value works once the gateway has it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert gw.chat(key["key"]).status_code == 401  # no grace: the old value ended with the rotation
    assert gw.chat(rotated["key"]).headers["x-ratelimit-limit-requests"] == "1000"
    revoke_at = time.monotonic()
    run_cli(monkeypatch, capsys, "keys", "revoke", key["id"], "--data-dir", data)
    while gw.chat(rotated["key"]).status_code != 401:
        assert time.monotonic() - revoke_at < 2.5, "a key revoked by the CLI still worked after 2.5 s"
        time.sleep(0.05)
    actors = {e["actor"] for e in gw.admin("GET", "/admin/audit").json()["data"]}
    assert all(a.startswith("cli") for a in actors)


def test_cli_errors_are_one_line_and_exit_2(
    settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = str(settings().data_dir)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["users", "create-admin", "--data-dir", data]) == 2
    assert cli.main(["keys", "revoke", "key_missing", "--data-dir", data]) == 2
    assert cli.main(["keys", "create", "--name", "x", "--rpm", "0", "--data-dir", data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "8 characters" in err[0] and "key_missing" in err[1] and "rpm" in err[2]


def test_cli_sets_and_clears_a_key_strategy(
    settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(settings().data_dir)
    key = run_cli(monkeypatch, capsys, "keys", "create", "--name", "q", "--strategy", "quality", "--data-dir", data)
    assert key["strategy"] == "quality"
    updated = run_cli(monkeypatch, capsys, "keys", "update", key["id"], "--strategy", "latency", "--data-dir", data)
    assert updated["strategy"] == "latency"
    cleared = run_cli(monkeypatch, capsys, "keys", "update", key["id"], "--strategy", "default", "--data-dir", data)
    assert cleared["strategy"] is None
