"""The log writer's batches: every line in order, records formatted on its thread, a record that
cannot be formatted replaced by an error line, drops announced, and a batch written a piece at a
time."""

from __future__ import annotations

import io
from typing import Any

import orjson

from llmproxy.logs import WRITE_LINES, LineWriter


class Pieces(io.BytesIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return super().write(data)


def record(item: tuple[Any, ...]) -> bytes:
    return b"record %d\n" % item[1]


def broken(item: tuple[Any, ...]) -> bytes:
    raise ValueError("no")


def test_a_batch_is_written_in_order_a_piece_at_a_time() -> None:
    stream = Pieces()
    writer = LineWriter(stream, max_lines=1000)
    for n in range(3 * WRITE_LINES + 5):
        writer.write((record, n) if n % 2 else b"line %d\n" % n)
    writer.write((broken, 0))
    writer.flush()
    lines = stream.getvalue().splitlines()
    assert lines[:-1] == [(b"record %d" if n % 2 else b"line %d") % n for n in range(3 * WRITE_LINES + 5)]
    error = orjson.loads(lines[-1])
    assert error["level"] == "error" and error["msg"] == "a log record could not be formatted"
    assert [piece.count(b"\n") for piece in stream.writes] == [WRITE_LINES] * 3 + [6]


def test_lines_past_the_bound_are_dropped_and_said() -> None:
    stream = Pieces()
    writer = LineWriter(stream, max_lines=3)
    for n in range(5):
        writer.write(b"line %d\n" % n)
    writer.flush()
    *kept, note = stream.getvalue().splitlines()
    assert kept == [b"line 0", b"line 1", b"line 2"]
    assert orjson.loads(note)["dropped"] == 2
    writer.flush()
    assert stream.getvalue().count(b'"dropped":') == 1  # said once
