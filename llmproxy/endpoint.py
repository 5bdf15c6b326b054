"""POST /v1/chat/completions as a plain ASGI handler, in front of the Starlette app.

The gateway's one hot endpoint skips Starlette's router, middleware and Request/Response objects:
on the shared bench a raw ASGI proxy served 1.4-1.8x the requests/s of the same proxy written as a
Starlette route (about 90 us less per request on these machines). Everything else (models, admin,
metrics, UI, errors for other methods) stays in the Starlette app, which this wraps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

from . import pipeline
from .context import RequestContext
from .disconnects import Disconnects, Watch
from .doors.openai_chat import DOOR
from .errors import ClientDisconnected, PayloadTooLarge, RequestTimeout
from .response_head import OnePassCycle

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CHAT_PATHS = frozenset(("/v1/chat/completions", "/chat/completions"))
_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream")
_CLOSING = {"connection": "close"}  # the rest of a refused body is never read
log = logging.getLogger("llmproxy.endpoint")


class GatewayApp:
    """The ASGI app uvicorn serves: the chat endpoint here, everything else to Starlette."""

    # Set by the app's lifespan once the gateway is built (app.state has it too, for Starlette's
    # routes): read from here, as Starlette's State answers every read with a failed look-up and a
    # Python __getattr__ call. Unset (AttributeError) until the lifespan has run.
    gateway: pipeline.Gateway

    def __init__(self, app: Any, doors: dict[str, Any] | None = None) -> None:
        self.app = app
        self.doors = doors or {}  # path -> raw handler of another front door (messages_endpoint.ROUTES)
        self.state = app.state
        self.new_id: Callable[[], str] = app.state.ids.new
        self.disconnects = Disconnects()

    def own_posts(self) -> frozenset[str]:
        """The paths whose POSTs this app's own handlers serve (the front doors), not Starlette."""
        return CHAT_PATHS | frozenset(self.doors)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: it hands back the handler's, so no frame of its own is passed
        # through each time the request's task resumes (the edge guard awaits what it returns).
        if scope["type"] != "http":
            return self.app(scope, receive, send)  # type: ignore[no-any-return]  # Starlette's
        if scope["method"] == "POST":
            if scope["path"] in CHAT_PATHS:
                return chat_completions(self.gateway, self.new_id, scope, receive, send, self.disconnects)
            door = self.doors.get(scope["path"])
            if door is not None:
                return door(self.gateway, self.new_id, scope, receive, send, self.disconnects)  # type: ignore[no-any-return]
        return self.app(scope, receive, with_ids(send, scope, self.new_id))  # type: ignore[no-any-return]


