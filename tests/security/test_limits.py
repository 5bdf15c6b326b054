"""Limits on every route: body size (413), headers (431), slow or silent clients (408), requests in
flight (503), abandoned uploads; each answered in OpenAI's shape, the connection closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import orjson
import psutil
import pytest

from llmproxy.app import create_app
from llmproxy.serving import HeadLimitedProtocol, uvicorn_config
from tests.conftest import base_settings
from tests.fakes.serve import ServerThread
from tests.security.conftest import Served, exchange, json_body_of, status_of


def assert_error(response: bytes, status: int, code: str) -> None:
    assert status_of(response) == status, response[:300]
    error = orjson.loads(json_body_of(response))["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    assert b"connection: close" in response.lower()


def test_admin_login_refuses_a_huge_body_before_reading_it(served: Callable[..., Served]) -> None:
    gw = served()
    head = (
        b"POST /admin/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 200000000\r\n\r\n"
    )
    response, took, closed = exchange(gw.port, head, then=b'{"username": "admin", "password": "' + b"x" * 60_000)
    assert_error(response, 413, "request_too_large")
    assert took < 2 and closed  # answered from the declared length, the rest never read


def test_chunked_admin_body_is_cut_at_the_admin_cap_with_memory_flat(served: Callable[..., Served]) -> None:
    gw = served()
    process = psutil.Process()
    before = process.memory_info().rss
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    received = b""
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(
            b"POST /admin/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(3200):  # 200 MiB offered
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(5)
        try:
            while piece := sock.recv(65536):
                received += piece
        except (ConnectionResetError, TimeoutError):
            pass
    assert_error(received, 413, "request_too_large")
    assert process.memory_info().rss - before < 50 * 2**20


@pytest.mark.parametrize(
    "extra, why",
    [
        (b"".join(b"x-h%d: 1\r\n" % i for i in range(20_000)), "20,000 headers"),
        (b"x-big: " + b"a" * (16 * 2**20) + b"\r\n", "one 16 MiB header"),
        # over the 32 KiB rule for names and values, under the raw head's bound (rule + request line)
        (b"x-big: " + b"a" * 33_000 + b"\r\n", "33 KB of headers"),
    ],
)
def test_oversized_heads_get_431_and_a_closed_connection(served: Callable[..., Served], extra: bytes, why: str) -> None:
    gw = served()
    try:
        response, took, closed = exchange(gw.port, b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n" + extra + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail(f"{why}: the connection was reset without an answer")
    assert_error(response, 431, "headers_too_large")
    assert closed
    assert httpx.get(gw.url + "/healthz").status_code == 200
    assert httpx.get(gw.url + "/healthz", headers={"x-big": "a" * 32_000}).status_code == 200  # just under


def test_the_app_itself_refuses_oversized_heads_under_any_server(tmp_path, openai_upstream) -> None:
    """Plain uvicorn (no serve protocol): the guard still answers 431 once the head reaches the app."""
    settings = base_settings(tmp_path, openai_upstream[0])
    with ServerThread(create_app(settings, configure_logs=False)) as server:
        many = {f"x-h{i}": "1" for i in range(150)}
        r = httpx.get(server.url + "/healthz", headers=many)
        assert r.status_code == 431 and r.json()["error"]["code"] == "headers_too_large"
        r = httpx.get(server.url + "/v1/models", headers={"x-big": "a" * 40_000})
        assert r.status_code == 431
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_half_a_head_or_nothing_at_all_gets_408_then_the_connection_closes(served: Callable[..., Served]) -> None:
    gw = served(head_timeout_s=0.5)
    response, took, closed = exchange(gw.port, b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ", read_for=5)
    assert_error(response, 408, "request_timeout")
    assert closed and took < 3
    response, took, closed = exchange(gw.port, b"", read_for=5)  # connects and says nothing
    assert closed and took < 3 and status_of(response) == 408
    assert httpx.get(gw.url + "/healthz").status_code == 200


def test_a_kept_alive_connection_is_closed_once_idle_for_the_keep_alive_timeout(served: Callable[..., Served]) -> None:
    gw = served(head_timeout_s=0.5)  # the heads' sweep runs every 0.125 s
    gw.server.config.timeout_keep_alive = 1  # read by each new connection
    ask = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.settimeout(5)
        for _ in range(3):  # each request within the timeout keeps the connection
            sock.sendall(ask)
            assert status_of(sock.recv(65536)) == 200
            time.sleep(0.6)
        answered = time.monotonic()
        assert sock.recv(65536) == b""  # then closed by the gateway, with nothing more said
        assert 0.3 < time.monotonic() - answered < 2.0


@pytest.mark.parametrize("path", ["/admin/keys", "/v1/chat/completions"])
def test_a_declared_body_that_never_comes_gets_408(served: Callable[..., Served], path: str) -> None:
    gw = served(read_timeout_s=0.5)
    head = (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b'content-length: 100\r\n\r\n{"model"' % path.encode()
    )
    response, took, closed = exchange(gw.port, head, read_for=5)
    assert status_of(response) == 408, response[:300]
    assert orjson.loads(json_body_of(response))["error"]["code"] == "request_timeout"
    assert closed and took < 3


def test_an_abandoned_upload_is_not_logged_as_an_unhandled_error(served: Callable[..., Served]) -> None:
    gw = served()
    for path in (b"/admin/keys", b"/admin/login", b"/v1/chat/completions"):
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(
                b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b'content-length: 1000\r\n\r\n{"name": ' % path
            )
            time.sleep(0.2)
    time.sleep(0.3)
    assert httpx.get(gw.url + "/healthz").status_code == 200
    gw.stop()
    logs = gw.logs.getvalue().decode()
    assert "unhandled error" not in logs and "Traceback" not in logs, logs[-2000:]


def test_requests_in_flight_are_bounded_with_503(served: Callable[..., Served]) -> None:
    gw = served(max_concurrency=2, read_timeout_s=10)
    held = []
    for _ in range(2):  # two requests the app is serving: their bodies are still "coming"
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(
            b"POST /admin/keys HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: 10\r\n\r\n"
        )
        held.append(sock)
    time.sleep(0.3)
    r = httpx.get(gw.url + "/v1/models")
    assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] == "1"
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while httpx.get(gw.url + "/v1/models").status_code != 200:
        assert time.monotonic() < deadline, "the bound was not released"
        time.sleep(0.05)


def test_serve_runs_uvicorn_with_connection_limits(tmp_path, openai_upstream) -> None:
    settings = base_settings(tmp_path, openai_upstream[0], max_connections=300, head_timeout_s=3.0)
    config = uvicorn_config(object(), settings)
    assert config.limit_concurrency == 300 and config.backlog == 300 and config.timeout_keep_alive == 5
    assert issubclass(config.http, HeadLimitedProtocol) and config.http.head_timeout_s == 3.0
    assert config.proxy_headers is False and config.server_header is False
    assert config.http.turn_paths == frozenset()  # not the gateway's app: every request a task of its own
    doors = uvicorn_config(create_app(settings, configure_logs=False), settings).http.turn_paths
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/messages", "/v1/responses"} <= doors


def test_limits_are_read_from_the_server_table_and_must_be_positive(tmp_path) -> None:
    from llmproxy.config import ConfigError, load_settings

    config = tmp_path / "llmproxy.toml"
    config.write_text("[server]\nmax_admin_body_bytes = 1000\nhead_timeout_s = 2\nmax_concurrency = 50\n")
    settings = load_settings(config, {})
    assert (settings.max_admin_body_bytes, settings.head_timeout_s, settings.max_concurrency) == (1000, 2, 50)
    config.write_text("[server]\nmax_headers = 0\n")
    with pytest.raises(ConfigError, match="server.max_headers must be positive"):
        load_settings(config, {})
