"""The served connection's transport: what uvicorn writes in one turn of the event loop leaves in one
write (a response's head and body as one send), in order, and nothing is lost on close or EOF."""

from __future__ import annotations

import asyncio
from typing import Any

from llmproxy.serving import _OneWritePerTurn


class RecordingTransport:
    """Just what the wrapper uses of a transport, with every call noted in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def writelines(self, pieces: list[bytes]) -> None:
        self.calls.append(("writelines", b"".join(pieces)))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> str:
        return f"info:{name}"


async def test_a_head_and_body_written_in_one_turn_leave_in_one_write() -> None:
    raw = RecordingTransport()
    transport = _OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert raw.calls == []  # nothing before the turn ends
    await asyncio.sleep(0)
    assert raw.calls == [("writelines", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")]
    transport.write(b"data: 1\n\n")  # a stream's next event: its own write, in its own turn
    await asyncio.sleep(0)
    assert raw.calls[1:] == [("writelines", b"data: 1\n\n")]


async def test_close_and_eof_send_what_waits_first() -> None:
    raw = RecordingTransport()
    transport = _OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"answer")
    transport.write_eof()
    transport.write(b"late")
    transport.close()
    assert raw.calls == [("writelines", b"answer"), ("write_eof", None), ("writelines", b"late"), ("close", None)]
    transport.write(b"after close")
    await asyncio.sleep(0)
    assert raw.calls[-1] == ("close", None)  # a closed transport is not written to
    assert transport.is_closing()
    assert transport.get_extra_info("peername") == "info:peername"  # the rest is the transport's own


def test_the_wrapper_offers_a_whole_transport_without_a_getattr_hook() -> None:
    # Every method of asyncio's Transport, on the class itself: a __getattr__ would slow down every
    # look-up on it, write and is_closing included.
    api = {name for name in dir(asyncio.Transport) if not name.startswith("_")}
    assert api <= set(dir(_OneWritePerTurn))
    assert "__getattr__" not in vars(_OneWritePerTurn)
