"""What a gateway process shares with the others of its deployment, built from [redis]: the link,
the notifications, the cache's shared tier, and the lock that makes a registry refresh run once.

`Deployment.open(settings)` is None without a Redis url: then nothing here exists and the gateway
is the single process it always was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..config import RedisSettings
from .notify import Notifier
from .redis_cache import IDS_KIND, RedisCacheTier
from .redis_limits import SCRIPTS as LIMIT_SCRIPTS
from .redis_link import RedisDown, RedisLink

REGISTRY_LOCK_MS = 15 * 60 * 1000  # longer than any refresh; a crashed holder's lock expires
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Deployment:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.notifier = Notifier(link)
        self.cache = RedisCacheTier(link, self.notifier.channel)
        self.notifier.on(IDS_KIND, self.cache.learn)
        self.notifier.watch(self.cache.subscription)
        link.script("release", RELEASE)
        for name, source in LIMIT_SCRIPTS.items():  # loaded at start, not by the first requests at once
            link.script(name, source)

    @classmethod
    async def open(cls, settings: RedisSettings) -> Deployment | None:
        if settings.url is None:
            return None
        deployment = cls(RedisLink(settings))
        await deployment.link.start()
        await deployment.notifier.start()
        return deployment

    async def close(self) -> None:
        self.cache.close()
        await self.notifier.close()
        await self.link.close()

    @asynccontextmanager
    async def registry_lock(self) -> AsyncIterator[bool]:
        """True when this process may refresh the registry (no other process of the deployment is);
        with Redis down, True: the file lock beside the registry still keeps one machine's
        processes apart."""
        name, token = self.link.key("registry-lock"), self.link.process_id
        try:
            held = bool(await self.link.run(lambda c: c.set(name, token, nx=True, px=REGISTRY_LOCK_MS)))
        except RedisDown:
            yield True
            return
        try:
            yield held
        finally:
            if held:
                try:
                    await self.link.evalsha("release", [name], [token])
                except RedisDown:
                    pass  # it expires by itself

    def stats(self) -> dict[str, Any]:
        return {
            **self.link.stats(),
            "cache": self.cache.stats(),
            "notifications": {"published": self.notifier.published, "received": self.notifier.received},
        }
