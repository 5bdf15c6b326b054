"""A connection's front-door requests take turns on one task (serving.HeadLimitedProtocol): served
by uvicorn on loopback, with raw sockets as the client. Other requests keep a task each; a request
that leaves a cancellation behind hands the connection to a fresh task; the task ends with its
connection and never holds up the server's shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from llmproxy.config import Settings
from llmproxy.serving import HeadLimitedProtocol
from tests.fakes.serve import free_port

DOOR = "/door"


class Recorder:
    """An ASGI app that answers with the task it ran on; a POST of `leave-a-cancel` cancels its own
    task and swallows the CancelledError without taking the cancellation back."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if body == b"leave-a-cancel":
            task.cancel()
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                pass
        answer = b"%d %d" % (len(self.tasks) - 1, task.cancelling())
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]}
        )
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Recorder, uvicorn.Server, int]]:
    app = Recorder()
    port = free_port()
    protocol = HeadLimitedProtocol.configured(Settings(), frozenset({DOOR}))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    yield app, server, port
    server.should_exit = True
    await asyncio.wait_for(serving, 10)


def request(method: str, path: str, body: bytes = b"") -> bytes:
    return b"%s %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        method.encode(),
        path.encode(),
        len(body),
        body,
    )


async def answers(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        out.append(await reader.readexactly(length))
    return out


def turn_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "_take_turns" in repr(t.get_coro())]


async def test_a_connections_door_requests_share_one_task_and_others_get_their_own(
    served: tuple[Recorder, uvicorn.Server, int],
) -> None:
    app, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        writer.write(request("POST", DOOR, b"{}"))
        await answers(reader, 1)
    writer.write(request("GET", "/other"))
    await answers(reader, 1)
    writer.write(request("POST", DOOR, b"{}") + request("POST", DOOR, b"{}"))  # pipelined
    assert await answers(reader, 2) == [b"4 0", b"5 0"]
    other_reader, other_writer = await asyncio.open_connection("127.0.0.1", port)
    other_writer.write(request("POST", DOOR, b"{}"))
    await answers(other_reader, 1)

    first, *door, get, pipelined_1, pipelined_2, elsewhere = app.tasks
    assert door == [first, first] and pipelined_1 is first and pipelined_2 is first
    assert get is not first and elsewhere is not first
    assert len(turn_tasks()) == 2  # one a connection, waiting for its next request
    for w in (writer, other_writer):
        w.close()
        await w.wait_closed()
    for _ in range(100):
        if not turn_tasks():
            break
        await asyncio.sleep(0.01)
    assert turn_tasks() == []  # each ended with its connection


async def test_a_cancellation_left_behind_does_not_reach_the_next_request(
    served: tuple[Recorder, uvicorn.Server, int],
) -> None:
    app, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("POST", DOOR, b"{}"))
    writer.write(request("POST", DOOR, b"leave-a-cancel"))
    writer.write(request("POST", DOOR, b"{}"))
    assert await answers(reader, 3) == [b"0 0", b"1 1", b"2 0"]
    assert app.tasks[1] is app.tasks[0] and app.tasks[2] is not app.tasks[1]
    writer.close()
    await writer.wait_closed()


async def test_an_idle_connection_does_not_hold_up_the_shutdown(served: tuple[Recorder, uvicorn.Server, int]) -> None:
    _, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("POST", DOOR, b"{}"))
    await answers(reader, 1)
    assert len(turn_tasks()) == 1 and not server.server_state.tasks  # idle: not among the server's tasks
    server.should_exit = True
    for _ in range(300):
        if not turn_tasks():
            break
        await asyncio.sleep(0.01)
    assert turn_tasks() == []
    assert await reader.read() == b""  # the server closed the connection
    writer.close()
