"""The one-pass response head (llmproxy/response_head.py) writes what uvicorn's own cycle writes,
byte for byte, notes the same framing, and refuses what it refuses: each case is sent through both
cycles and the two are compared."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.flow_control import FlowControl

from llmproxy.endpoint import respond
from llmproxy.response_head import OnePassCycle, install

UVICORNS_OWN = OnePassCycle.__bases__[0]  # what httptools_impl named before install()

DATE = [(b"date", b"Sun, 06 Dec 2026 07:29:21 GMT")]
GATEWAY = [
    (b"content-type", b"application/json"),
    (b"content-length", b"2"),  # the body sent below: {}
    (b"x-request-id", b"486fcd08baee0000000001"),
    (b"x-llmproxy-cache", b"miss"),
    (b"x-llmproxy-cache-key", b"8242cc027cf7ba1258d6a2f7714bccc4"),
    (b"x-llmproxy-model", b"bench/fake-model"),
    (b"x-llmproxy-provider", b"bench"),
    (b"x-llmproxy-overhead-ms", b"0.358"),
]
STREAM = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-request-id", b"abc")]
HEADER_LISTS: dict[str, list[Any]] = {
    "gateway answer": GATEWAY,
    "stream (no length)": STREAM,
    "no headers": [],
    "tab in a value": [(b"x-note", b"a\tb"), (b"content-length", b"2")],
    "lists, not tuples": [[b"content-length", b"2"], [b"x-a", b"b"]],
    "app's transfer-encoding": [(b"transfer-encoding", b"chunked")],
    "app's connection close": [(b"connection", b"close"), (b"content-length", b"2")],
    "upper-case name": [(b"X-Custom", b"1"), (b"content-length", b"2")],
    "two lengths": [(b"content-length", b"2"), (b"content-length", b"3")],
    "empty value": [(b"x-empty", b""), (b"content-length", b"2")],
    "latin-1 value": [(b"x-model", "caf\u00e9".encode("latin-1")), (b"content-length", b"2")],
}
REFUSED: dict[str, list[Any]] = {
    "line break in a value": [(b"x-evil", b"a\r\nset-cookie: x=1")],
    "control character in a value": [(b"x-evil", b"a\x01b")],
    "delete in a value": [(b"x-evil", b"a\x7f")],
    "space in a name": [(b"x evil", b"1")],
    "colon in a name": [(b"x:evil", b"1")],
    "length not a number": [(b"content-length", b"ten")],
    "length empty": [(b"content-length", b"")],
}


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:  # after the body, when the connection does not stay open
        self.written.append(b"<closed>")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def cycle(
    cls: type, method: str = "POST", *, keep_alive: bool = True, access_log: bool = False, expect_100: bool = False
) -> Any:
    transport = Transport()
    completed: list[str] = []
    c = cls(
        scope={"type": "http", "method": method, "http_version": "1.1", "path": "/", "query_string": b""},
        transport=transport,
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test.uvicorn"),
        access_logger=logging.getLogger("test.uvicorn.access"),
        access_log=access_log,
        default_headers=list(DATE),
        message_event=asyncio.Event(),
        expect_100_continue=expect_100,
        keep_alive=keep_alive,
        on_response=lambda: completed.append("on_response"),
    )
    c.completed = completed
    return c


STATE = (
    "response_started",
    "chunked_encoding",
    "expected_content_length",
    "keep_alive",
    "waiting_for_100_continue",
    "response_complete",
)


def noted(c: Any) -> list[Any]:
    """What a cycle wrote (the bytes, however many writes it took), noted, and told its protocol."""
    return [b"".join(c.transport.written), [getattr(c, n) for n in STATE], c.message_event.is_set(), c.completed]


BODY = [{"type": "http.response.body", "body": b"{}", "more_body": False}]


async def both(
    headers: list[Any],
    status: int = 200,
    method: str = "POST",
    bodies: list[dict[str, Any]] = BODY,
    shutdown_after_head: bool = False,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """The start message and its body through uvicorn's cycle and ours: what each wrote and noted,
    or the error each raised."""
    results = []
    for cls in (UVICORNS_OWN, OnePassCycle):
        c = cycle(cls, method, **kwargs)
        try:
            await c.send({"type": "http.response.start", "status": status, "headers": headers})
            if shutdown_after_head:
                c.keep_alive = False  # what uvicorn's protocol does to its cycle as the server stops
            for body in bodies:
                await c.send(body)
        except Exception as exc:  # noqa: BLE001 - compared, not handled
            results.append(("raised", type(exc), str(exc), *noted(c)))
            continue
        results.append(("wrote", *noted(c)))
    return results[0], results[1]


@pytest.mark.parametrize("name", HEADER_LISTS)
@pytest.mark.parametrize("status", [200, 204, 304, 404, 101])
@pytest.mark.parametrize("method", ["POST", "GET", "HEAD"])
async def test_the_same_bytes_and_framing_as_uvicorn(name: str, status: int, method: str) -> None:
    theirs, ours = await both(HEADER_LISTS[name], status, method)
    assert ours == theirs


@pytest.mark.parametrize("name", REFUSED)
async def test_the_same_refusals_as_uvicorn(name: str) -> None:
    theirs, ours = await both(REFUSED[name])
    assert theirs[0] == "raised"
    assert ours == theirs


@pytest.mark.parametrize("kwargs", [{"keep_alive": False}, {"access_log": True}])
async def test_closing_connections_and_access_logs_are_uvicorns_to_write(kwargs: dict[str, Any]) -> None:
    theirs, ours = await both(GATEWAY, **kwargs)
    assert ours == theirs


def piece(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more}


BODIES = {
    "in pieces": [piece(b"{", True), piece(b"}", False)],
    "an empty last piece": [piece(b"{}", True), piece(b"", False)],
    "shorter than its length": [piece(b"{", False)],
    "longer than its length": [piece(b"{}}", False)],
    "a start again": [{"type": "http.response.start", "status": 200, "headers": []}],
}


@pytest.mark.parametrize("name", BODIES)
async def test_a_body_off_the_one_write_path_is_sent_as_uvicorn_sends_it(name: str) -> None:
    theirs, ours = await both(GATEWAY, bodies=BODIES[name])
    assert ours == theirs


async def test_a_server_stopping_between_head_and_body_closes_after_the_answer() -> None:
    theirs, ours = await both(GATEWAY, shutdown_after_head=True)
    assert ours == theirs and ours[1].endswith(b"{}<closed>")


async def test_an_answer_leaves_in_one_write_and_completes() -> None:
    c = cycle(OnePassCycle)
    await c.send({"type": "http.response.start", "status": 200, "headers": GATEWAY})
    assert c.transport.written == []  # the head waits for its body
    await c.send(BODY[0])
    assert len(c.transport.written) == 1 and c.transport.written[0].endswith(b"\r\n\r\n{}")
    assert c.response_complete and c.message_event.is_set() and c.completed == ["on_response"]


def test_a_gateway_answer_and_a_stream_are_written_in_one_pass() -> None:
    # The fast path is taken, not just agreed with: _head returns the head (None hands it to uvicorn).
    for headers in (GATEWAY, STREAM):
        found = cycle(OnePassCycle)._head(200, headers)
        assert found is not None and found[0].startswith(b"HTTP/1.1 200 OK\r\ndate: ")
    assert cycle(OnePassCycle)._head(200, REFUSED["line break in a value"]) is None


def untouched(method: str = "POST", **kwargs: Any) -> list[Any]:
    return noted(cycle(OnePassCycle, method, **kwargs))


@pytest.mark.parametrize("name", [*HEADER_LISTS, *REFUSED])
@pytest.mark.parametrize("status", [200, 204, 304, 404, 101])
@pytest.mark.parametrize("method", ["POST", "GET", "HEAD"])
async def test_a_whole_answer_in_one_call_is_what_its_two_messages_make(name: str, status: int, method: str) -> None:
    headers = {**HEADER_LISTS, **REFUSED}[name]
    theirs, _ = await both(headers, status, method)
    c = cycle(OnePassCycle, method)
    if c.answer(status, headers, b"{}"):
        assert ("wrote", *noted(c)) == theirs
    else:  # send() takes it, as the two messages: nothing written or noted meanwhile
        assert noted(c) == untouched(method)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_the_gateways_whole_answers_take_the_one_call(method: str) -> None:
    c = cycle(OnePassCycle, method, expect_100=True)
    assert c.answer(200, GATEWAY, b"{}")
    assert len(c.transport.written) == 1 and c.transport.written[0].endswith(b"\r\n\r\n{}")
    assert c.response_complete and c.message_event.is_set() and c.completed == ["on_response"]
    assert not c.waiting_for_100_continue  # an answer ends the wait for the body, as send's does


class NoMessages(OnePassCycle):
    async def send(self, message: Any) -> None:
        raise AssertionError(f"a whole answer came as a {message['type']} message")


async def test_the_front_doors_hand_a_whole_answer_over_in_one_call() -> None:
    c = cycle(NoMessages)
    await respond(c.send, 200, GATEWAY[2:], b"{}")  # respond adds the content-type and length
    assert c.response_complete and len(c.transport.written) == 1
    assert c.transport.written[0].startswith(b"HTTP/1.1 200 OK\r\ndate: ")


async def test_an_answer_the_cycle_leaves_goes_as_its_two_messages() -> None:
    c = cycle(OnePassCycle, "HEAD")
    await respond(c.send, 200, GATEWAY[2:], b"{}")
    assert c.response_complete and b"".join(c.transport.written).endswith(b"0.358\r\n\r\n")  # HEAD: no body


@pytest.mark.parametrize(
    "case",
    ["closing connection", "access log", "writes paused", "disconnected", "started already", "body not its length"],
)
def test_a_whole_answer_send_must_take_is_left_to_it(case: str) -> None:
    kwargs: dict[str, Any] = {"keep_alive": False} if case == "closing connection" else {}
    kwargs |= {"access_log": True} if case == "access log" else {}
    c = cycle(OnePassCycle, **kwargs)
    c.flow.write_paused = case == "writes paused"
    c.disconnected = case == "disconnected"
    c.response_started = case == "started already"
    before = noted(c)
    assert not c.answer(200, GATEWAY, b"{}}" if case == "body not its length" else b"{}")
    assert noted(c) == before


def test_install_makes_uvicorn_start_one_pass_cycles() -> None:
    install()
    install()
    assert httptools_impl.RequestResponseCycle is OnePassCycle
    assert UVICORNS_OWN.__module__ == httptools_impl.__name__
