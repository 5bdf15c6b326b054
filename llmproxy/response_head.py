"""A response's status line and headers, written by uvicorn's httptools cycle in one pass.

uvicorn checks every response header on its way out with two regular expressions (name and value)
inside a Python loop. Each header cost the event loop about 7,600 instructions (bench/instructions.py,
three extra headers against none), a third of it in those expressions, and a gateway answer carries
nine. The checks matter (a value with a line break would split the head), but the names are nearly
always the same dozen, and the values can be checked all at once. `OnePassCycle.send` writes the
head of an ordinary response itself (the event loop's instructions a request, c=16, every request
new: 771,000-772,000 -> 746,000):
- a name is checked once, by uvicorn's own rule, and remembered (up to MAX_NAMES of them);
- the values are checked together: the head, joined, may hold no control character but the line
  ends, so deleting them all must remove exactly two bytes a line;
- `content-length` is read as uvicorn reads it, and a head without it (a stream) is sent chunked,
  as uvicorn sends it;
- the head of an answer with a length waits for its body, and when that comes whole the two are
  written together and the response is completed as uvicorn completes it, without uvicorn's body
  path (a write of its own and its checks);
- an app that has the whole answer may hand it over in one call, `OnePassCycle.answer`, instead of
  its two messages (the front doors do, through endpoint.respond: no message dicts and no `send`
  coroutines; instructions a request, defaults, c=16: 854,400-858,600 -> 850,300-853,700).
Anything else (a `connection` or `transfer-encoding` header from the app, an upper-case or invalid
name, a control character in a value, a second `content-length`, an HTTP/1.0 or closing
connection, paused writes, an access log; a body in pieces, or not of the length announced) goes
to uvicorn's own `send`, which writes, or refuses, exactly as it always has.
tests/unit/test_response_head.py holds the two to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http import httptools_impl

MAX_NAMES = 1024  # header names remembered; past it a new name is checked again each time
# What uvicorn refuses in a header value: any control character but the tab.
_CONTROL = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_PLAIN, _LENGTH, _OTHER = 0, 1, 2  # what a name is to the one-pass writer


class _Names(dict[bytes, int]):
    """Header names by what they are: plain (valid, lower case, written as they are), the
    content-length, or anything uvicorn's own send must handle."""

    def __missing__(self, name: bytes) -> int:
        if httptools_impl.HEADER_RE.search(name) or name.lower() != name:
            kind = _OTHER
        elif name in _FRAMING:
            kind = _LENGTH if name == b"content-length" else _OTHER
        else:
            kind = _PLAIN
        if len(self) < MAX_NAMES:
            self[name] = kind
        return kind


_names = _Names()


class OnePassCycle(httptools_impl.RequestResponseCycle):
    """uvicorn's request-response cycle, with the response head of an ordinary answer written in
    one pass (the module docstring says which and how)."""

    _held: bytes | None = None  # the head of an answer with a length, until its body comes

    def answer(self, status: int, headers: Iterable[Any], body: bytes) -> bool:
        """A whole answer in one call, for an app that has it whole (the front doors, through
        endpoint.respond): written and completed exactly as `send` writes and completes its start
        message and then its body, without either message or a coroutine for each. False, with
        nothing written or noted, when `send` must take it: in the cases `send` hands to uvicorn,
        for a HEAD request, or when the headers' content-length is not the body's."""
        if (
            self.response_started
            or self.disconnected
            or self.flow.write_paused
            or self.access_log
            or not self.keep_alive
            or self.scope["method"] == "HEAD"
        ):
            return False
        found = self._head(status, headers)
        if found is None or found[1] != len(body):
            return False
        self.response_started = True
        self.waiting_for_100_continue = False
        self.chunked_encoding = False
        self._complete(found[0] + body)
        return True

    async def send(self, message: Any) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if self._whole(message, held):
                return
            if not self.disconnected:
                self.transport.write(held)
            return await super().send(message)
        if (
            self.response_started
            or message["type"] != "http.response.start"
            or self.disconnected
            or self.flow.write_paused
            or self.access_log
            or not self.keep_alive
        ):
            return await super().send(message)
        found = self._head(message["status"], message.get("headers", ()))
        if found is None:
            return await super().send(message)  # which writes it, or refuses it, as uvicorn does
        head, length, chunked = found
        self.response_started = True
        self.waiting_for_100_continue = False
        if length is not None:
            self.expected_content_length = length
            self.chunked_encoding = False
        elif chunked:
            self.chunked_encoding = True
        if self.chunked_encoding is False and self.scope["method"] != "HEAD":
            self._held = head  # its body follows at once: the two go to the transport together
        else:
            self.transport.write(head)

    def _whole(self, message: Any, head: bytes) -> bool:
        """An answer's whole body after its held head: both written at once, and the response
        completed as uvicorn completes it. False when uvicorn's own send must take it."""
        if (
            message["type"] != "http.response.body"
            or message.get("more_body", False)
            or self.disconnected
            or self.flow.write_paused
        ):
            return False
        body = message.get("body", b"")
        if len(body) != self.expected_content_length:
            return False  # uvicorn's send raises its error
        self._complete(head + body)
        return True

    def _complete(self, answer: bytes) -> None:
        """Write a whole answer, head and body, and end the response as uvicorn's send ends it."""
        self.expected_content_length = 0
        self.transport.write(answer)
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:  # the server began shutting down after the head was held
            self.transport.close()
        self.on_response()

    def _head(self, status: int, headers: Iterable[Any]) -> tuple[bytes, int | None, bool] | None:
        """The head as uvicorn would write it, its content-length (None: none) and whether the body
        goes chunked; None when uvicorn's own send must handle it. Notes nothing on the cycle."""
        status_line = httptools_impl.STATUS_LINE.get(status)
        if status_line is None:
            return None
        lines = [status_line]
        length = None
        names = _names
        try:
            for name, value in (*self.default_headers, *headers):
                kind = names[name]
                if kind:
                    if kind is not _LENGTH or length is not None:
                        return None
                    length = int(value)
                lines += (name, b": ", value, b"\r\n")
        except (TypeError, ValueError):  # not pairs of bytes, or a content-length that is no number
            return None
        crlf = len(lines) // 2 + 4  # two bytes for the status line, each header and the blank line
        chunked = length is None and self.scope["method"] != "HEAD" and status not in (204, 304)
        if chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
            crlf += 2
        lines.append(b"\r\n")
        head = b"".join(lines)
        # Line ends are the only control characters a valid head holds (names were checked apart).
        if len(head) - len(head.translate(None, _CONTROL)) != crlf:
            return None
        return head, length, chunked


def install() -> None:
    """Make uvicorn's httptools protocol start each request's cycle as a OnePassCycle (it names
    the class at module level when a request's head is complete). Idempotent."""
    httptools_impl.RequestResponseCycle = OnePassCycle  # type: ignore[misc]
