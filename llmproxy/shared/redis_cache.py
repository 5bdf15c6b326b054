"""The response cache's shared tier in Redis: one key per cached answer, expiring with the entry.

The cache (cache.py) asks this tier after its own memory tier misses, and stores every answer here
as well as in memory; values are the memory tier's packed entries, opaque to this module. A read
carries the request's pending limit check (ctx.admission) in the same pipeline, so a request that
needs both pays one round trip. Writes are queued and sent in one pipeline per event-loop turn, off
the request's path. Any Redis failure is a miss (or a lost write), never a failed request.

Most requests are new, and asking Redis for each puts a round trip on the request's path (one
gateway on loopback, one request at a time: 0.70 -> 0.63 ms a request without it, bench/cpu.py
--concurrency 1; across a network, more). So each process keeps an
IdFilter of the ids the tier may hold: those it stores, those the other processes announce (a
"cache-ids" notification, batched every ANNOUNCE_S, sent after their SETs on the same connection)
and what a SCAN of the tier found. A "no" skips the read. The filter is trusted only once a scan
has finished after the notifications' subscription started (an id stored before the scan began is
found by it, any later one is announced), and no longer once that subscription is lost, until the
next scan. Expired entries leave their bits set (a wrong "maybe" is one read); a new scan starts
over after REBUILD_AFTER ids. A missed announcement costs a miss, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from ..idfilter import IdFilter, entry_id
from ..context import RequestContext
from .redis_link import RedisDown, RedisLink
from .redis_limits import Admission

log = logging.getLogger("llmproxy.cache")
SCAN_BATCH = 500
IDS_KIND = "cache-ids"  # the notification that carries the ids a process stored
ANNOUNCE_S = 0.05
FILTER_BITS = 1 << 25  # 4 MiB: about 1.6% wrong "maybe"s with 4 million ids (two bits each)
REBUILD_AFTER = FILTER_BITS // 8  # ids learnt before a fresh scan clears the bits of expired ones


class RedisCacheTier:
    def __init__(self, link: RedisLink, channel: str) -> None:
        self.link = link
        self._prefix = link.prefix + "cache:"
        self._channel = channel  # the notifications' (shared/notify.py)
        self._outbox: list[tuple[str, bytes, int]] = []
        self.index = IdFilter(FILTER_BITS)
        self.trusted = False  # the index has every id the tier may hold (the module's doc says when)
        self._subscribed = False
        self._scan: asyncio.Task[None] | None = None
        self._learnt = 0  # ids learnt since the last scan began
        self._to_announce: list[int] = []
        self.hits = self.misses = self.errors = self.writes = self.skipped = self.scans = 0
        link.on_up(self._link_back)

    async def _link_back(self) -> None:
        if self._subscribed and not self.trusted:  # a scan failed while Redis was away
            self._start_scan()

    def close(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
        self._to_announce = []

    def may_hold(self, id_: int) -> bool:
        """False when the tier certainly lacks this entry: the read is skipped."""
        if not self.trusted or id_ in self.index:
            return True
        self.skipped += 1
        return False

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

    def put(self, key: str, id_: int, blob: bytes, ttl_s: float) -> None:
        """Queue one packed entry (`id_`: its key's, as the cache computed it) for the shared tier,
        written with the others of this turn."""
        ms = int(ttl_s * 1000)
        if ms <= 0 or not self.link.up:
            return
        loop = asyncio.get_running_loop()
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append((self._prefix + key, blob, ms))
        self._learn(id_)
        if not self._to_announce:
            loop.call_later(ANNOUNCE_S, self._announce)
        self._to_announce.append(id_)

    def _flush(self) -> None:
        writes, self._outbox = self._outbox, []
        if writes:
            asyncio.ensure_future(self._write(writes))

    def _announce(self) -> None:
        """Tell the other processes the ids stored here lately: on the SETs' connection, after
        them, so that an id is never announced before its entry is in Redis."""
        ids, self._to_announce = self._to_announce, []
        if ids:
            message = orjson.dumps({"kind": IDS_KIND, "from": self.link.process_id, "ids": ids})
            asyncio.ensure_future(self._publish(message))

    async def _publish(self, message: bytes) -> None:
        try:
            await self.link.call(("PUBLISH", self._channel, message))
        except RedisDown:
            self.errors += 1

    def learn(self, message: dict[str, Any]) -> None:
        """A notification: the ids another process announced (a "resync" carries none)."""
        for id_ in message.get("ids") or ():
            if isinstance(id_, int):
                self._learn(id_)

    def _learn(self, id_: int) -> None:
        self.index.add(id_)  # and to the set a scan under way fills
        self._learnt += 1
        if self._learnt >= REBUILD_AFTER and self._subscribed:
            self._start_scan()

    def subscription(self, subscribed: bool) -> None:
        """The notifications' subscription started (scan, then trust the index) or was lost
        (announcements may be missed: stop trusting it)."""
        self._subscribed = subscribed
        if subscribed:
            self._start_scan()
            return
        self.trusted = False
        self.index.abandon()  # the scan under way is not committed
        if self._scan is not None:
            self._scan.cancel()

    def _start_scan(self) -> None:
        if self._scan is not None:
            self._scan.cancel()  # begun before the subscription was lost, or superseded
        self._learnt = 0
        self._scan = asyncio.create_task(self._rescan(self.index.begin()), name="redis-cache-scan")

    async def _rescan(self, fresh: bytearray) -> None:
        index, prefix = self.index, self._prefix

        async def work(client: Any) -> None:
            async for batch in _batches(client.scan_iter(match=prefix + "*", count=SCAN_BATCH)):
                for name in batch:
                    try:
                        index.fill(fresh, entry_id(name[len(prefix) :].decode("ascii")))
                    except ValueError:
                        continue  # not one of the cache's keys

        try:
            await self.link.run(work)
        except RedisDown as exc:
            log.warning("cache: could not scan the shared tier (%s); every miss reads it", exc)
            index.abandon(fresh)
            return
        if index.commit(fresh):  # neither superseded nor the subscription lost meanwhile
            self.scans += 1
            self.trusted = self._subscribed

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
            "reads_skipped": self.skipped,
            "index_trusted": self.trusted,
            "index_scans": self.scans,
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
