"""The request path's way to Redis: one connection, every command of an event-loop turn written at
once, replies read in order by a C parser (hiredis).

A client library's pipeline per request (take a pooled connection, pack, send, await each reply
under its own timeout, give the connection back) cost more CPU than the gateway's whole request.
Here a request's commands join the current turn's batch (`call`), the batch goes out in one write
when the loop next turns, and `data_received` hands each reply to its caller in the order sent
(Redis answers one connection's commands in order). A stall check replaces per-read timeouts: when
the oldest unanswered call is older than the timeout, the connection is dropped and every waiting
call fails with RedisDown, as they do when the connection is lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url

Command = tuple[Any, ...]


class PipeDown(Exception):
    """The connection failed, or Redis did not answer in time."""


class _Call:
    __slots__ = ("future", "expected", "replies", "queued_at")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int, queued_at: float) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []
        self.queued_at = queued_at


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe

    def data_received(self, data: bytes) -> None:
        self._pipe._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe._lost(exc or ConnectionResetError("redis closed the connection"))


class RedisPipe:
    def __init__(self, url: str, timeout_s: float) -> None:
        self._where = parse_url(url)
        self._tls = url.startswith("rediss://")
        self._timeout_s = timeout_s
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._waiting: deque[_Call] = deque()  # sent (or about to be), oldest first
        self._out: list[bytes] = []
        self._connecting: asyncio.Future[None] | None = None
        self._stall_check: asyncio.TimerHandle | None = None

    async def call(self, *commands: Command) -> list[Any]:
        """The replies to `commands`, sent with the rest of this turn's; an error reply is returned
        as an exception object in its place. PipeDown when the connection fails or stalls."""
        if self._transport is None:
            await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue(commands, _Call(future, len(commands), loop.time()))
        return await future

    def _queue(self, commands: tuple[Command, ...], call: _Call) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.extend(hiredis.pack_command(c) for c in commands)
        self._waiting.append(call)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is None or not out:
            return
        self._transport.write(b"".join(out))
        if self._stall_check is None:
            self._stall_check = asyncio.get_running_loop().call_later(self._timeout_s, self._check_stall)

    def _received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while waiting:
            reply = reader.gets()
            if reply is False:
                return
            call = waiting[0]
            call.replies.append(reply)
            if len(call.replies) == call.expected:
                waiting.popleft()
                if not call.future.done():  # its caller may have been cancelled
                    call.future.set_result(call.replies)

    def _check_stall(self) -> None:
        self._stall_check = None
        if not self._waiting:
            return
        now = asyncio.get_running_loop().time()
        oldest = self._waiting[0].queued_at
        if now - oldest >= self._timeout_s:
            self._fail(TimeoutError(f"redis did not answer within {self._timeout_s:g} s"))
        else:
            self._stall_check = asyncio.get_running_loop().call_later(oldest + self._timeout_s - now, self._check_stall)

    def _lost(self, exc: BaseException) -> None:
        if self._transport is not None:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()
        if self._stall_check is not None:
            self._stall_check.cancel()
            self._stall_check = None
        waiting, self._waiting = self._waiting, deque()
        self._out = []
        self._reader = hiredis.Reader()
        for call in waiting:
            if not call.future.done():
                call.future.set_exception(PipeDown(str(exc) or type(exc).__name__))

    async def _connect(self) -> None:
        if self._connecting is not None:  # another caller is connecting: wait for it
            await asyncio.shield(self._connecting)
            if self._transport is None:
                raise PipeDown("could not connect to redis")
            return
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        where = self._where
        try:
            if "path" in where:
                opening = loop.create_unix_connection(lambda: _Protocol(self), where["path"])
            else:
                opening = loop.create_connection(
                    lambda: _Protocol(self),
                    where.get("host", "localhost"),
                    where.get("port", 6379),
                    ssl=self._tls or None,
                )
            transport, _ = await asyncio.wait_for(opening, self._timeout_s)
            self._transport = transport
            hello: list[Command] = []
            if where.get("password"):
                hello.append(("AUTH", *([where["username"]] if where.get("username") else []), where["password"]))
            if where.get("db"):
                hello.append(("SELECT", where["db"]))
            if hello:
                future: asyncio.Future[list[Any]] = loop.create_future()
                self._queue(tuple(hello), _Call(future, len(hello), loop.time()))
                for reply in await future:
                    if isinstance(reply, Exception):
                        self._fail(reply)
                        raise PipeDown(f"redis refused the connection: {reply}")
        except (OSError, TimeoutError) as exc:
            raise PipeDown(str(exc)) from exc
        finally:
            self._connecting.set_result(None)
            self._connecting = None

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if self._stall_check is not None:
            self._stall_check.cancel()
