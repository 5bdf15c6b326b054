"""`llmproxy serve` as a user runs it: a real process, its defaults, its refusals and its shutdown."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parents[2]


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))
    }
    full_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "llmproxy", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited: {proc.stderr.read()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("gateway did not become ready")


def test_refuses_public_address_without_master_key(tmp_path: Path) -> None:
    proc = spawn(["serve", "--host", "0.0.0.0", "--port", str(free_port())], {}, tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip().count("\n") == 0 and "LLMPROXY_MASTER_KEY" in err


def test_unknown_config_key_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "llmproxy.toml").write_text("[server]\nprot = 8080\n")
    proc = spawn(["serve"], {}, tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "server.prot" in err


def test_serve_with_toml_env_and_sigterm_drain(tmp_path: Path, openai_upstream: tuple[str, FakeState]) -> None:
    base, state = openai_upstream
    port = free_port()
    (tmp_path / "llmproxy.toml").write_text(
        f'[providers.local]\nkind = "openai-compatible"\nbase_url = "{base}"\napi_key_env = "LOCAL_KEY"\n'
        'models = ["fake-model"]\n'
    )
    proc = spawn(
        ["serve", "--port", str(port), "--data-dir", str(tmp_path / "state")],
        {"LOCAL_KEY": API_KEY, "LLMPROXY_OPENAI_BASE_URL": base, "OPENAI_API_KEY": API_KEY},
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        r = httpx.post(
            url + "/v1/chat/completions", json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert r.status_code == 200 and r.headers["x-llmproxy-provider"] == "local"
        # a slow stream is in flight when SIGTERM arrives: it must finish, and be recorded
        state.chunk_delay_s = 0.2
        received: list[bytes] = []

        def consume() -> None:
            with httpx.stream(
                "POST",
                url + "/v1/chat/completions",
                timeout=30,
                json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "a b c d e"}]},
            ) as s:
                for piece in s.iter_raw():
                    received.append(piece)

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=20)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert b"".join(received).endswith(b"data: [DONE]\n\n")
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once it has drained
    db = sqlite3.connect(tmp_path / "state" / "llmproxy.db")
    rows = db.execute("SELECT model, provider, status FROM usage ORDER BY id").fetchall()
    assert rows == [("local/fake-model", "local", 200), ("gpt-4o-mini", "openai", 200)]
    logs = proc.stderr.read()
    assert API_KEY not in logs


def test_defaults_listen_on_loopback_8080_with_data_dir(tmp_path: Path) -> None:
    if _port_busy(8080):
        pytest.skip("port 8080 is in use on this machine")
    proc = spawn(["serve"], {}, tmp_path)
    try:
        wait_ready("http://127.0.0.1:8080", proc)
        assert (tmp_path / "data" / "llmproxy.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _port_busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