def with_ids(send: Send, scope: Scope, new_id: Callable[[], str]) -> Send:
    """Every other response carries x-request-id (the client's or a new one) and the time it took."""
    started = time.perf_counter()
    given = client_request_id(next((v for k, v in scope["headers"] if k == b"x-request-id"), None))

    async def send_with_ids(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(k == b"x-request-id" for k, _ in headers):
                headers.append((b"x-request-id", (given or new_id()).encode("latin-1")))
            headers.append((b"x-llmproxy-overhead-ms", f"{(time.perf_counter() - started) * 1000:.3f}".encode()))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_ids


def openai_context(scope: Scope, new_id: Callable[[], str]) -> tuple[RequestContext, str | None, int]:
    """What an OpenAI-style front door reads of the request head, in one pass: the request's
    context (its id, the x-llmproxy-* and Cache-Control headers), its Authorization value, and its
    declared length (-1 when absent)."""
    authorization = request_id = None
    declared = -1
    client_headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            declared = int(value) if value.isdigit() else -1
        elif name == b"x-request-id":
            request_id = client_request_id(value)
        elif name.startswith(b"x-llmproxy-") or name == b"cache-control":
            client_headers[name.decode("latin-1")] = value.decode("latin-1")
    return (
        RequestContext(request_id=request_id or new_id(), body={}, client_headers=client_headers),
        authorization,
        declared,
    )


HeadReader = Callable[[Scope, Callable[[], str]], tuple[RequestContext, "str | None", int]]


def door_handler(door: pipeline.Door, read_head: HeadReader = openai_context) -> Callable[..., Awaitable[None]]:
    """The handler of a front door (chat, embeddings, completions, Anthropic's messages): the
    request head read now (`read_head`: the context, the Authorization value, the declared length),
    then the answer's coroutine, handed back to be awaited (a handler that awaited it would add a
    frame to every resume)."""

    def handle(
        gw: pipeline.Gateway,
        new_id: Callable[[], str],
        scope: Scope,
        receive: Receive,
        send: Send,
        disconnects: Disconnects,
    ) -> Awaitable[None]:
        ctx, authorization, declared = read_head(scope, new_id)
        return answer(gw, ctx, door, authorization, declared, receive, send, disconnects)

    return handle


chat_completions = door_handler(DOOR)


async def answer(
    gw: pipeline.Gateway,
    ctx: RequestContext,
    door: pipeline.Door,
    authorization: str | None,
    declared: int,
    receive: Receive,
    send: Send,
    disconnects: Disconnects,
) -> None:
    """Run a front door's pipeline call while its client is watched, then send the outcome. A client
    that leaves while the provider works cancels the call; the request is recorded as abandoned.
    The pipeline reads the body itself, after authentication (an anonymous caller gets its 401
    before the gateway buffers anything), under the watch's read deadline."""
    watch = disconnects.start(receive, ctx)
    settings = gw.settings
    body = partial(read_body, receive, settings.max_body_bytes, declared, watch, settings.read_timeout_s)
    try:
        outcome = await pipeline.through_door(gw, ctx, door, body, authorization)
    except asyncio.CancelledError:
        if not watch.left:
            raise  # cancelled from outside (shutdown), not by the client leaving
        watch.task.uncancel()
        pipeline.abandoned(gw, ctx)
        return
    finally:
        disconnects.stop(watch)
    if outcome.stream is None:
        await respond(send, outcome.status, outcome.headers, outcome.body or b"")
    else:
        await stream(send, receive, outcome.headers, outcome.stream)


def client_request_id(value: bytes | str | None) -> str | None:
    """The client's x-request-id, if it is one we may echo (short, printable)."""
    if value is None:
        return None
    given = value.decode("latin-1") if isinstance(value, bytes) else value
    return given if 0 < len(given) <= 128 and given.isprintable() else None


async def read_body(
    receive: Receive, limit: int, declared: int, watch: Watch | None = None, timeout_s: float = 0.0
) -> bytes:
    """The request body, at most `limit` bytes (413 from the declared length, or as soon as the
    pieces pass it). With a watch, each read may wait at most `timeout_s` (408): the watch holds
    the read's deadline and the disconnects sweeper cancels a read past it (the edge guard's body
    wrapper is not on these routes, as a per-read wrapper cost ~1.6 us a request).
    Its errors close the connection, so the rest of the body is never read."""
    if declared > limit:
        raise PayloadTooLarge(
            f"the request body is {declared} bytes; this gateway accepts at most {limit}", headers=_CLOSING
        )
    first = b""
    rest: list[bytes] | None = None  # only a body that comes in several pieces is joined, once
    size = 0
    try:
        while True:
            if watch is not None:
                watch.body_deadline = time.perf_counter() + timeout_s
            try:
                message = await receive()
            except asyncio.CancelledError:
                if watch is None or not watch.timed_out:
                    raise
                watch.task.uncancel()
                raise RequestTimeout(
                    f"the request body stopped arriving for {timeout_s:g} s", headers=_CLOSING
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client closed the connection before sending the whole request")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"the request body is over {limit} bytes, the most this gateway accepts", headers=_CLOSING
                    )
                if not first:
                    first = chunk
                elif rest is None:
                    rest = [first, chunk]
                else:
                    rest.append(chunk)
            if not message.get("more_body", False):
                return b"".join(rest) if rest is not None else first
    finally:
        if watch is not None:
            watch.body_deadline = 0.0


async def respond(send: Send, status: int, headers: pipeline.Headers, body: bytes) -> None:
    """A whole JSON answer: in one call when `send` is llmproxy serve's own cycle's, which writes
    it as the two ASGI messages would be written (response_head.py), else as those two messages."""
    raw = [_JSON, (b"content-length", b"%d" % len(body)), *headers]
    cycle = getattr(send, "__self__", None)
    if isinstance(cycle, OnePassCycle) and cycle.answer(status, raw, body):
        return
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def stream(send: Send, receive: Receive, headers: pipeline.Headers, pieces: AsyncIterator[bytes]) -> None:
    """Send an SSE body as it comes; a client that disconnects cancels the relay at once (and so
    closes the upstream request), even while the provider is silent."""
    task = asyncio.current_task()
    assert task is not None
    finished = False

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not finished:
                    task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    raw = [_SSE, *headers]
    try:
        # Start the relay before anything can fail here, so its clean-up (usage row, limits,
        # closing the upstream) runs whatever happens next; its first event is already in memory.
        first = await pieces.__anext__()
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        finished = True
        watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if finished or not watcher.done():
            raise  # cancelled from outside (shutdown), not by the client leaving
        task.uncancel()
    finally:
        watcher.cancel()
        close = getattr(pieces, "aclose", None)
        if close is not None:
            await close()  # runs the relay's clean-up (record, close upstream) now, not at GC
