"""Security tests: the gateway served as `llmproxy serve` serves it (uvicorn with the head-limited
protocol), raw sockets to send what no well-behaved client sends, and a log sink."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from llmproxy.app import create_app
from llmproxy.config import Settings
from llmproxy.serving import uvicorn_config
from tests.conftest import base_settings
from tests.fakes import openai_server
from tests.fakes.serve import free_port


@dataclass
class Served:
    url: str
    port: int
    settings: Settings
    logs: io.BytesIO
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def served(tmp_path: Path, openai_upstream: tuple[str, openai_server.FakeState]) -> Iterator[Callable[..., Served]]:
    """Start the gateway under serve's uvicorn settings (changes as keyword arguments)."""
    started: list[Served] = []

    def start(**changes: Any) -> Served:
        settings = replace(base_settings(tmp_path, openai_upstream[0], **changes), port=free_port())
        logs = io.BytesIO()
        config = uvicorn_config(create_app(settings, configure_logs=False, log_stream=logs), settings, loop="uvloop")
        config.timeout_graceful_shutdown = 2
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        gw = Served(f"http://127.0.0.1:{settings.port}", settings.port, settings, logs, server, thread)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def exchange(port: int, data: bytes, *, read_for: float = 5.0, then: bytes | None = None) -> tuple[bytes, float, bool]:
    """Send raw bytes on a new connection (from a thread, while reading, as a real client would);
    read until the server closes or `read_for` seconds pass. Returns (what came back, seconds until
    the server closed or stopped answering, closed?)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:

        def write() -> None:
            try:
                for piece in (data, then or b""):
                    if piece:
                        sock.sendall(piece)
            except OSError:
                pass  # the server stopped reading: expected once it has answered

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        sock.settimeout(read_for)
        received = b""
        closed = False
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    closed = True
                    break
                received += piece
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
        took = time.monotonic() - started
        try:
            sock.shutdown(socket.SHUT_RDWR)  # ends the writer's sendall, if it still blocks
        except OSError:
            pass
        writer.join(timeout=5)
    return received, took, closed


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def json_body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in response else b""
