"""`llmproxy serve`: run the gateway under uvicorn, refusing to face a network without a master key."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Settings


def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--data-dir", help="directory for the SQLite file and other state (default ./data)")
    serve.add_argument("--log-format", choices=("json", "text"), help="log line format (default json)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port (default 1; more than 1 needs Redis: LLMPROXY_REDIS_URL)",
    )
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # a worker's inherited socket (cli/workers.py)


def run(settings: Settings, args: argparse.Namespace) -> int:
    settings = replace(
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        data_dir=Path(args.data_dir) if args.data_dir else settings.data_dir,
        log_format=args.log_format or settings.log_format,
    )
    if settings.master_key is None and not is_loopback(settings.host):
        print(
            f"llmproxy: refusing to listen on {settings.host} without a master key; "
            "set LLMPROXY_MASTER_KEY or listen on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if args.workers != 1 and args.fd is None:
        return _workers(settings, args)
    import uvicorn

    from ..app import create_app
    from ..serving import uvicorn_config

    tune_gc()
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, loop=_loop()))
    server.run(sockets=None if args.fd is None else [socket.socket(fileno=args.fd)])
    return 0 if server.started else 3  # as uvicorn.run: 3 when it could not start (port taken...)


def _workers(settings: Settings, args: argparse.Namespace) -> int:
    if args.workers < 1:
        print("llmproxy: --workers must be 1 or more", file=sys.stderr)
        return 2
    if settings.redis.url is None:
        print(
            f"llmproxy: refusing to start {args.workers} workers without shared state: each process would keep "
            f"its own rate-limit windows, budgets and breakers, multiplying every limit by {args.workers}. "
            "Set LLMPROXY_REDIS_URL (or url in the [redis] section of llmproxy.toml) to a Redis all workers "
            "share, or run one worker.",
            file=sys.stderr,
        )
        return 2
    from .workers import supervise

    return supervise(settings, args.workers, args.config)


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running server. The modules loaded by now
    are frozen out of every later collection, and the youngest generation is collected every
    20,000 net allocations instead of 700: a request's objects are freed by reference counting
    long before that, so collections stop sweeping in-flight requests. Cyclic garbage still goes,
    just later (memory stays flat: bench/soak.py). Measured on the shared bench: about +2% req/s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loop() -> str:
    try:
        import uvloop  # noqa: F401 - only asks whether uvloop is installed
    except ImportError:
        return "asyncio"
    return "uvloop"
