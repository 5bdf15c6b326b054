"""The gateway's link to Redis: one connection pool, short timeouts, and a breaker on Redis itself.

Every shared-state call goes through `RedisLink.run`. A call that fails or times out marks the link
down at once, and while it is down nobody calls Redis on a request's path: the callers fall back to
per-process state (limits divided by the processes last seen alive). A heartbeat task, once a
second, both says that this process is alive (a sorted set of process ids scored by Redis's own
clock) and probes a down link; when Redis answers again the link comes back up and the callbacks
given to `on_up` run (the spend counters are seeded again, notifications resubscribed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import hiredis
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ..config import RedisSettings
from .redis_pipe import Command, PipeDown, RedisPipe

log = logging.getLogger("llmproxy.redis")
T = TypeVar("T")

LIVE_FOR_S = 5.0  # a process missing this many seconds of heartbeats no longer counts as alive
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[2]) * 2000))
return redis.call('ZCARD', KEYS[1])
"""


class RedisDown(Exception):
    """Redis is not usable right now (the link is down, or this call failed): fall back."""


class RedisLink:
    """A pool of connections to one Redis, whether it is up, and how many gateway processes share it."""

    def __init__(self, settings: RedisSettings) -> None:
        assert settings.url is not None
        self.settings = settings
        self.prefix = settings.key_prefix
        self.process_id = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(3).hex()}"
        timeout = settings.timeout_s
        self.client: redis.Redis = redis.Redis.from_url(
            settings.url.value,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        self.pipe = RedisPipe(settings.url.value, timeout)  # the request path's connection
        self.up = False
        self.live_processes = 1
        self.errors = 0  # calls that failed
        self.fallbacks = 0  # requests whose limits were decided in this process (Redis down)
        self.went_down = 0  # times the link went down
        self.down_since: float | None = time.monotonic()
        self._scripts: dict[str, str] = {}  # name -> source; loaded into Redis on first use
        self._shas: dict[str, str] = {}
        self._on_up: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def script(self, name: str, source: str) -> None:
        """Register a Lua script under `name` (run by its SHA1; loaded into Redis when it asks)."""
        self._scripts[name] = source
        self._shas[name] = hashlib.sha1(source.encode()).hexdigest()

    def on_up(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` each time Redis becomes reachable (first time included)."""
        self._on_up.append(callback)

    def divisor(self) -> int:
        """What per-process limits are divided by while Redis is down."""
        return self.settings.fallback_processes or max(1, self.live_processes)

    # --- lifecycle ---

    async def start(self) -> None:
        """Connect (a Redis that is down at startup is not fatal: the gateway starts degraded) and
        start the heartbeat."""
        self.script("heartbeat", HEARTBEAT)
        await self._beat()
        self._task = asyncio.create_task(self._heartbeat(), name="redis-heartbeat")

    async def close(self) -> None:
        # The flag as well as the cancellation: should the cancellation be lost on its way through
        # the Redis client (which catches it in several places while it tidies a connection), the
        # heartbeat would beat on, and this wait with it, for ever.
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.up:
            try:
                await asyncio.wait_for(self.client.zrem(self.key("live"), self.process_id), self.settings.timeout_s)
            except (RedisError, OSError, TimeoutError):
                pass
        self.pipe.close()
        await self.client.aclose()

    # --- calls ---

    async def run(self, call: Callable[[redis.Redis], Awaitable[T]]) -> T:
        """`call(client)`, or RedisDown when the link is down or the call fails (which takes the link
        down until the heartbeat sees Redis answer again)."""
        if not self.up:
            raise RedisDown
        try:
            try:
                return await call(self.client)
            except NoScriptError:  # a restarted Redis has forgotten the scripts
                await self.load_scripts()
                return await call(self.client)
        except ResponseError as exc:  # Redis answered, with an error: this call fails, the link is fine
            self.errors += 1
            log.error("redis refused a command: %s", exc)
            raise RedisDown from exc
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            raise RedisDown from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # no request fails because of the shared state: fall back, and say why
            self.errors += 1
            log.exception("redis call failed unexpectedly")
            raise RedisDown from exc

    async def call(self, *commands: Command) -> list[Any]:
        """The request path's commands, in one round trip shared with the rest of this loop turn's;
        RedisDown as `run`. A reply that is an error comes back as an exception object."""
        if not self.up:
            raise RedisDown
        try:
            replies = await self.pipe.call(*commands)
            if any(isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT") for r in replies):
                await self.run(lambda client: self.load_scripts())  # a restarted Redis forgot them
                replies = await self.pipe.call(*commands)
        except PipeDown as exc:
            self.failed(exc)
            raise RedisDown from exc
        return replies

    def script_call(self, name: str, keys: list[str], args: list[Any]) -> Command:
        """The EVALSHA command of a registered script, for `call`."""
        return ("EVALSHA", self._shas[name], len(keys), *keys, *args)

    async def load_scripts(self) -> None:
        for name, source in self._scripts.items():
            self._shas[name] = await self.client.script_load(source)

    async def evalsha(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One script call; a Redis that lost its scripts (restarted) gets them again."""
        reply = (await self.call(self.script_call(name, keys, args)))[0]
        if isinstance(reply, hiredis.ReplyError):
            self.errors += 1
            log.error("redis refused script %s: %s", name, reply)
            raise RedisDown
        return reply

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.up:
            self.up = False
            self.went_down += 1
            self.down_since = time.monotonic()
            log.warning(
                "redis unreachable (%s); limits fall back to this process's share (1/%d) until it returns",
                type(exc).__name__,
                self.divisor(),
            )

    # --- heartbeat ---

    async def _heartbeat(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.heartbeat_s)
            await self._beat()

    async def _beat(self) -> None:
        was_up = self.up
        try:
            if not was_up:
                await self.load_scripts()
            live = await self.client.evalsha(
                self._shas["heartbeat"], 1, self.key("live"), self.process_id, str(LIVE_FOR_S)
            )
        except NoScriptError:
            try:
                await self.load_scripts()  # a restarted Redis: the next beat finds them
            except (RedisError, OSError, TimeoutError):
                pass
            return
        except (RedisError, OSError, TimeoutError) as exc:
            if was_up:
                self.failed(exc)
            elif self.down_since is not None and self.errors == 0:
                log.warning(
                    "redis unreachable at startup (%s); serving with per-process limits until it answers",
                    type(exc).__name__,
                )
                self.errors += 1
            return
        self.live_processes = max(1, int(live))
        if not was_up:
            self.up = True
            down_for = time.monotonic() - self.down_since if self.down_since is not None else 0.0
            self.down_since = None
            log.info(
                "redis reachable; shared limits, cache and notifications on",
                extra={"live_processes": self.live_processes, "down_s": round(down_for, 3)},
            )
            for callback in self._on_up:
                try:
                    await callback()
                except Exception:  # one callback's failure must not keep the others from running
                    log.exception("redis: a reconnect step failed")

    def stats(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "live_processes": self.live_processes,
            "divisor": self.divisor(),
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "went_down": self.went_down,
        }
