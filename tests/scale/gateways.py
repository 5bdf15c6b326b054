"""Real `llmproxy serve` processes for the scale tests: each with a data directory of its own (as on
separate machines) and the shared database, the vault key and the master key in common; output
to a file (a pipe nobody reads would fill and stall the process)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.openai_server import API_KEY
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parent.parent.parent
MASTER = "sk-master-scale-tests-0123456789abcdef"
VAULT_KEY = "scale-tests-vault-key-0123456789abcdef0123456"
FLUSH_S = 0.25  # usage.flush_interval_s, the default


@dataclass
class GatewayProcess:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def chat(self, client: httpx.Client, key: str, request_id: str | None = None, **fields: Any) -> httpx.Response:
        rid = request_id or uuid.uuid4().hex
        return client.post(
            self.url + "/v1/chat/completions",
            timeout=15,
            headers={"authorization": f"Bearer {key}", "x-request-id": rid},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": rid}], **fields},
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={"authorization": f"Bearer {MASTER}"}, timeout=15, **kwargs
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> bool:
        """Send `sig` and wait for the exit; whether it ended as that signal asks (uvicorn
        re-raises SIGTERM after its graceful shutdown, so a clean stop is 0 or -SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code in (0, -signal.SIGTERM) if sig == signal.SIGTERM else code == -sig

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn(
    tmp_path: Path, name: str, database_url: str, upstream: str, redis_url: str | None = None, **settings: str
) -> GatewayProcess:
    """Start one gateway (returns at once; `wait_ready` waits for it); with `redis_url`, its limits,
    cache and notifications shared through that Redis as well."""
    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    registry = home / "registry" / "models.json"
    registry.parent.mkdir(exist_ok=True)
    shutil.copy(REPO / "registry" / "models.json", registry)
    extra = "".join(f"{k} = {v}\n" for k, v in settings.items())
    (home / "llmproxy.toml").write_text(
        f'[usage]\nflush_interval_s = {FLUSH_S}\n{extra}[registry]\npath = "{registry}"\nauto_update = false\n'
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    env.update(
        {
            "OPENAI_API_KEY": API_KEY,
            "LLMPROXY_OPENAI_BASE_URL": upstream,
            "LLMPROXY_MASTER_KEY": MASTER,
            "LLMPROXY_SECRET_KEY": VAULT_KEY,
            "LLMPROXY_DATABASE_URL": database_url,
            "LLMPROXY_LOG_LEVEL": "warning",
        }
    )
    if redis_url:
        env["LLMPROXY_REDIS_URL"] = redis_url
    log_path = home / "gateway.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmproxy",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(home / "data"),
                "--log-format",
                "text",
            ],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return GatewayProcess(name, f"http://127.0.0.1:{port}", proc, log_path)


def wait_ready(*gateways: GatewayProcess, timeout: float = 30) -> None:
    """Ready, and warmed by one request each (a process's first request costs seconds of lazy
    set-up on a busy machine, which would count against the timings under test)."""
    deadline = time.monotonic() + timeout
    for gw in gateways:
        while True:
            if gw.proc.poll() is not None:
                raise AssertionError(f"gateway {gw.name} exited: {gw.log()[-2000:]}")
            try:
                if httpx.get(gw.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway {gw.name} did not become ready: {gw.log()[-2000:]}")
            time.sleep(0.1)
    with httpx.Client(timeout=30) as client:
        for gw in gateways:
            assert gw.chat(client, MASTER).status_code == 200


def metric(gw: GatewayProcess, name: str) -> float:
    """One unlabelled sample of the gateway's /metrics."""
    text = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}, timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")
