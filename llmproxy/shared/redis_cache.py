"""The response cache's shared tier in Redis: one key per cached answer, expiring with the entry.

The cache (cache.py) asks this tier after its own memory tier misses, and stores every answer here
as well as in memory; values are the memory tier's packed entries, opaque to this module. A read
carries the request's pending limit check (ctx.admission) in the same pipeline, so a request that
needs both pays one round trip. Writes are queued and sent in one pipeline per event-loop turn, off
the request's path. Any Redis failure is a miss (or a lost write), never a failed request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..context import RequestContext
from .redis_link import RedisDown, RedisLink
from .redis_limits import Admission

SCAN_BATCH = 500


class RedisCacheTier:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._prefix = link.prefix + "cache:"
        self._outbox: list[tuple[str, bytes, int]] = []
        self.hits = self.misses = self.errors = self.writes = 0

    async def get(self, key: str, ctx: RequestContext) -> bytes | None:
        """The packed entry stored under `key`, or None (absent, or Redis down). Sends the request's
        pending admission along, its reply left in the Admission for the ratelimit stage."""
        link = self.link
        if not link.up:
            return None
        admission: Admission | None = ctx.admission
        name = self._prefix + key
        try:
            if admission is None or admission.reply is not None:
                value = (await link.call(("GET", name)))[0]
            else:  # the request's limit check rides along: one round trip for both
                reply, value = await link.call(link.script_call("admit", admission.keys, admission.args), ("GET", name))
                admission.reply = None if isinstance(reply, Exception) else reply  # None: sent again alone
        except RedisDown:
            self.errors += 1
            if admission is not None:
                admission.failed = True
            return None
        if value is None or isinstance(value, Exception):
            self.misses += 1
            return None
        self.hits += 1
        return value if isinstance(value, bytes) else bytes(value, "latin-1")

    def put(self, key: str, blob: bytes, ttl_s: float) -> None:
        """Queue one packed entry for the shared tier (written with the others of this turn)."""
        ms = int(ttl_s * 1000)
        if ms <= 0 or not self.link.up:
            return
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append((self._prefix + key, blob, ms))

    def _flush(self) -> None:
        writes, self._outbox = self._outbox, []
        if writes:
            asyncio.ensure_future(self._write(writes))

    async def _write(self, writes: list[tuple[str, bytes, int]]) -> None:
        try:
            await self.link.call(*[("SET", name, blob, "PX", ms) for name, blob, ms in writes])
            self.writes += len(writes)
        except RedisDown:
            self.errors += 1

    async def purge(self, match: Callable[[str, bytes], bool] | None) -> int:
        """Delete the entries for which `match(key, packed entry)` holds (all when None)."""

        async def work(client: Any) -> int:
            dropped = 0
            async for batch in _batches(client.scan_iter(match=self._prefix + "*", count=SCAN_BATCH)):
                if match is not None:
                    values = await client.mget(batch)
                    batch = [
                        name
                        for name, value in zip(batch, values, strict=True)
                        if value is not None and match(name.decode()[len(self._prefix) :], bytes(value))
                    ]
                if batch:
                    dropped += int(await client.delete(*batch))
            return dropped

        try:
            return await self.link.run(work)
        except RedisDown:
            self.errors += 1
            return 0

    def stats(self) -> dict[str, Any]:
        return {
            "up": self.link.up,
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
            "errors": self.errors,
        }


async def _batches(names: Any) -> Any:
    batch: list[bytes] = []
    async for name in names:
        batch.append(name)
        if len(batch) >= SCAN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
