"""Structured logs: one JSON line per record (orjson), or a readable line for a terminal.

Lines are written to stderr by a background thread in batches, so the loop never blocks on the
terminal or a full pipe and pays no thread wake-up per line. The per-request line is formatted on
that thread too, from the request's usage row: the event loop only queues a tuple.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import IO, Any

import orjson

from .background import lower_priority
from .context import ChatCompletion, RequestContext
from .store.records import UsageRow

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_ROW_FIELDS = UsageRow._fields[1:]  # a usage row starts with its request's start time; the line has its own ts
# A request line's fields in order, the constant ones filled in: each line starts as a copy (no
# growing and rehashing a dict of 27 keys on the log writer's thread, which shares the gateway's core).
_REQUEST_LINE = {
    "ts": None,
    "level": "info",
    "logger": "llmproxy.request",
    "msg": "request",
    **dict.fromkeys(_ROW_FIELDS),
    "stream": False,
}
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def render(fields: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(fields, default=str) + b"\n"
    head = f"{fields.pop('ts', '')} {str(fields.pop('level', '')).upper():<7} {fields.pop('msg', '')}"
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k != "logger")
    return f"{head} {rest}".rstrip().encode() + b"\n"


def render_request_text(f: dict[str, Any]) -> bytes:
    """A request line for a person at a terminal: outcome, model, time, tokens, cost, then the ids."""
    model = f["model"] or f["requested_model"] or "-"
    via = f" via {f['provider']}" if f["provider"] else ""
    parts = [f["ts"], "INFO   ", str(f["status"]), model + via, f"{f['latency_ms']:.1f}ms"]
    if f["ttft_ms"] is not None:
        parts.append(f"ttft {f['ttft_ms']:.1f}ms")
    parts.append(f"overhead {f['overhead_ms']:.2f}ms")
    if f["prompt_tokens"] is not None:
        parts.append(f"tokens {f['prompt_tokens']} in {f['completion_tokens']} out")
    if f["cost_usd"] is not None:
        parts.append(f"${f['cost_usd']:.6f}")
    parts.append(f"cache {f['cache']}")
    if "tried" in f:
        parts.append("tried " + ",".join(f["tried"]))
    if f["error_type"]:
        parts.append(f"error {f['error_type']}")
    parts.append(f"id {f['request_id']}")
    if f["key_id"]:
        parts.append(f"key {f['key_id']}")
    line = "  ".join(parts)
    for name in ("messages", "choices"):
        if name in f:
            line += f"\n    {name}: " + orjson.dumps(f[name], default=str).decode()
    return line.encode() + b"\n"


# A timestamp's ending, looked up rather than formatted; the 1001st: a fraction a hair under 1 may
# round up to 1000 ms.
_MILLIS = (*(f".{ms:03d}Z" for ms in range(1000)), ".999Z")


def timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + _MILLIS[int(created % 1 * 1000)]


class _Clock:
    """ISO timestamps for request lines; the date-time part is formatted once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def at(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix + _MILLIS[int(created % 1 * 1000)]


WRITE_LINES = 64  # lines per write to the stream (about 35 KB of request lines)


def _line(item: bytes | tuple[Any, ...]) -> bytes:
    """A queued line, formatted if it is a record (its first element renders it)."""
    if not isinstance(item, tuple):
        return item
    try:
        return item[0](item)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - one bad record must not stop the log
        return (
            orjson.dumps(
                {
                    "ts": timestamp(time.time()),
                    "level": "error",
                    "logger": "llmproxy.logs",
                    "msg": "a log record could not be formatted",
                    "error": repr(exc),
                }
            )
            + b"\n"
        )


class LineWriter:
    """Lines appended from any thread, written by one background thread every `interval_s`.

    An item is a ready line (bytes) or a record to format there, off the event loop: a tuple whose
    first element renders it (`item[0](item)` gives the line)."""

    def __init__(self, stream: IO[bytes], interval_s: float = 0.05, max_lines: int = 100_000) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self.max_lines = max_lines
        self.dropped = 0
        self._lines: deque[bytes | tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmproxy-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def write(self, line: bytes | tuple[Any, ...]) -> None:
        if len(self._lines) >= self.max_lines:  # stderr is stuck: drop, and say so once it moves
            self.dropped += 1
            return
        self._lines.append(line)

    def _run(self) -> None:
        lower_priority()
        while not self._stop.wait(self._interval_s):
            self.flush()
        self.flush()

    def flush(self) -> None:
        lines = self._lines
        while lines:
            # WRITE_LINES at a time: a batch formatted whole before one write held all its lines at
            # once (a backlog of max_lines, tens of MB, joined into one buffer as large), and a
            # burst's freed memory went back to the system only to be faulted in again.
            self._write([_line(lines.popleft()) for _ in range(min(len(lines), WRITE_LINES))])
        if self.dropped:
            note = {
                "ts": timestamp(time.time()),
                "level": "error",
                "logger": "llmproxy.logs",
                "msg": "log lines dropped while stderr was not draining",
                "dropped": self.dropped,
            }
            self._write([orjson.dumps(note) + b"\n"])
            self.dropped = 0

    def _write(self, out: list[bytes]) -> None:
        try:
            self._stream.write(b"".join(out))
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not take the gateway down

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()


class RequestLog:
    """The one-line-per-request log, written without the logging module's per-record cost."""

    def __init__(self, writer: LineWriter | None, level: str, fmt: str, *, payloads: bool = False) -> None:
        self._writer = writer
        self._fmt = fmt
        self._clock = _Clock()
        self.payloads = payloads  # prompts and completions go in the line only when this is set
        self.enabled = writer is not None and LEVELS.get(level, 20) <= 20

    def request(self, ctx: RequestContext, row: UsageRow, completion: ChatCompletion | None = None) -> None:
        """Queue the line for one finished request: its usage row (ids, route, tokens, cost, timings,
        outcome), the stream flag and, after a fallback, every try. The
        writer thread formats it. Never a key or credential; the prompt and the completion only
        when payload logging is on."""
        attempts = ctx.attempts
        tried = [f"{a.provider}/{a.model}:{a.status}" for a in attempts] if len(attempts) > 1 else None
        payload = None
        if self.payloads:
            payload = (
                ctx.body.get("messages") if isinstance(ctx.body, dict) else None,
                completion.get("choices") if completion is not None else None,
            )
        self._writer.write((self._render, row, ctx.stream, tried, payload))  # type: ignore[union-attr]  # enabled implies a writer

    def _render(self, item: tuple[Any, ...]) -> bytes:
        _, row, stream, tried, payload = item
        finished = row.ts + row.latency_ms / 1000.0
        fields: dict[str, Any] = _REQUEST_LINE.copy()
        fields["ts"] = self._clock.at(finished)
        fields.update(zip(_ROW_FIELDS, row[1:]))  # noqa: B905 - both from UsageRow; strict= costs a dict per call
        fields["stream"] = stream
        if tried is not None:
            fields["tried"] = tried
        if payload is not None:
            fields["messages"] = payload[0]
            if payload[1] is not None:
                fields["choices"] = payload[1]
        return render_request_text(fields) if self._fmt == "text" else _json_line(fields)


def _json_line(fields: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # a payload field orjson does not know (payload logging only)
        return orjson.dumps(fields, default=str, option=orjson.OPT_APPEND_NEWLINE)


class LineHandler(logging.Handler):
    """A logging handler for every other llmproxy record (start-up, warnings, errors)."""

    def __init__(self, writer: LineWriter, fmt: str) -> None:
        super().__init__()
        self._writer = writer
        self._fmt = fmt

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {
                "ts": timestamp(record.created),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
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
