"""The cache's two tiers on a real SQLite file: TTL, the LRU's byte bound, persistence, tenants,
controls, purge, and a slow or locked disk that must only ever cost a miss."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmproxy.cache import DRAIN_S, ResponseCache
from llmproxy.cache_tiers import disk_tier
from llmproxy.cache_memory import ENTRY_OVERHEAD, QUEUED_OVERHEAD
from llmproxy.config import CacheKeySettings, CacheSettings
from llmproxy.context import Principal, RequestContext
from llmproxy.errors import InvalidRequest
from llmproxy.store.cache_sql import SQLiteCacheStore, connect_writer
from llmproxy.store.sqlite import SQLiteStore


def request(text: str = "hi", **extra: Any) -> dict[str, Any]:
    """A chat request; deterministic (temperature 0, so cached by default) unless `extra` says otherwise."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "temperature": 0, **extra}


def context(
    body: dict[str, Any], key_id: str | None = "a", headers: dict[str, str] | None = None, user: str | None = None
) -> RequestContext:
    ctx = RequestContext(request_id="r1", body=body, client_headers=dict(headers or {}))
    ctx.principal = Principal(kind="key" if key_id else "jwt", key_id=key_id, user=user, role="user")
    ctx.requested_model = body["model"]
    return ctx


def answer(text: str, pad: int = 0) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text + "." * pad}, "finish_reason": "stop"}
            ],
        }
    )


