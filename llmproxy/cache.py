"""Response cache: exact match on the canonical request; a hit is answered without calling a provider.

Two tiers behind one interface: a byte-bounded LRU in memory, checked first, in front of a
persistent backend (SQLite in the data directory by default; anything with CacheBackend's methods).
With Redis configured a shared tier (SharedTier) takes the disk's place (both with `persist =
true`): every process reads and writes it, and a hit there is kept in this process's memory tier.
The hot path never waits on a tier to learn that something is *not* cached: an in-memory filter
of the ids the tier may hold answers that, and a read that is slow or fails is a miss.

What is cached: a request that asks for a deterministic answer (temperature 0, or a seed); every
request when the caller asks (Cache-Control: max-age=N, x-llmproxy-cache: on) or the key's settings
say so (cache_rule.py). Any other request is decided in a few dict look-ups, before a key is computed.

Storing is off the request's path: store() only queues the answer; a callback DRAIN_S later puts
that while's answers in the disk queue together (a lookup for one of them does it at once). The
disk queue is bounded in bytes; a background task writes it in batches (and completely on
shutdown). When the disk cannot keep up, new writes are shed (counted, and said in a log line at
most every SHED_LOG_INTERVAL_S) and those answers are kept in memory only.

With a disk tier, the memory tier holds the answers asked for again, not every answer stored: a
stored answer is found in the disk queue until it is written, then on disk, and either read puts it
in memory for the requests after. Most requests to a gateway are asked once; storing each of
those in memory cost every miss an LRU insert and an eviction (about 9,000 instructions a request,
bench/instructions.py) and pushed the answers that are asked again out of memory within seconds.
Without a disk tier every answer goes to memory, as nothing else would keep it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Collection, Mapping
from typing import Any, NamedTuple

import orjson

from .cache_key import request_key
from .cache_rule import decide
from .cache_memory import QUEUED_OVERHEAD, Entry, MemoryLRU, Row, queued_size
from .cache_memory import _pack as pack_row, _unpack as unpack_entry  # the shared tier stores the memory tier's form
from .cache_replay import StreamCollector, assemble
from .cache_tiers import CacheBackend, SharedTier
from .config import CacheSettings
from .context import CHAT, RequestContext
from .idfilter import IdFilter, disk_index_bits

log = logging.getLogger("llmproxy.cache")

DB_READ_TIMEOUT_S = 0.02  # past this a read from disk counts as a miss
# Bigger batches cost less per row: the id index is a hash, so each batch dirties most of its leaf
# pages once whatever its size (with 250,000 rows on disk, rows sorted by id: 11.7 us of CPU per
# row in batches of 2048, 7.3 in batches of 8192, 6.5 in batches of 16384). So the writer waits
# FLUSH_INTERVAL_S, or until WAKE_AT of the write queue's bound is taken, which the queue counts in
# the bytes its entries really hold (Entry.queued_size): at 4,000 stores/s, batches of ~8,000 rows.
FLUSH_INTERVAL_S = 2.0
FLUSH_BATCH = 16384  # rows per write transaction
WAKE_AT = 0.75
# Answers are stored in batches, DRAIN_S after the first of them went out: the same work done for
# ~90 answers at once (4,500 req/s) cost ~10 us of CPU a request less than answer by answer in the
# next turn of the loop (bench/cpu.py, defaults, five interleaved rounds). A lookup for an answer
# still waiting stores the batch at once, so a repeat is a hit as soon as the first has gone out.
DRAIN_S = 0.02
SWEEP_INTERVAL_S = 60.0
SHED_LOG_INTERVAL_S = 10.0
RESTRICTED = "|models:"  # a tenant's suffix naming its callers' model restriction (see _tenant)


# An answer waiting for the next drain: what its row needs (id, key, principal, model as asked, the
# model and provider that answered, ttl, cost, the body or the stream, a stream's usage).
_Answered = tuple[int, str, Any, str, "str | None", "str | None", float, "float | None", "bytes | StreamCollector", Any]


class CacheCounters(NamedTuple):
    """The cache's own counts and sizes, as /metrics exports them (stats() is the admin's fuller report)."""

    hits: int
    disk_hits: int
    misses: int
    bypasses: int
    stores: int
    dropped_writes: int  # never reached the disk (shed, or a failed batch)
    shed_writes: int  # shed at the write queue's byte bound
    disk_errors: int
    pending_bytes: int  # answers waiting for the disk
    memory_bytes: int
    memory_entries: int
    evictions: int


class ResponseCache:
    """The cache stage and its storage. Counters are plain attributes, for the metrics and the admin API."""

    def __init__(
        self, settings: CacheSettings, backend: CacheBackend | None = None, shared: SharedTier | None = None
    ) -> None:
        self.settings = settings
        self.shared = shared
        self.memory = MemoryLRU(settings.max_memory_bytes)
        self._backend = backend
        # the ids the backend may hold: a "no" skips the read
        self._on_disk = IdFilter(disk_index_bits(settings.max_disk_bytes))
        self._incoming: list[_Answered] = []  # answered, not yet stored
        self._incoming_keys: set[str] = set()
        self._drain_timer: asyncio.TimerHandle | None = None
        self._pending: list[Row] = []  # waiting for the disk
        self._unwritten: dict[str, Row] = {}  # by key: the rows queued or being written, until on disk
        self._last_tenant: tuple[Any, str] = (
            None,
            "",
        )  # (principal, its tenant): most requests come from a few callers
        self.pending_bytes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.hits = self.misses = self.bypasses = self.stores = 0
        self.disk_hits = self.disk_errors = self.dropped_writes = self.shed_writes = 0
        self._shed_logged, self._shed_since_log = 0.0, 0
        self.bytes_served = 0
        self.saved_usd = 0.0

    # --- lifecycle (app lifespan) ---

    async def start(self) -> None:
        if self._backend is None:
            return
        try:
            await self._on_disk.rebuild(await self._backend.ids(time.time()))
        except Exception as exc:  # noqa: BLE001 - a cache that cannot read its disk still serves from memory
            log.error("cache: could not read the persistent cache (%s); starting empty", exc)
        self._task = asyncio.create_task(self._run(), name="cache-writer")

    async def stop(self) -> None:
        """Write every queued entry, then close the backend."""
        self._drain()
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._backend is not None:
            await self._flush()
            await self._backend.close()

    # --- the stage ---

    async def lookup(self, ctx: RequestContext) -> Entry | None:
        """The cache stage awaited whole: the entry that answers this request, or None."""
        found = self.check(ctx)
        return found if found is None or isinstance(found, Entry) else await found

    def check(self, ctx: RequestContext) -> Entry | Awaitable[Entry | None] | None:
        """The cache stage: the entry that answers this request, None, or, when only a slower tier
        (Redis, the disk) may hold it, the read to await. Most requests are decided here, with no
        coroutine. Sets ctx.cache_status and, when the answer may be stored afterwards,
        ctx.cache_key and ctx.cache_ttl_s."""
        decision = decide(self.settings, ctx)
        if decision is None:
            self._bypass(ctx)
            return None
        ttl, max_age, no_cache = decision
        principal = ctx.principal
        last, tenant = self._last_tenant
        if principal is not last or not tenant:
            tenant = self._tenant(principal)
            self._last_tenant = (principal, tenant)
        # Another API's answer has another shape: its requests never share a key with chat's.
        key, id_ = request_key(tenant if ctx.endpoint == CHAT else ctx.endpoint + tenant, ctx.body)
        ctx.cache_key, ctx.cache_id, ctx.cache_ttl_s = key, id_, ttl
        ctx.cache_status = "miss"
        if no_cache:
            self.misses += 1
            return None
        now = time.time()
        entry = self.memory.get(key, now)
        if entry is None and key in self._incoming_keys:  # answered a moment ago, not yet stored
            self._drain()
            entry = self.memory.get(key, now)
        if entry is None:
            row = self._unwritten.get(key)
            if row is not None and row[7] > now:  # asked again while it waits for the disk: memory keeps it
                self.memory.put_row(row)
                entry = Entry.of_row(row)
        if entry is None:
            if (self.shared is not None and self.shared.may_hold(id_)) or id_ in self._on_disk:
                return self._read(ctx, key, id_, now, max_age)
            self.misses += 1
            return None
        return self._hit(ctx, key, entry, max_age, now)

    async def _read(self, ctx: RequestContext, key: str, id_: int, now: float, max_age: float | None) -> Entry | None:
        """A request that memory cannot answer, from the tiers that may hold it: Redis, then the disk."""
        entry = None
        if self.shared is not None and self.shared.may_hold(id_):
            blob = await self.shared.get(key, ctx)
            if blob is not None:
                entry = unpack_entry(key, blob)
                if entry.expires > now:
                    self.memory.put(entry)  # the next identical request here is served from memory
                else:
                    entry = None
        if entry is None and id_ in self._on_disk:
            entry = await self._read_disk(key, id_, now)
        if entry is None:
            self.misses += 1
            return None
        return self._hit(ctx, key, entry, max_age, now)

    def _hit(self, ctx: RequestContext, key: str, entry: Entry, max_age: float | None, now: float) -> Entry | None:
        if max_age is not None and now - entry.created > max_age:
            self.misses += 1  # older than the caller accepts
            return None
        self.hits += 1
        self.bytes_served += len(entry.body)
        headers = ctx.response_headers
        headers["x-llmproxy-cache-key"] = key
        ctx.cache_status, ctx.cache_key = "hit", None
        ctx.cost_usd, ctx.saved_usd = 0.0, entry.cost_usd
        if entry.cost_usd:
            self.saved_usd += entry.cost_usd
        headers["age"] = str(int(time.time() - entry.created))
        ctx.served_model, ctx.served_provider = entry.served_model, entry.provider
        if entry.served_model:
            headers["x-llmproxy-model"] = entry.served_model
        if entry.provider:
            headers["x-llmproxy-provider"] = entry.provider
        return entry

    def collector(self, ctx: RequestContext) -> StreamCollector | None:
        """Where a stream's bytes are kept while relayed, when its answer may be stored."""
        if ctx.cache_key is None or ctx.cache_ttl_s <= 0:
            return None
        return StreamCollector(self.settings.max_entry_bytes * 4)  # SSE framing takes room too

    def store(self, ctx: RequestContext, body: bytes) -> None:
        """Keep a successful answer (the bytes the client got) for the next identical request. Only
        queues it: it is stored once the response has gone out."""
        if (
            ctx.cache_key is None
            or ctx.status != 200
            or ctx.cache_ttl_s <= 0
            or len(body) > self.settings.max_entry_bytes
        ):
            return
        self._queue(ctx, body)

    def store_stream(self, ctx: RequestContext, collected: StreamCollector, completed: bool) -> None:
        """Keep a stream's answer, only when it completed cleanly and was kept whole (assembled
        later, off the stream's path)."""
        if not completed or collected.pieces is None or ctx.status != 200 or ctx.cache_key is None:
            return
        self._queue(ctx, collected)

    def _queue(self, ctx: RequestContext, answer: bytes | StreamCollector) -> None:
        if not self._incoming:
            self._drain_timer = asyncio.get_running_loop().call_later(DRAIN_S, self._drain)
        model, provider = ctx.model, ctx.provider
        # What the row needs, not the context: the request's objects are freed as it ends, so the
        # next requests reuse their memory while it is still in the CPU's caches.
        self._incoming.append(
            (
                ctx.cache_id,
                ctx.cache_key,  # type: ignore[arg-type]  # stored only with a key
                ctx.principal,
                ctx.requested_model,
                model.id if model is not None else None,
                provider.name if provider is not None else None,
                ctx.cache_ttl_s,
                ctx.cost_usd,
                answer,
                ctx.usage if answer.__class__ is not bytes else None,
            )
        )
        self._incoming_keys.add(ctx.cache_key)  # type: ignore[arg-type]  # stored only with a key

    def _drain(self) -> None:
        """Store what was answered since the last call: into memory, and into the disk queue while
        it has room (a write that does not fit is shed, and said)."""
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        incoming, self._incoming = self._incoming, []
        self._incoming_keys.clear()
        now = time.time()
        limit = self.settings.max_write_queue_bytes
        memory, pending, unwritten, on_disk = self.memory, self._pending, self._unwritten, self._on_disk
        persist = self._backend is not None
        last, tenant = self._last_tenant  # one caller sends many: its tenant string is made once
        for id_, key, principal, requested, served, provider, ttl_s, cost, answer, usage in incoming:
            if answer.__class__ is not bytes:
                try:
                    completion = assemble(b"".join(answer.pieces), usage)  # type: ignore[union-attr, arg-type]  # not bytes: a StreamCollector
                except Exception:  # an unreadable stream is not stored; the rest of the batch still is
                    log.exception("cache: a finished stream could not be assembled for storing")
                    continue
                if completion is None:
                    continue
                answer = orjson.dumps(completion)
                if len(answer) > self.settings.max_entry_bytes:
                    continue
            if principal is not last or not tenant:
                last = principal
                tenant = self._tenant(last)
            # The row the disk stores is made once; the write queue keeps it, the memory tier (when it
            # keeps the answer) packs it.
            row = (id_, key, tenant, requested, served, provider, now, now + ttl_s, cost, len(answer), answer)
            self.stores += 1
            if self.shared is not None:
                self.shared.put(key, id_, pack_row(row), ttl_s)
            if not persist:
                memory.put_row(row)
                continue
            size = len(answer) + QUEUED_OVERHEAD
            if self.pending_bytes + size > limit:
                memory.put_row(row)
                self._shed(now)
                continue
            pending.append(row)
            unwritten[key] = row
            self.pending_bytes += size
            on_disk.add(id_)
        if self.pending_bytes >= limit * WAKE_AT:
            self._wake.set()

    def _shed(self, now: float) -> None:
        self.shed_writes += 1
        self.dropped_writes += 1
        self._shed_since_log += 1
        if now - self._shed_logged >= SHED_LOG_INTERVAL_S:
            log.warning(
                "cache: the disk writer is behind; %d writes shed since the last note (%d in all), the "
                "write queue is at its bound of %d bytes; those answers stay in memory only",
                self._shed_since_log,
                self.shed_writes,
                self.settings.max_write_queue_bytes,
            )
            self._shed_logged, self._shed_since_log = now, 0

    # --- admin ---

    async def purge(
        self, *, key: str | None = None, model: str | None = None, tenants: Collection[str] | None = None
    ) -> int:
        """Drop the entries matching every given filter (all when none is given), in memory, in the
        write queue and on disk. `tenants` are tenant families (see tenant_families): each matches
        its tenant with or without a model restriction. Returns how many were dropped (the larger
        of memory and disk)."""

        def match(e: Entry) -> bool:
            return (
                (key is None or e.key == key)
                and (model is None or model in (e.model, e.served_model))
                and (tenants is None or e.tenant in tenants or e.tenant.rpartition(RESTRICTED)[0] in tenants)
            )

        def match_row(r: Row) -> bool:
            return (
                (key is None or r[1] == key)
                and (model is None or model in (r[3], r[4]))
                and (tenants is None or r[2] in tenants or r[2].rpartition(RESTRICTED)[0] in tenants)
            )

        self._drain()
        dropped = self.memory.purge(match)
        self._pending = [r for r in self._pending if not match_row(r)]
        self.pending_bytes = sum(map(queued_size, self._pending))
        unwritten = len(self._unwritten)
        self._unwritten = {k: r for k, r in self._unwritten.items() if not match_row(r)}
        dropped = max(dropped, unwritten - len(self._unwritten))
        if self.shared is not None:
            everything = key is None and model is None and tenants is None
            shared = await self.shared.purge(None if everything else lambda k, blob: match(unpack_entry(k, blob)))
            dropped = max(dropped, shared)
        if self._backend is None:
            return dropped
        on_disk = await self._backend.purge(key=key, model=model, tenants=tenants)
        if key is None and model is None and tenants is None:
            await self._on_disk.rebuild(r[0] for r in self._pending)
        # otherwise leftover ids are harmless: a read finds nothing
        return max(dropped, on_disk)

    def tenant_families(self, keys: Mapping[str, str | None], user: str | None = None) -> set[str]:
        """The tenants, less any model restriction, that requests by these keys (id -> owner) or by
        this user are cached under, now or under another scope before: what a purge by key or by
        user must drop. With scope "user" a key reads its owner's entries; with "shared" every
        caller reads the shared ones, so purging anyone's empties those."""
        families = {f"key:{key_id}" for key_id in keys}
        if user is not None:
            families.add(f"user:{user}")
        if self.settings.scope == "user":
            families.update(f"user:{owner}" for owner in keys.values() if owner)
        elif self.settings.scope == "shared":
            families.add("*")
        return families

    def counters(self) -> CacheCounters:
        memory = self.memory
        return CacheCounters(
            self.hits,
            self.disk_hits,
            self.misses,
            self.bypasses,
            self.stores,
            self.dropped_writes,
            self.shed_writes,
            self.disk_errors,
            self.pending_bytes,
            memory.bytes,
            len(memory),
            memory.evictions,
        )

    async def stats(self) -> dict[str, Any]:
        disk_entries = disk_bytes = None
        if self._backend is not None:
            try:
                disk_entries, disk_bytes = await asyncio.wait_for(self._backend.totals(time.time()), 5.0)
            except Exception as exc:  # noqa: BLE001 - stats still answer without the disk's numbers
                log.warning("cache: could not count the persistent cache: %s", exc)
        lookups = self.hits + self.misses
        return {
            "enabled": self.settings.enabled,
            "scope": self.settings.scope,
            "memory": {
                "entries": len(self.memory),
                "bytes": self.memory.bytes,
                "max_bytes": self.memory.max_bytes,
                "evictions": self.memory.evictions,
            },
            "disk": {
                "entries": disk_entries,
                "bytes": disk_bytes,
                "max_bytes": self.settings.max_disk_bytes,
                "pending_writes": len(self._pending),
                "pending_bytes": self.pending_bytes,
                "max_pending_bytes": self.settings.max_write_queue_bytes,
                "shed_writes": self.shed_writes,
                "dropped_writes": self.dropped_writes,
                "errors": self.disk_errors,
            }
            if self._backend is not None
            else None,
            "hits": self.hits,
            "disk_hits": self.disk_hits,
            "misses": self.misses,
            "bypasses": self.bypasses,
            "hit_rate": round(self.hits / lookups, 4) if lookups else None,
            "stores": self.stores,
            "bytes_served": self.bytes_served,
            "saved_usd": round(self.saved_usd, 8),
            "shared": self.shared.stats() if self.shared is not None else None,
        }

    # --- internals ---

    def _bypass(self, ctx: RequestContext) -> None:
        ctx.cache_status = "bypass"
        self.bypasses += 1
        return None

    def _tenant(self, principal: Any) -> str:
        # A caller restricted to some models shares answers only with callers of the same
        # restriction, whatever the scope: a cached answer must not bring it a forbidden model.
        allowed = getattr(principal, "allowed_models", None)
        limited = "" if allowed is None else "|models:" + ",".join(sorted(allowed))
        scope = self.settings.scope
        if scope == "shared" or principal is None:
            return "*" + limited
        if scope == "user" and principal.user:
            return f"user:{principal.user}{limited}"
        if principal.key_id:
            return f"key:{principal.key_id}{limited}"
        return (f"user:{principal.user}" if principal.user else principal.kind) + limited

    async def _read_disk(self, key: str, id_: int, now: float) -> Entry | None:
        assert self._backend is not None
        try:
            row = await asyncio.wait_for(self._backend.get(id_), DB_READ_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a slow or failing disk is a miss, never a failed request
            self.disk_errors += 1
            if self.disk_errors == 1 or self.disk_errors % 1000 == 0:
                log.warning(
                    "cache: read from disk failed (%s), served as a miss; %d so far",
                    type(exc).__name__,
                    self.disk_errors,
                )
            return None
        if row is None or row[1] != key or row[7] <= now:
            return None
        entry = Entry.of_row(row)
        self.memory.put(entry)
        self.disk_hits += 1
        return entry

    async def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_INTERVAL_S
                await self._sweep()

    async def _flush(self) -> None:
        assert self._backend is not None
        while self._pending:
            batch, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
            self.pending_bytes -= sum(map(queued_size, batch))
            try:
                await self._backend.put_many(batch)
            except Exception as exc:  # noqa: BLE001 - a lost cache write only costs a later miss
                self.disk_errors += 1
                self.dropped_writes += len(batch)
                log.warning("cache: %d entries could not be written, kept in memory only: %s", len(batch), exc)
                for row in batch:
                    self.memory.put_row(row)
                return
            finally:
                self._written(batch)

    def _written(self, batch: list[Row]) -> None:
        """These rows are on disk (or lost): no longer found in the queue. A row queued again for the
        same key meanwhile stays."""
        unwritten = self._unwritten
        for row in batch:
            if unwritten.get(row[1]) is row:
                del unwritten[row[1]]

    async def _sweep(self) -> None:
        assert self._backend is not None
        try:
            removed = await self._backend.sweep(time.time(), self.settings.max_disk_bytes)
            if removed:
                ids = await self._backend.ids(time.time())
                await self._on_disk.rebuild(itertools.chain(ids, [r[0] for r in self._pending]))
        except Exception as exc:  # noqa: BLE001 - a failed sweep is retried on the next turn
            self.disk_errors += 1
            log.warning("cache: sweep failed: %s", exc)
