"""A throwaway PostgreSQL server for the tests: Debian's server binaries, a cluster made by initdb in
a temporary directory, listening on a free loopback port only, fsync off (nothing here must outlive
the test session), stopped and deleted afterwards.

PostgreSQL refuses to run as root, and CI runs as root: then every server command runs as the
`postgres` system user (made by Debian's package), in a directory that user owns. Tests that need
the server skip, saying why, only where the binaries are missing and CI is not set; in CI a missing
server fails the run instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.scale.binaries import server_missing

BINARY_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


def find_binaries() -> Path | None:
    """The newest installed server's bin directory (initdb, pg_ctl, postgres), or None."""
    found = sorted(
        glob.glob(BINARY_GLOB), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0
    )
    for directory in reversed(found):
        if all((Path(directory) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binaries() -> Path:
    """The bin directory; otherwise skip (with the reason printed) or, under CI, fail."""
    binaries = find_binaries()
    if binaries is None:
        reason = (
            "PostgreSQL server binaries not found (initdb, pg_ctl under /usr/lib/postgresql/*/bin); "
            "install Debian's `postgresql` package to run the PostgreSQL tests"
        )
        server_missing(reason)
    return binaries


class PostgresServer:
    """One cluster: start(), stop() (and start() again, on the same port and data), close()."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="llmproxy-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-locale"
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "shared_buffers = 32MB\n"
            )
        self.running = False

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.binaries / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "30", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnects clients and shuts down cleanly; `immediate`: like a crash)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
            self.running = False

    def create_database(self, name: str) -> str:
        """A fresh database on this server; returns its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """One statement through psql, as the superuser; returns its unaligned output."""
        command = [
            str(self.binaries / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def wait_until(predicate: object, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    """Poll a zero-argument callable until it returns truthy or the time runs out."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
