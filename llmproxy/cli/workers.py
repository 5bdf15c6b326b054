"""`llmproxy serve --workers N`: N gateway processes on one listening socket, and their supervisor.

The supervisor binds the address once and starts N `llmproxy serve` children that inherit the
socket (the kernel hands each new connection to one of them). It forwards SIGTERM and SIGINT, so
every child drains its requests as a single process would, and starts a child again when one dies
on its own (not more than once per RESTART_BACKOFF_S for the same slot). It never serves requests.
Limits, budgets and the cache's shared tier are exact across the children only through Redis: the
caller refuses N > 1 without it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from ..config import Settings

RESTART_BACKOFF_S = 2.0
QUICK_DEATHS = 5  # children dying within RESTART_BACKOFF_S of their start, in a row: give up (bad config...)
POLL_S = 0.2


def child_args(settings: Settings, config: str | None, fd: int) -> list[str]:
    """The command line of one child: the parent's settings, the inherited socket's descriptor."""
    args = [sys.executable, "-m", "llmproxy"]
    if config:
        args += ["--config", config]
    return args + [
        "serve",
        "--fd",
        str(fd),
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--data-dir",
        str(settings.data_dir),
        "--log-format",
        settings.log_format,
    ]


def supervise(settings: Settings, workers: int, config: str | None) -> int:
    try:
        sock = socket.create_server(
            (settings.host.strip("[]"), settings.port),
            backlog=min(2048, settings.max_connections),
            family=socket.AF_INET6 if ":" in settings.host else socket.AF_INET,
        )
    except OSError as exc:
        print(f"llmproxy: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 3
    sock.set_inheritable(True)
    fd = sock.fileno()
    argv = child_args(settings, config, fd)
    children: list[subprocess.Popen[bytes] | None] = [None] * workers
    started = [0.0] * workers
    stopping: list[int] = []
    quick_deaths = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(
        f"llmproxy: {workers} workers on {settings.host}:{settings.port} (supervisor pid {os.getpid()})",
        file=sys.stderr,
    )
    codes: list[int] = []
    try:
        while True:
            for slot, child in enumerate(children):
                if child is not None and child.poll() is None:
                    continue
                if child is not None:
                    codes.append(child.returncode)
                    quick = time.monotonic() - started[slot] < 2 * RESTART_BACKOFF_S
                    quick_deaths = quick_deaths + 1 if quick else 0
                    if quick_deaths >= QUICK_DEATHS and not stopping:
                        print("llmproxy: workers keep exiting at startup; stopping", file=sys.stderr)
                        forward(signal.SIGTERM, None)
                    if not stopping:
                        print(
                            f"llmproxy: worker {child.pid} exited with {child.returncode}; starting another",
                            file=sys.stderr,
                        )
                    children[slot] = None
                if not stopping and time.monotonic() - started[slot] >= RESTART_BACKOFF_S:
                    children[slot] = subprocess.Popen(argv, pass_fds=(fd,))
                    started[slot] = time.monotonic()
            if stopping and all(c is None for c in children):
                break
            time.sleep(POLL_S)
    finally:
        for child in children:
            if child is not None and child.poll() is None:
                child.kill()
        sock.close()
    return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
