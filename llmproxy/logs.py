"""Structured logs: one JSON line per record (orjson), or a readable line for a terminal.

Lines are formatted on the event loop (cheap) and written to stderr by a background thread in
batches, so the loop never blocks on the terminal or a full pipe, and pays no thread wake-up per line.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import IO, Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def render(fields: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(fields, default=str) + b"\n"
    head = f"{fields.pop('ts', '')} {str(fields.pop('level', '')).upper():<7} {fields.pop('msg', '')}"
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k != "logger")
    return f"{head} {rest}".rstrip().encode() + b"\n"


def timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class _Clock:
    """ISO timestamps for request lines; the date-time part is formatted once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        created = time.time()
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int(created % 1 * 1000):03d}Z"


class LineWriter:
    """Lines appended from any thread, written by one background thread every `interval_s`."""

    def __init__(self, stream: IO[bytes], interval_s: float = 0.05) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self._lines: deque[bytes] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmproxy-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def write(self, line: bytes) -> None:
        self._lines.append(line)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()
        self.flush()

    def flush(self) -> None:
        out = []
        lines = self._lines
        while lines:
            out.append(lines.popleft())
        if out:
            try:
                self._stream.write(b"".join(out))
                self._stream.flush()
            except (OSError, ValueError):
                pass   # a closed stderr must not take the gateway down

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()


class RequestLog:
    """The one-line-per-request log, written without the logging module's per-record cost."""

    def __init__(self, writer: LineWriter | None, level: str, fmt: str) -> None:
        self._writer = writer
        self._fmt = fmt
        self._clock = _Clock()
        self.enabled = writer is not None and LEVELS.get(level, 20) <= 20

    def emit(self, fields: dict[str, Any]) -> None:
        if self._writer is None:
            return
        line = {"ts": self._clock.now(), "level": "info", "logger": "llmproxy.request", "msg": "request"}
        line.update(fields)
        self._writer.write(render(line, self._fmt))


class LineHandler(logging.Handler):
    """A logging handler for every other llmproxy record (start-up, warnings, errors)."""

    def __init__(self, writer: LineWriter, fmt: str) -> None:
        super().__init__()
        self._writer = writer
        self._fmt = fmt

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"ts": timestamp(record.created), "level": record.levelname.lower(),
                                      "logger": record.name, "msg": record.getMessage()}
            for key, value in record.__dict__.items():
                if key not in _STANDARD:
                    fields[key] = value
            if record.exc_info:
                fields["exc"] = logging.Formatter().formatException(record.exc_info)
            self._writer.write(render(fields, self._fmt))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def configure_logging(writer: LineWriter, level: str, fmt: str) -> None:
    root = logging.getLogger("llmproxy")
    root.handlers[:] = [LineHandler(writer, fmt)]
    root.setLevel(LEVELS.get(level, 20))
    root.propagate = False
