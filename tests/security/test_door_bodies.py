"""The front doors' POST routes read their own body (endpoint.read_body), outside the edge guard's
body wrapper: the same limits must hold there. A stalled body gets 408 within the read timeout, a
body over the cap gets 413, declared or chunked; each in the door's own error shape, the connection
closed. A body that keeps arriving, however slowly, is not cut off."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import orjson
import pytest

from tests.security.conftest import Served, exchange, json_body_of, status_of

DOORS = ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings", "/v1/completions"]
HEAD = b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"


def assert_door_error(response: bytes, path: str, status: int, code: str) -> None:
    assert status_of(response) == status, response[:300]
    assert b"connection: close" in response.lower()
    body = orjson.loads(json_body_of(response))
    if path == "/v1/messages":  # Anthropic's shape
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == code, body


@pytest.mark.parametrize("path", DOORS)
def test_a_body_stalled_midway_gets_408_within_the_read_timeout(served: Callable[..., Served], path: str) -> None:
    gw = served(read_timeout_s=0.5)
    head = HEAD % path.encode() + b"content-length: 200\r\n\r\n"
    response, took, closed = exchange(gw.port, head + b'{"model": "gpt-4o-mini", ', then=b'"messages": [', read_for=5)
    assert_door_error(response, path, 408, "request_timeout")
    assert closed and 0.45 < took < 2.0  # the deadline, plus one sweep (0.25 s) and a loaded machine's slack


def test_a_slow_body_that_keeps_arriving_is_not_cut_off(served: Callable[..., Served]) -> None:
    """The read timeout bounds the silence between pieces, not the whole upload."""
    gw = served(read_timeout_s=0.5)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "slow " * 20}]})
    pieces = [body[i : i + 25] for i in range(0, len(body), 25)]
    assert len(pieces) >= 5
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(HEAD % b"/v1/chat/completions" + b"content-length: %d\r\n\r\n" % len(body))
        started = time.monotonic()
        for piece in pieces:
            time.sleep(0.25)
            sock.sendall(piece)
        assert time.monotonic() - started > 1.0  # twice the read timeout, all told
        sock.settimeout(5)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    assert status_of(response) == 200, response[:300]
    assert orjson.loads(json_body_of(response))["object"] == "chat.completion"


def test_a_body_over_the_cap_gets_413_on_every_door_declared_or_chunked(served: Callable[..., Served]) -> None:
    gw = served(max_body_bytes=1000)
    for path in DOORS:
        head = HEAD % path.encode()
        response, _, closed = exchange(gw.port, head + b"content-length: 5000\r\n\r\n", then=b"{" + b" " * 100)
        assert_door_error(response, path, 413, "request_too_large")
        assert closed, path
        piece = b'{"model": "' + b"x" * 600
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(3))
        response, _, closed = exchange(gw.port, head + b"transfer-encoding: chunked\r\n\r\n" + chunks, read_for=5)
        assert_door_error(response, path, 413, "request_too_large")
        assert closed, path
