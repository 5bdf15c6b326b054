"""A throwaway redis-server for tests: a free loopback port, a temporary directory, no persistence.

`RedisServer(dir).start()` runs Debian's (or any) redis-server binary found on PATH and waits
until it answers PING; `stop()` ends it (SIGTERM, then SIGKILL); `restart()` stops it and starts a
fresh, empty one on the same port, as a crashed Redis without persistence comes back. Without the
binary the tests that need it skip, printing why, unless the CI variable is set: then they fail,
since CI installs redis-server (.ci/run).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.fakes.serve import free_port
from tests.scale.binaries import find_binary, server_missing

START_TIMEOUT_S = 10.0


def redis_binary() -> str:
    """The redis-server path, or skip (fail under CI) with the reason printed."""
    found = find_binary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
    if found is None:
        server_missing("redis-server is not installed (apt-get install redis-server); the scale tests need a real one")
    return found


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = redis_binary()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING in time")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command in RESP, its raw reply (enough for the tests' few checks)."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload)
            return sock.recv(65536)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
