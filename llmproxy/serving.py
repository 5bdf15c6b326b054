"""How `llmproxy serve` runs uvicorn: its settings, and the limits on a request head that uvicorn lacks.

uvicorn (0.3x, httptools) closes a kept-alive connection that idles `timeout_keep_alive` seconds
after a response, and answers 503 past `limit_concurrency` connections or tasks. It has no deadline
for a request head (a connection that sends nothing, or half its headers, is held for ever) and
no bound on its size (httptools buffers a 16 MB header line whole). The h11 implementation bounds
the head (`h11_max_incomplete_event_size`, answered 400) but has no deadline either. Neither is
visible to an ASGI app, which only hears of a request once its head is complete, so
`HeadLimitedProtocol` adds both: `head_timeout_s` from the connection's start (or the next request's
first byte) to the end of its head, answered 408; `max_header_bytes` (plus the request line) of
head, `max_headers` lines, answered 431. Both close the connection. The rest of the limits hold in
the app for any server (guard.py). The same protocol also joins what a connection writes in one turn
of the event loop (`_OneWritePerTurn`), so an answer leaves in one write, and keeps uvicorn's
keep-alive rule with the heads' one sweeping timer instead of a timer per answer, and it serves a
connection's front-door requests one after another on one task instead of a task each.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings
from .endpoint import GatewayApp
from .errors import GatewayError, HeadersTooLarge, RequestTimeout
from .guard import Guard
from .response_head import install as install_one_pass_head

MAX_REQUEST_LINE = 8192  # the method, path and query; more is a 431 as well
LINGER_S = 2.0  # after a refusal, how long the rest of what the client sends is read and dropped
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


class _Heads:
    """One server's connections waiting for a request head (arriving, or kept alive after an
    answer), and the one timer that checks their deadlines, 4 times per head timeout and at least
    every second (a wait may last up to that much more). A timer per request cost more than the
    rest of the protocol's checks together; the timer stops once no connection waits."""

    __slots__ = ("open", "_timer")

    def __init__(self) -> None:
        self.open: dict[HeadLimitedProtocol, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, proto: HeadLimitedProtocol) -> None:
        self.open[proto] = None
        if self._timer is None:
            tick = min(1.0, proto.head_timeout_s / 4)
            self._timer = proto.loop.call_later(tick, self._sweep, proto.loop, tick)

    def _sweep(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        now = time.monotonic()
        for proto in [p for p in self.open if p.head_deadline <= now]:
            proto.head_expired()
        self._timer = loop.call_later(tick, self._sweep, loop, tick) if self.open else None


class _OneWritePerTurn:
    """A connection's transport as uvicorn's protocol sees it: what is written during one turn of
    the event loop leaves in one write at the turn's end. uvicorn writes a response's head and its
    body apart; joined, an answer is one send() and one TCP segment instead of two (measured: 15 us
    less CPU a request, 9% more requests/s, bench/cpu.py with the cache off). A stream's events
    still leave as they come: each at the end of the turn that wrote it."""

    __slots__ = ("_transport", "_pending", "_loop")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            if not self._transport.is_closing():
                self._transport.writelines(pending)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def writelines(self, pieces: Iterable[bytes]) -> None:
        for data in pieces:
            self.write(data)

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    # The rest of a transport's API, passed on as it is. Methods rather than a __getattr__: a class
    # with one pays for it on every attribute look-up, the ones it has too (about 600 instructions
    # each under callgrind, 8,000 a request).
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class HeadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size bound on each request head, writing
    each turn's output at once, and serving a connection's front-door requests on one task."""

    head_timeout_s = 10.0
    max_head_bytes = 32 * 1024 + MAX_REQUEST_LINE
    max_header_bytes = 32 * 1024  # names and values together, as the guard counts them
    max_headers = 100
    heads = _Heads()  # each configured() class (one per server) gets its own
    # POSTs to these paths (the front doors, served by the gateway's own handlers) take turns on one
    # task per connection: see _start_asgi_task.
    turn_paths: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False
        self._head_bytes = 0
        self.head_deadline = 0.0
        self._refusal: GatewayError | None = None
        self._discarding = False
        self._kept_alive = False  # answered, waiting for the next request (timeout_keep_alive)
        self._turns: deque[tuple[Any, Any]] = deque()  # front-door requests for the turn task
        self._turn_task: asyncio.Task[None] | None = None
        self._next_turn: asyncio.Future[None] | None = None  # set while the turn task waits
        self._lost = False

    @classmethod
    def configured(cls, settings: Settings, turn_paths: frozenset[str] = frozenset()) -> type[HeadLimitedProtocol]:
        return type(
            cls.__name__,
            (cls,),
            {
                "head_timeout_s": settings.head_timeout_s,
                "max_head_bytes": settings.max_header_bytes + MAX_REQUEST_LINE,
                "max_header_bytes": settings.max_header_bytes,
                "max_headers": settings.max_headers,
                "heads": _Heads(),
                "turn_paths": turn_paths,
            },
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        self.transport = _OneWritePerTurn(transport, self.loop)  # type: ignore[assignment]  # a transport's writes and close
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.heads.open.pop(self, None)
        super().connection_lost(exc)
        self._lost = True
        self._wake_turn_task()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """uvicorn runs each request in a task of its own: the task, the weak set that tracks every
        task (Python code on 3.11) and the callbacks that end it, about 5,000 instructions a request
        (bench/instructions.py, three runs each: 859,700-863,100 -> 853,600-857,300). A front door's
        POST takes its turn on the connection's one task instead, made at its first request and
        ended with the connection; it counts among the server's tasks (uvicorn's concurrency limit,
        its shutdown's wait) only while it serves. Two requests of one connection never run at once
        anyway: the next one starts when the answer before it is complete. The front doors' handlers
        set no context variables, which would otherwise pass from one request to the next. Other
        requests (Starlette's routes) keep a task each."""
        scope = cycle.scope
        if scope["method"] != "POST" or scope["path"] not in self.turn_paths:
            super()._start_asgi_task(cycle, app)
            return
        self._turns.append((cycle, app))
        task = self._turn_task
        if task is None:
            task = self._turn_task = self.loop.create_task(self._take_turns())
        self.tasks.add(task)
        self._wake_turn_task()

    def _wake_turn_task(self) -> None:
        waiting = self._next_turn
        if waiting is not None:
            self._next_turn = None
            waiting.set_result(None)

    async def _take_turns(self) -> None:
        task = self._turn_task
        assert task is not None
        try:
            while True:
                if self._turns:
                    cycle, app = self._turns.popleft()
                    await cycle.run_asgi(app)
                    if task.cancelling():
                        return  # a cancellation that outlived its request: a new task takes the next turn
                elif self._lost:
                    return
                else:
                    self.tasks.discard(task)
                    self._next_turn = self.loop.create_future()
                    await self._next_turn
        finally:
            self.tasks.discard(task)
            self._next_turn = None
            self._turn_task = None
            if self._turns:  # left behind by a task that ended early
                self._turn_task = self.loop.create_task(self._take_turns())
                self.tasks.add(self._turn_task)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if not self._head_open:
            super().data_received(data)
            return
        self._head_bytes += len(data)
        super().data_received(data)
        # At most one read (<= 256 KiB) is buffered past the bound before the head is refused.
        if self._head_open and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse(HeadersTooLarge(f"the request head is over {self.max_head_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._head_open:
            self._start_head()

    def on_headers_complete(self) -> None:
        # The count and the request line are checked once the head is whole: until then its bytes
        # are bounded by data_received (a Python check per header cost more than the timer did).
        if len(self.headers) > self.max_headers:
            self._refusal = HeadersTooLarge(f"the request has more than {self.max_headers} headers")
            raise _HeadRefused
        if len(self.url) > MAX_REQUEST_LINE:
            self._refusal = HeadersTooLarge(f"the request target is over {MAX_REQUEST_LINE} bytes")
            raise _HeadRefused
        # The exact size rule (the guard's), counted only when the raw head came near it.
        if self._head_bytes > self.max_header_bytes and (
            sum(len(name) + len(value) for name, value in self.headers) > self.max_header_bytes
        ):
            self._refusal = HeadersTooLarge(
                f"the request headers are over {self.max_header_bytes} bytes together, the most this gateway accepts"
            )
            raise _HeadRefused
        self._head_open = False
        self.heads.open.pop(self, None)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """uvicorn's steps after an answer (count it, read again, start a pipelined request), except
        that a connection then waiting for its next request is closed by the heads' sweep after
        timeout_keep_alive (up to a tick more) instead of by a timer armed for each answer and
        cancelled by the next request (in place, wrk c=16: this step 2.8 -> 1.3 us, the next
        request's cancel 0.5 -> 0.2 us)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self._head_open:  # (the next head may have begun already: its own deadline holds)
            self._kept_alive = True
            self.head_deadline = time.monotonic() + self.timeout_keep_alive
            self.heads.add(self)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any parser error, ours included, through here.
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().send_400_response(msg)

    def _start_head(self) -> None:
        self._kept_alive = False
        self._head_open = True
        self._head_bytes = 0
        self.head_deadline = time.monotonic() + self.head_timeout_s
        self.heads.add(self)

    def head_expired(self) -> None:
        if self._kept_alive:  # no next request within timeout_keep_alive: closed, as uvicorn does
            self.heads.open.pop(self, None)
            if not self.transport.is_closing():
                self.transport.close()
            return
        if not self._head_open or self.transport.is_closing():
            self.heads.open.pop(self, None)
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined head behind a response still being sent: its wait is not the client's fault
            self.head_deadline = time.monotonic() + self.head_timeout_s
            return
        self._refuse(RequestTimeout(f"the request head did not arrive within {self.head_timeout_s:g} s"))

    def _refuse(self, error: GatewayError) -> None:
        """Answer, then close gently: closing with unread input would send a reset, which can
        destroy the answer before the client reads it; so the write side ends first (FIN) and what
        still arrives is dropped, for LINGER_S at most."""
        self._head_open = False
        self.heads.open.pop(self, None)
        body = error.to_json()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (error.status, _REASONS[error.status], len(body), body)
        )
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self._discarding = True
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def uvicorn_config(app: Any, settings: Settings, *, loop: str = "auto") -> uvicorn.Config:
    """The uvicorn settings `llmproxy serve` runs with. Its protocol checks the request head's
    size rules, so a guard in front of the app need not count them again."""
    if isinstance(app, Guard):
        app.heads_bounded = True
    install_one_pass_head()
    turn_paths = app.app.own_posts() if isinstance(app, Guard) and isinstance(app.app, GatewayApp) else frozenset()
    # proxy_headers=False: X-Forwarded-* would let any caller choose the address the gateway sees
    # (and its per-address login limits), and parsing them is work on every request.
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        loop=loop,
        http=HeadLimitedProtocol.configured(settings, turn_paths),
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        server_header=False,
        timeout_keep_alive=5,
        limit_concurrency=settings.max_connections,
        backlog=min(2048, settings.max_connections),
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
