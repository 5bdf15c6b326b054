"""Notifications between the gateway processes of a deployment, over Redis pub/sub.

One channel; each message is a small JSON object {"kind", "from", ...}. A process publishes what it
changed ("keys": a key, user or credential written, "registry": a new registry version,
"breaker": a provider's breaker opened or a retry-after hold), and every other process runs the
handler registered for that kind: it reloads from the database (or the registry file), or holds
the provider off. A process never handles its own messages. Publishing is fire and forget; when
the subscription is lost and comes back, every handler runs once with {"kind": "resync"} (what was
missed meanwhile is read again), and the processes' own polling stays as the slow safety net.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .redis_link import RedisDown, RedisLink

log = logging.getLogger("llmproxy.notify")
Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
RETRY_S = 1.0


class Notifier:
    def __init__(self, link: RedisLink) -> None:
        assert link.settings.url is not None
        self.link = link
        self.channel = link.prefix + "events"
        # Its own connection without a read timeout: a subscription is quiet most of the time.
        self._client: redis.Redis = redis.Redis.from_url(
            link.settings.url.value,
            socket_connect_timeout=link.settings.timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        self._handlers: dict[str, list[Handler]] = {}
        self._watchers: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.received = self.published = 0

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def watch(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` each time the subscription starts (the first time, and again after a
        loss), `callback(False)` when it is lost: what is published meanwhile never arrives."""
        self._watchers.append(callback)

    def _tell(self, subscribed: bool) -> None:
        for callback in self._watchers:
            try:
                callback(subscribed)
            except Exception:  # one watcher's failure must not stop the subscription
                log.exception("notifications: a subscription watcher failed")

    def publish(self, kind: str, **fields: Any) -> None:
        """Tell the other processes (off the caller's path; lost if Redis is down)."""
        payload = orjson.dumps({"kind": kind, "from": self.link.process_id, **fields})
        asyncio.ensure_future(self._publish(payload))

    async def _publish(self, payload: bytes) -> None:
        try:
            await self.link.run(lambda client: client.publish(self.channel, payload))
            self.published += 1
        except RedisDown:
            pass

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-notifications")

    async def close(self) -> None:
        self._closing = True  # as well as the cancellation, which the Redis client can lose (RedisLink.close)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()

    async def _listen(self) -> None:
        first = True
        while not self._closing:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._tell(True)
                if not first:
                    await self._dispatch({"kind": "resync"})
                first = False
                while not self._closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("notifications: subscription lost (%s); retrying", type(exc).__name__)
                self._tell(False)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError, TimeoutError):
                    pass
            if not self._closing:
                await asyncio.sleep(RETRY_S)

    async def _handle(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict) or message.get("from") == self.link.process_id:
            return
        self.received += 1
        await self._dispatch(message)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        handlers = [h for k, hs in self._handlers.items() if k == kind or kind == "resync" for h in hs]
        for handler in handlers:
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one handler's failure must not stop the subscription
                log.exception("notifications: handling %r failed", kind)