async def miss_then_store(cache: ResponseCache, ctx: RequestContext, body: bytes, cost: float = 0.001) -> None:
    assert await cache.lookup(ctx) is None
    ctx.cost_usd = cost
    cache.store(ctx, body)
    await asyncio.sleep(DRAIN_S + 0.01)  # answers are stored in batches, DRAIN_S after the first


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Opens caches on one real database file (as the app does); closes them all at the end."""
    store = await SQLiteStore.open(tmp_path / "llmproxy.db")
    caches: list[ResponseCache] = []

    async def open_cache(**changes: Any) -> ResponseCache:
        settings = replace(CacheSettings(), **changes)
        backend = await SQLiteCacheStore.open(store.path) if disk_tier(settings, None) else None
        cache = ResponseCache(settings, backend)
        await cache.start()
        caches.append(cache)
        return cache

    open_cache.db_path = store.path  # type: ignore[attr-defined]  # the factory carries its file for the tests
    yield open_cache
    for cache in caches:
        if not cache._closing:
            await cache.stop()
    await store.close()


async def test_identical_request_hits_with_zero_cost_and_the_saving(opened: Callable[..., Any]) -> None:
    cache = await opened()
    first = context(request())
    await miss_then_store(cache, first, answer("hello"), cost=0.0042)
    assert first.cache_status == "miss"
    again = context(request())
    entry = await cache.lookup(again)
    assert entry is not None and entry.body == answer("hello")
    assert (again.cache_status, again.cost_usd, again.saved_usd) == ("hit", 0.0, 0.0042)
    assert again.response_headers["age"] == "0"
    assert (cache.hits, cache.misses, cache.stores) == (1, 1, 1)
    assert cache.saved_usd == pytest.approx(0.0042)


async def test_answers_are_stored_in_batches_yet_a_repeat_at_once_is_a_hit(opened: Callable[..., Any]) -> None:
    cache = await opened(persist=False)
    first = context(request("batched"))
    assert await cache.lookup(first) is None
    cache.store(first, answer("batched"))
    other = context(request("other"))
    assert await cache.lookup(other) is None
    cache.store(other, answer("other"))
    assert len(cache.memory) == 0  # waiting for the batch
    entry = await cache.lookup(context(request("batched")))  # its key waits: the batch is stored now
    assert entry is not None and entry.body == answer("batched")
    assert len(cache.memory) == 2 and cache.stores == 2
    third = context(request("third"))
    assert await cache.lookup(third) is None
    cache.store(third, answer("third"))
    await asyncio.sleep(DRAIN_S + 0.01)  # and by itself, DRAIN_S later
    assert len(cache.memory) == 3


async def test_an_answer_waiting_for_its_batch_keeps_its_fields_not_its_request_context(
    opened: Callable[..., Any],
) -> None:
    # The request's objects must be freed as it ends (the next requests then reuse warm memory);
    # the batch keeps only what the stored row needs, and the row is complete once stored.
    cache = await opened(persist=False)
    ctx = context(request("freed"))
    assert await cache.lookup(ctx) is None
    cache.store(ctx, answer("freed"))
    waiting = [part for answered in cache._incoming for part in answered]
    assert waiting and not any(isinstance(part, RequestContext) for part in waiting)
    await asyncio.sleep(DRAIN_S + 0.01)
    entry = await cache.lookup(context(request("freed")))
    assert entry is not None and entry.body == answer("freed") and entry.tenant and entry.model


async def test_entries_expire_after_their_ttl_in_memory_and_on_disk(opened: Callable[..., Any]) -> None:
    cache = await opened(ttl_s=0.3)
    await miss_then_store(cache, context(request()), answer("x"))
    assert await cache.lookup(context(request())) is not None
    await cache.stop()
    reopened = await opened(ttl_s=0.3)
    assert await reopened.lookup(context(request())) is not None  # from disk, still fresh
    await asyncio.sleep(0.35)
    assert await reopened.lookup(context(request())) is None  # expired in memory
    await reopened.stop()
    third = await opened(ttl_s=0.3)
    assert await third.lookup(context(request())) is None  # and on disk


async def test_per_request_ttl_header_overrides_and_is_capped(opened: Callable[..., Any]) -> None:
    cache = await opened(ttl_s=3600, max_ttl_s=100)
    ctx = context(request(), headers={"x-llmproxy-cache-ttl": "0.2"})
    await miss_then_store(cache, ctx, answer("short"))
    assert await cache.lookup(context(request())) is not None
    await asyncio.sleep(0.25)
    assert await cache.lookup(context(request())) is None
    capped = context(request("b"), headers={"x-llmproxy-cache-ttl": "999999"})
    await miss_then_store(cache, capped, answer("b"))
    assert capped.cache_ttl_s == 100
    with pytest.raises(InvalidRequest, match="x-llmproxy-cache-ttl"):
        await cache.lookup(context(request(), headers={"x-llmproxy-cache-ttl": "soon"}))


async def test_ttl_zero_is_served_but_not_stored(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request(), headers={"x-llmproxy-cache-ttl": "0"}), answer("x"))
    assert cache.stores == 0


async def test_lru_evicts_the_least_recently_used_under_the_byte_bound(opened: Callable[..., Any]) -> None:
    size = len(answer("a", pad=1000)) + ENTRY_OVERHEAD
    cache = await opened(persist=False, max_memory_bytes=3 * size + 10)
    for name in "abc":
        await miss_then_store(cache, context(request(name)), answer(name, pad=1000))
    assert len(cache.memory) == 3
    assert await cache.lookup(context(request("a"))) is not None  # a is now the most recent
    await miss_then_store(cache, context(request("d")), answer("d", pad=1000))
    assert cache.memory.bytes <= cache.memory.max_bytes
    assert (len(cache.memory), cache.memory.evictions) == (3, 1)
    assert await cache.lookup(context(request("b"))) is None  # the least recently used went
    for name in "acd":
        assert await cache.lookup(context(request(name))) is not None


async def test_an_entry_larger_than_memory_still_reaches_disk(opened: Callable[..., Any]) -> None:
    cache = await opened(max_memory_bytes=600)
    await miss_then_store(cache, context(request()), answer("big", pad=2000))
    assert len(cache.memory) == 0
    await cache._flush()
    entry = await cache.lookup(context(request()))
    assert entry is not None and cache.disk_hits == 1


async def test_with_a_disk_memory_keeps_the_answers_asked_for_again(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request("once")), answer("once"))
    await miss_then_store(cache, context(request("twice")), answer("twice"))
    assert len(cache.memory) == 0 and cache.stores == 2  # in the disk queue, not in memory
    entry = await cache.lookup(context(request("twice")))  # asked again before its batch is written
    assert entry is not None and entry.body == answer("twice") and cache.disk_hits == 0
    assert [e.key for e in cache.memory.entries()] == [entry.key]
    await cache._flush()
    assert cache._unwritten == {}
    again = await cache.lookup(context(request("once")))  # asked again once it is on disk
    assert again is not None and again.body == answer("once") and cache.disk_hits == 1
    assert len(cache.memory) == 2


class FailingWriter:
    """The real SQLite backend, with a disk that refuses every write."""

    def __init__(self, inner: SQLiteCacheStore) -> None:
        self.inner = inner

    async def put_many(self, rows: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_answers_a_failed_write_lost_stay_in_memory(opened: Callable[..., Any]) -> None:
    backend = FailingWriter(await SQLiteCacheStore.open(opened.db_path))
    cache = ResponseCache(CacheSettings(), backend)  # type: ignore[arg-type]  # a test double
    await cache.start()
    try:
        await miss_then_store(cache, context(request("kept")), answer("kept"))
        await cache._flush()
        assert (cache.disk_errors, cache.dropped_writes, cache._unwritten) == (1, 1, {})
        entry = await cache.lookup(context(request("kept")))
        assert entry is not None and entry.body == answer("kept") and cache.disk_hits == 0
    finally:
        await cache.stop()


async def test_entries_outlive_a_restart_through_sqlite(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request()), answer("persisted"))
    await cache.stop()  # flushes the write queue
    reopened = await opened()
    ctx = context(request())
    entry = await reopened.lookup(ctx)
    assert entry is not None and entry.body == answer("persisted")
    assert reopened.disk_hits == 1 and ctx.cache_status == "hit"
    assert await reopened.lookup(context(request())) is not None and reopened.disk_hits == 1  # now in memory


async def test_tenants_never_see_each_others_entries(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request(), key_id="alice"), answer("alice's"))
    assert await cache.lookup(context(request(), key_id="bob")) is None
    assert await cache.lookup(context(request(), key_id=None, user="alice")) is None
    assert await cache.lookup(context(request(), key_id="alice")) is not None
    await cache.stop()
    reopened = await opened()  # the same holds on disk
    assert await reopened.lookup(context(request(), key_id="bob")) is None
    assert await reopened.lookup(context(request(), key_id="alice")) is not None


async def test_shared_scope_serves_every_tenant(opened: Callable[..., Any]) -> None:
    cache = await opened(scope="shared")
    await miss_then_store(cache, context(request(), key_id="alice"), answer("shared"))
    assert await cache.lookup(context(request(), key_id="bob")) is not None


async def test_user_scope_shares_between_one_users_keys(opened: Callable[..., Any]) -> None:
    cache = await opened(scope="user")
    await miss_then_store(cache, context(request(), key_id="k1", user="ann"), answer("ann"))
    assert await cache.lookup(context(request(), key_id="k2", user="ann")) is not None
    assert await cache.lookup(context(request(), key_id="k3", user="bea")) is None


async def test_cache_control_no_store_bypasses_and_no_cache_refreshes(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request()), answer("old"))
    no_store = context(request(), headers={"cache-control": "no-store"})
    assert await cache.lookup(no_store) is None
    assert no_store.cache_status == "bypass" and no_store.cache_key is None
    refresh = context(request(), headers={"cache-control": "No-Cache"})
    await miss_then_store(cache, refresh, answer("new"))
    assert refresh.cache_status == "miss"
    entry = await cache.lookup(context(request()))
    assert entry is not None and entry.body == answer("new")


async def test_by_default_only_deterministic_requests_are_cached(opened: Callable[..., Any]) -> None:
    cache = await opened(persist=False)
    for extra in ({"temperature": 0.9}, {"temperature": None}, {"temperature": 1, "seed": None}):
        ctx = context(request(**extra))  # absent means the provider's 1.0
        assert await cache.lookup(ctx) is None and ctx.cache_status == "bypass" and ctx.cache_key is None
    for extra in ({"temperature": 0}, {"temperature": 0.0}, {"temperature": 0.9, "seed": 7}, {"seed": 0}):
        ctx = context(request(**extra))
        assert await cache.lookup(ctx) is None and ctx.cache_status == "miss" and ctx.cache_key is not None
    assert cache.bypasses == 3 and cache.misses == 4


async def test_the_caller_or_the_settings_ask_for_every_request(opened: Callable[..., Any]) -> None:
    cache = await opened(persist=False, keys={"eager": CacheKeySettings(temperature_above_zero=True)})
    sampled = {"temperature": 0.9}
    for headers in (
        {"x-llmproxy-cache": "on"},
        {"x-llmproxy-cache": " ON "},
        {"cache-control": "max-age=60"},
        {"cache-control": "public, Max-Age=60"},
    ):
        ctx = context(request(**sampled), headers=headers)
        assert await cache.lookup(ctx) is None and ctx.cache_status == "miss", headers
    ctx = context(request(**sampled), key_id="eager")
    assert await cache.lookup(ctx) is None and ctx.cache_status == "miss"
    everyone = await opened(persist=False, temperature_above_zero=True)
    ctx = context(request(**sampled))
    assert await everyone.lookup(ctx) is None and ctx.cache_status == "miss"
    # ...and a deterministic request may still be kept out
    for headers in ({"x-llmproxy-cache": "off"}, {"cache-control": "no-store"}):
        ctx = context(request(), headers=headers)
        assert await cache.lookup(ctx) is None and ctx.cache_status == "bypass"
    with pytest.raises(InvalidRequest, match="x-llmproxy-cache"):
        await cache.lookup(context(request(), headers={"x-llmproxy-cache": "maybe"}))


async def test_max_age_sets_the_ttl_and_the_oldest_answer_accepted(opened: Callable[..., Any]) -> None:
    cache = await opened(persist=False, max_ttl_s=100)
    ctx = context(request(temperature=0.7), headers={"cache-control": "max-age=3600"})
    await miss_then_store(cache, ctx, answer("x"))
    assert ctx.cache_ttl_s == 100
    hit = context(request(temperature=0.7), headers={"cache-control": "max-age=5"})
    assert await cache.lookup(hit) is not None and hit.cache_status == "hit"
    await asyncio.sleep(1.1)
    too_old = context(request(temperature=0.7), headers={"cache-control": "max-age=1"})
    assert await cache.lookup(too_old) is None and too_old.cache_status == "miss"


async def test_per_key_settings_override_the_global_ones(opened: Callable[..., Any]) -> None:
    cache = await opened(
        persist=False,
        enabled=False,
        keys={"on": CacheKeySettings(enabled=True, ttl_s=5), "off": CacheKeySettings(enabled=False)},
    )
    ctx = context(request(), key_id="on")
    assert await cache.lookup(ctx) is None and ctx.cache_status == "miss" and ctx.cache_ttl_s == 5
    for key_id in ("off", "other"):
        ctx = context(request(), key_id=key_id)
        assert await cache.lookup(ctx) is None and ctx.cache_status == "bypass"


async def test_unsuccessful_answers_are_not_stored(opened: Callable[..., Any]) -> None:
    cache = await opened()
    ctx = context(request())
    assert await cache.lookup(ctx) is None
    ctx.status = 502
    cache.store(ctx, answer("error"))
    await asyncio.sleep(DRAIN_S + 0.01)
    assert cache.stores == 0 and await cache.lookup(context(request())) is None


async def test_purge_by_cache_key_model_tenant_and_all(opened: Callable[..., Any]) -> None:
    cache = await opened()
    first = context(request("1"))
    await miss_then_store(cache, first, answer("1"))
    await miss_then_store(cache, context(request("2", model="gpt-4o")), answer("2"))
    await miss_then_store(cache, context(request("3"), key_id="b"), answer("3"))
    await miss_then_store(cache, context(request("4")), answer("4"))
    await cache._flush()
    assert await cache.purge(key=first.cache_key) == 1
    assert await cache.purge(model="gpt-4o") == 1
    assert await cache.purge(tenants={"key:b"}) == 1
    assert (await cache.stats())["disk"]["entries"] == 1
    assert await cache.purge() == 1
    assert (await cache.stats())["disk"]["entries"] == 0
    await cache.stop()
    reopened = await opened()
    for key_id, text in (("a", "1"), ("a", "4"), ("b", "3")):
        assert await reopened.lookup(context(request(text), key_id=key_id)) is None


async def test_a_purge_drops_answers_still_waiting_for_the_disk(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request("queued")), answer("queued"))
    assert await cache.purge(model="gpt-4o-mini") == 1  # not in memory, not yet on disk
    assert await cache.lookup(context(request("queued"))) is None
    await cache.stop()
    assert (await opened()).memory.bytes == 0
    rows = sqlite3.connect(opened.db_path).execute("SELECT count(*) FROM cache_entries").fetchone()[0]
    assert rows == 0


class SlowBackend:
    """The real SQLite backend, with reads that take too long or fail."""

    def __init__(self, inner: SQLiteCacheStore, mode: str) -> None:
        self.inner, self.mode = inner, mode

    async def get(self, id_: int) -> Any:
        if self.mode == "fail":
            raise sqlite3.OperationalError("database is locked")
        await asyncio.sleep(1.0)
        return await self.inner.get(id_)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("mode", ["slow", "fail"])
async def test_a_slow_or_failing_disk_is_a_quick_miss(opened: Callable[..., Any], mode: str) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request()), answer("x"))
    await cache.stop()
    backend = SlowBackend(await SQLiteCacheStore.open(opened.db_path), mode)
    slow = ResponseCache(CacheSettings(), backend)  # type: ignore[arg-type]  # a test double around the real store
    await slow.start()
    try:
        started = time.perf_counter()
        ctx = context(request())
        assert await slow.lookup(ctx) is None
        assert time.perf_counter() - started < 0.2
        assert ctx.cache_status == "miss" and slow.disk_errors == 1
    finally:
        await slow.stop()


async def test_a_writer_holding_the_database_does_not_block_lookups(opened: Callable[..., Any]) -> None:
    cache = await opened()
    await miss_then_store(cache, context(request()), answer("x"))
    await cache.stop()
    reopened = await opened()
    other = sqlite3.connect(opened.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    other.execute("DELETE FROM cache_generations")  # ...not committed
    try:
        started = time.perf_counter()
        assert await reopened.lookup(context(request())) is not None  # WAL: readers see the last commit
        assert time.perf_counter() - started < 0.1
        await miss_then_store(reopened, context(request("new")), answer("new"))  # the write just queues
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_the_disk_is_trimmed_to_its_byte_bound_oldest_first(opened: Callable[..., Any]) -> None:
    cache = await opened()
    for name in "abcd":  # one write batch each: oldest first holds from batch to batch
        await miss_then_store(cache, context(request(name)), answer(name, pad=1000))
        await asyncio.sleep(0.01)
        await cache._flush()
    row_size = len(answer("a", pad=1000))
    removed = await cache._backend.sweep(time.time(), 2 * row_size)  # type: ignore[union-attr]  # this cache has a disk
    assert removed == 2
    cache.memory.purge(lambda e: True)
    assert await cache.lookup(context(request("a"))) is None
    assert await cache.lookup(context(request("d"))) is not None


class StuckWriter:
    """The real SQLite backend, with a disk that takes its time to write."""

    def __init__(self, inner: SQLiteCacheStore) -> None:
        self.inner, self.release = inner, asyncio.Event()

    async def put_many(self, rows: Any) -> None:
        await self.release.wait()
        await self.inner.put_many(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_disk_that_cannot_keep_up_sheds_writes_within_the_byte_bound(
    opened: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    body = answer("x", pad=2000)
    entry_bytes = len(body) + QUEUED_OVERHEAD
    backend = StuckWriter(await SQLiteCacheStore.open(opened.db_path))
    cache = ResponseCache(replace(CacheSettings(), max_write_queue_bytes=10 * entry_bytes), backend)  # type: ignore[arg-type]  # a test double
    await cache.start()
    for i in range(40):
        await miss_then_store(cache, context(request(f"q{i}")), body)
    stats = (await cache.stats())["disk"]
    assert stats["pending_bytes"] <= 10 * entry_bytes and cache.pending_bytes <= 10 * entry_bytes
    # at most the queue's worth, plus one batch already handed to the writer, is still to be written
    assert stats["shed_writes"] == cache.shed_writes >= 40 - 2 * 10
    assert cache.stores == 40  # every answer is still served from memory
    assert await cache.lookup(context(request("q39"))) is not None
    warnings = [r for r in caplog.records if "shed" in r.getMessage()]
    assert len(warnings) == 1  # said once, not once per write
    backend.release.set()
    await cache.stop()
    rows = sqlite3.connect(opened.db_path).execute("SELECT count(*) FROM cache_entries").fetchone()[0]
    assert 10 <= rows <= 20 and rows + cache.shed_writes == 40


def test_a_writer_journals_its_batches_in_memory_not_in_temporary_files(tmp_path: Path) -> None:
    # temp_store: 2 is MEMORY. With the default (a file), every batch of more than one INSERT made,
    # wrote and unlinked a temporary file for the statement journal.
    db = connect_writer(tmp_path / "writer.db")
    try:
        assert db.execute("PRAGMA temp_store").fetchone()[0] == 2
    finally:
        db.close()


def test_a_writer_binds_null_and_blob_values_without_an_adapter_search(tmp_path: Path) -> None:
    # Without adapters for None and bytes, the sqlite3 module searches for one on every such value
    # (on 3.11 formatting an AttributeError each time); with them the values still bind as NULL
    # and BLOB, unchanged.
    db = connect_writer(tmp_path / "writer.db")
    try:
        assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
        body = b"\x00 an answer \xff"
        assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)](body) is body
        db.execute("CREATE TABLE t (a, b)")
        db.execute("INSERT INTO t VALUES (?, ?)", (None, body))
        assert db.execute("SELECT typeof(a), typeof(b), b FROM t").fetchone() == ("null", "blob", body)
    finally:
        db.close()
