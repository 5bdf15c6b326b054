"""The edge guard: what every HTTP request must satisfy before any route sees it, as plain ASGI.

- headers: at most `max_headers` of them and `max_header_bytes` together, else 431;
- body: at most `max_admin_body_bytes` under /admin and `max_body_bytes` elsewhere, refused with
  413 from the declared length before anything is read, or as soon as a chunked body passes it;
- time: a body that stops arriving for `read_timeout_s` ends the request with 408 (a client that
  announces a Content-Length and sends nothing no longer holds its connection); on the front
  doors' POST routes (DOOR_BODIES) their own endpoint.read_body holds the size cap and this
  deadline, more cheaply (see disconnects.py), so their receive is not wrapped here;
- load: at most `max_concurrency` requests in flight, more get 503 at once;
- browsers: a write with a body must be `application/json` (415), so no HTML form or "simple"
  cross-site request can drive the API; a cross-site `Origin` is refused (403);
- without a master key (open mode) only loopback is served, whatever server runs the app: the
  peer address and the `Host` name (against DNS rebinding) must both be loopback (403).

uvicorn itself bounds neither the size of a request head nor the time it takes to arrive; `llmproxy
serve` adds those at the protocol level (serving.py). The guard is what holds under any ASGI server.
Its errors are OpenAI-shaped and close the connection (the unread body is never read).

Cost on the hot path: a header pass in C (dict, join). Elsewhere a few attribute writes per body
read; one sweeper task per app watches the read deadlines.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable, MutableMapping
from itertools import chain
from typing import Any

from .config import Settings
from .doors.anthropic_response import error_body as anthropic_error
from .endpoint import CHAT_PATHS, client_request_id
from .errors import (
    ClientDisconnected,
    GatewayError,
    HeadersTooLarge,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from .messages_endpoint import ROUTES as MESSAGES_ROUTES
from .openai_endpoint import ROUTES as OPENAI_DOOR_ROUTES
from .responses_endpoint import ROUTES as RESPONSES_ROUTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WRITES = frozenset(("POST", "PUT", "PATCH", "DELETE"))
_CLOSE = (b"connection", b"close")
_CLOSING = {"connection": "close"}
# The routes whose raw handler reads its body through endpoint.answer's read_body, which caps its
# size and times out a stalled read with the same 408 (messages' count_tokens does not: wrapped).
DOOR_BODIES = frozenset((*CHAT_PATHS, *OPENAI_DOOR_ROUTES, *RESPONSES_ROUTES, "/v1/messages"))


class Guard:
    """Wraps the gateway's ASGI app; `state` is the wrapped app's, for tests and the lifespan."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.state = app.state
        self.max_headers = settings.max_headers
        self.max_header_bytes = settings.max_header_bytes
        self.max_body = settings.max_body_bytes
        self.max_admin_body = settings.max_admin_body_bytes
        self.read_timeout_s = settings.read_timeout_s
        self.max_concurrency = settings.max_concurrency
        self.loopback_only = settings.master_key is None
        self.active = 0
        # True when the server bounds the request head itself (llmproxy serve's HeadLimitedProtocol,
        # with the same max_headers and max_header_bytes rules): they are then checked once, there.
        self.heads_bounded = False
        # Bodies being read, watched by one sweeper task: a timer per read cost ~4 us a request.
        self.reading: dict[_Body, None] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self._stop_sweeper_on_shutdown(send)
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        fields = dict(headers)
        refusal = self.check(scope, headers, fields)
        body: _Body | None = None
        if refusal is None and (b"content-length" in fields or b"transfer-encoding" in fields):
            read = self.body_reader(scope, fields, receive)
            if isinstance(read, GatewayError):
                refusal = read
            else:
                body = read
        if refusal is None and self.active >= self.max_concurrency:
            refusal = ServiceUnavailable(
                f"the gateway is serving its limit of {self.max_concurrency} requests at once; retry shortly",
                code="overloaded",
                headers={"retry-after": "1"},
            )
        if refusal is not None:
            await self.refuse(send, refusal, fields, scope["path"])
            return
        self.active += 1
        try:
            if body is None:
                await self.app(scope, receive, send)
            else:
                if self._sweeper is None:
                    self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="llmproxy-read-timeouts")
                await self.app(scope, body.receive, send)
        finally:
            self.active -= 1

    def check(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], fields: dict[bytes, bytes]
    ) -> GatewayError | None:
        """The checks on the request head: sizes, open mode's loopback rule, the Origin."""
        if not self.heads_bounded:
            if len(headers) > self.max_headers:
                return HeadersTooLarge(
                    f"the request has {len(headers)} headers; this gateway accepts at most {self.max_headers}"
                )
            if len(b"".join(chain.from_iterable(headers))) > self.max_header_bytes:
                return HeadersTooLarge(
                    f"the request headers are over {self.max_header_bytes} bytes together, the most this gateway accepts"
                )
        host = fields.get(b"host")
        if self.loopback_only:
            client = scope.get("client")
            if client and not loopback_address(client[0]):
                return PermissionDenied(
                    "this gateway has no master key, so it serves loopback callers only; "
                    "set LLMPROXY_MASTER_KEY to serve other addresses",
                    code="loopback_only",
                )
            if host is not None and not loopback_host(host):
                return PermissionDenied(
                    "this gateway has no master key, so it answers only to loopback host "
                    "names (localhost, 127.0.0.1, [::1])",
                    code="loopback_only",
                )
        origin = fields.get(b"origin")
        if origin is not None and not same_origin(origin, host):
            return PermissionDenied(
                "cross-origin requests are refused; call the gateway from its own origin or from a server",
                code="cross_origin",
            )
        return None

    def body_reader(self, scope: Scope, fields: dict[bytes, bytes], receive: Receive) -> _Body | GatewayError | None:
        """The body's limits, checked on its declared length first; its media type for a write.
        None: a front door's POST, whose handler enforces the limits as it reads."""
        path = scope["path"]
        if path in CHAT_PATHS or path in OPENAI_DOOR_ROUTES or path in RESPONSES_ROUTES:
            # The chat endpoint checks the declared length itself, after authenticating: an
            # anonymous caller learns nothing there but its 401.
            limit = self.max_body
        else:
            limit = self.max_admin_body if path.startswith("/admin") else self.max_body
            length = fields.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                return PayloadTooLarge(
                    f"the request body is {int(length)} bytes; this gateway accepts at most {limit} on {path}",
                    headers=_CLOSING,
                )
        if scope["method"] in WRITES and fields.get(b"content-length") != b"0":
            media = fields.get(b"content-type")
            if media != b"application/json" and not json_media(media):
                return UnsupportedMediaType(
                    "send the request body as JSON, with 'Content-Type: application/json'", param="content-type"
                )
        if path in DOOR_BODIES and scope["method"] == "POST":
            return None
        return _Body(self, receive, limit)

    async def refuse(self, send: Send, error: GatewayError, fields: dict[bytes, bytes], path: str = "") -> None:
        """The guard's own answer, in the shape of the door it was meant for; the connection closes
        after it, so an unread body is never read."""
        status, body = anthropic_error(error) if path in MESSAGES_ROUTES else (error.status, error.to_json())
        request_id = client_request_id(fields.get(b"x-request-id")) or self.state.ids.new()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            _CLOSE,
            (b"x-request-id", request_id.encode("latin-1")),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items() if k != "connection"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _sweep(self) -> None:
        """Cancel each body read that has waited longer than read_timeout_s (checked 4 times per
        timeout, so a read may wait up to a quarter more)."""
        tick = min(1.0, self.read_timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for body in [b for b in self.reading if b.deadline <= now]:
                body.expire()

    def _stop_sweeper_on_shutdown(self, send: Send) -> Send:
        async def send_then_stop(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed") and self._sweeper:
                self._sweeper.cancel()
                self._sweeper = None
            await send(message)

        return send_then_stop


class _Body:
    """One request's receive, with the body's size limit and read timeout. Its errors ask for the
    connection to close (the rest of the body is never read)."""

    __slots__ = ("_guard", "_receive", "_limit", "_size", "_done", "_task", "_timed_out", "deadline")

    def __init__(self, guard: Guard, receive: Receive, limit: int) -> None:
        self._guard = guard
        self._receive = receive
        self._limit = limit
        self._size = 0
        self._done = False
        self._task: asyncio.Task[Any] | None = None
        self._timed_out = False
        self.deadline = 0.0

    async def receive(self) -> Message:
        if self._done:
            return await self._receive()  # after the body: only the disconnect is left to hear
        reading = self._guard.reading
        self._task = asyncio.current_task()
        self.deadline = time.monotonic() + self._guard.read_timeout_s
        reading[self] = None
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if not self._timed_out or self._task is None:
                raise
            self._task.uncancel()
            self._done = True
            raise RequestTimeout(
                f"the request body stopped arriving for {self._guard.read_timeout_s:g} s", headers=_CLOSING
            ) from None
        finally:
            reading.pop(self, None)  # (a second reader of the same channel may have removed it)
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > self._limit:
                self._done = True
                raise PayloadTooLarge(
                    f"the request body is over {self._limit} bytes, the most this gateway accepts here",
                    headers=_CLOSING,
                )
            self._done = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self._done = True
            raise ClientDisconnected("the client closed the connection before sending the whole request")
        return message

    def expire(self) -> None:
        if self._task is not None and not self._timed_out:
            self._timed_out = True
            self._task.cancel()


def json_media(value: bytes | None) -> bool:
    """Is this Content-Type JSON (application/json, with any parameters)?"""
    return value is not None and value.split(b";", 1)[0].strip().lower() == b"application/json"


def same_origin(origin: bytes, host: bytes | None) -> bool:
    """Does a browser's Origin name the host it is talking to? ("null" never does.)"""
    scheme, sep, authority = origin.partition(b"://")
    return (
        bool(sep)
        and scheme.lower() in (b"http", b"https")
        and host is not None
        and authority.lower().rstrip(b"/") == host.lower()
    )


@functools.lru_cache(maxsize=256)
def loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False  # a unix socket has no address; the client field is absent then, not this


@functools.lru_cache(maxsize=256)
def loopback_host(host: bytes) -> bool:
    """localhost, 127.0.0.0/8 or [::1], with any port."""
    text = host.decode("latin-1").lower()
    if text.startswith("["):  # [v6 address], then nothing or :port
        end = text.find("]")
        name, port = (text[1:end], text[end + 1 :]) if end > 0 else ("", "")
        if port and not (port.startswith(":") and port[1:].isdigit()):
            return False
    elif text.count(":") == 1:
        name, _, port = text.partition(":")
        if not port.isdigit():
            return False
    else:
        name = text
    name = name.rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
