"""The usage tables on a real SQLite file: the roll-up kept by the insert, the aggregations (roll-up
and raw log agree), retention in batches, spend by key, and the indexes the queries use."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llmproxy.store import usage_sql
from llmproxy.store.sqlite import SQLiteStore
from llmproxy.store.usage_sql import SQLiteUsageStore

DAY = 86_400
T0 = 1_780_000_000 // DAY * DAY  # a UTC midnight


def row(ts: float, **kw: Any) -> tuple[Any, ...]:
    values = {
        "ts": ts,
        "request_id": f"r{ts}",
        "key_id": "k1",
        "user": "alice",
        "requested_model": "gpt-4o",
        "model": "gpt-4o",
        "provider": "openai",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 2,
        "reasoning_tokens": 0,
        "cost_usd": 0.001,
        "latency_ms": 10.0,
        "overhead_ms": 0.2,
        "cache": "miss",
        "attempts": 1,
        "status": 200,
    }
    values.update(kw)
    return tuple(values.get(c) for c in usage_sql.COLUMNS)


def sample() -> list[tuple[Any, ...]]:
    rows = []
    for day in range(3):
        for i in range(10):
            ts = T0 + day * DAY + i * 600
            rows.append(
                row(
                    ts,
                    key_id="k1" if i % 2 else "k2",
                    user="alice" if i % 2 else "bob",
                    model="gpt-4o" if i < 7 else "claude-sonnet-4-5",
                    provider="openai" if i < 7 else "anthropic",
                    cost_usd=0.001 * (i + 1),
                    prompt_tokens=100 + i,
                )
            )
        rows.append(
            row(
                T0 + day * DAY + 7000,
                status=502,
                cost_usd=None,
                prompt_tokens=None,
                completion_tokens=None,
                cached_tokens=None,
                error_type="upstream_error",
            )
        )
        rows.append(row(T0 + day * DAY + 7100, cache="hit", cost_usd=0.0, saved_usd=0.004))
        rows.append(row(T0 + day * DAY + 7200, model="ollama/llama3.3", provider="ollama", cost_usd=None))
    return rows


async def open_store(tmp_path: Path) -> SQLiteStore:
    return await SQLiteStore.open(tmp_path / "llmproxy.db")


def usage(store: SQLiteStore) -> SQLiteUsageStore:
    return SQLiteUsageStore.over(store.db)


async def rows_in_log(store: SQLiteStore) -> int:
    async with store.db.execute("SELECT count(*) FROM usage") as cur:
        (n,) = await cur.fetchone()
    return int(n)


async def test_rollup_is_kept_with_each_batch_and_matches_the_log(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        rows = sample()
        await usage(store).insert(rows[:17])
        await usage(store).insert(rows[17:])
        for groups in ((), ("day",), ("day", "key", "model", "provider"), ("user",), ("model",)):
            from_rollup, source = await usage(store).aggregate(group_by=groups, since=T0, until=T0 + 3 * DAY)
            assert source == "rollup"
            from_log, source = await usage(store).aggregate(group_by=groups, since=T0, until=T0 + 3 * DAY - 0.5)
            assert source == "log"
            assert rounded(from_rollup) == rounded(from_log)
        (total,), _ = await usage(store).aggregate(group_by=())
        assert total["requests"] == len(rows) == 39
        assert total["errors"] == 3 and total["cache_hits"] == 3 and total["unpriced"] == 3
        assert total["cost_usd"] == pytest.approx(3 * sum(0.001 * (i + 1) for i in range(10)))
        assert total["saved_usd"] == pytest.approx(3 * 0.004)
        assert total["prompt_tokens"] == 3 * sum(100 + i for i in range(10)) + 3 * 10 + 3 * 10
    finally:
        await store.close()


async def test_time_filters_key_and_user(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        await usage(store).insert(sample())
        by_day, _ = await usage(store).aggregate(group_by=("day",), since=T0 + DAY, until=T0 + 2 * DAY)
        assert [r["day"] for r in by_day] == [_day(T0 + DAY)] and by_day[0]["requests"] == 13
        # a range inside a day reads the log: the first hour of day 0 holds requests 0..5
        hour, source = await usage(store).aggregate(group_by=(), since=T0, until=T0 + 3600)
        assert source == "log" and hour[0]["requests"] == 6
        k2, _ = await usage(store).aggregate(group_by=("key",), key_id="k2")
        assert [r["key_id"] for r in k2] == ["k2"] and k2[0]["requests"] == 15
        bob, _ = await usage(store).aggregate(group_by=("user", "key"), user="bob")
        assert [(r["user"], r["key_id"]) for r in bob] == [("bob", "k2")]
        nothing, _ = await usage(store).aggregate(group_by=(), since=T0 + 10 * DAY)
        assert nothing == []
        with pytest.raises(ValueError):
            await usage(store).aggregate(group_by=("prompt",))
    finally:
        await store.close()


async def test_spend_by_key_reads_the_rollup_from_the_day_of_since(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        await usage(store).insert(sample())
        # k1 has the odd requests (0.002 + 0.004 + ... + 0.010) and the error, hit and unpriced rows (0 each)
        per_day_k1 = sum(0.001 * (i + 1) for i in range(10) if i % 2)
        spend = await usage(store).spend_by_key(T0 + DAY + 5000)  # mid-day: counts that whole day
        assert spend == pytest.approx(
            {"k1": 2 * per_day_k1, "k2": 2 * sum(0.001 * (i + 1) for i in range(10) if not i % 2)}
        )
    finally:
        await store.close()


async def test_retention_deletes_old_rows_in_batches_and_keeps_the_rollup(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        old = [row(T0 + i) for i in range(1200)]
        new = [row(T0 + 5 * DAY + i) for i in range(30)]
        await usage(store).insert(old + new)
        before, _ = await usage(store).aggregate(group_by=("day",))
        deleted = await usage(store).delete_before(T0 + 2 * DAY, batch=500)
        assert deleted == 1200
        assert await rows_in_log(store) == 30
        after, _ = await usage(store).aggregate(group_by=("day",))
        assert after == before  # spend history outlives the raw rows
    finally:
        await store.close()


async def test_migration_2_backfills_the_rollup_from_a_first_version_database(tmp_path: Path) -> None:
    path = tmp_path / "llmproxy.db"
    db = sqlite3.connect(path)
    db.executescript(usage_sql.MIGRATIONS[0])
    db.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_versions VALUES ('usage', 1)")
    v1 = usage_sql.COLUMNS[:21]
    for i in range(5):
        db.execute(
            f"INSERT INTO usage ({', '.join(v1)}) VALUES ({', '.join('?' for _ in v1)})", row(T0 + i, cost_usd=0.5)[:21]
        )
    db.commit()
    db.close()
    store = await SQLiteStore.open(path)
    try:
        assert await usage(store).spend_by_key(T0) == {"k1": pytest.approx(2.5)}
        await usage(store).insert([row(T0 + 10, cost_usd=0.5, saved_usd=0.1)])
        assert await usage(store).spend_by_key(T0) == {"k1": pytest.approx(3.0)}
    finally:
        await store.close()


async def test_queries_use_their_indexes_not_a_scan_of_the_log(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:

        async def plan(sql: str, *params: Any) -> str:
            async with store.db.execute("EXPLAIN QUERY PLAN " + sql, params) as cur:
                return " | ".join(r[-1] for r in await cur.fetchall())

        # the budget check: a day range of the roll-up
        assert (await plan(usage_sql.SPEND_BY_KEY, T0)).startswith("SEARCH usage_daily USING PRIMARY KEY (day>?)")
        by_key = await plan("SELECT count(*) FROM usage WHERE key_id = ? AND ts >= ?", "k1", T0)
        assert "usage_key_ts" in by_key
        in_range = await plan("SELECT count(*) FROM usage WHERE ts >= ? AND ts < ?", T0, T0 + 60)
        assert "usage_ts" in in_range
        retention = await plan("SELECT id FROM usage WHERE ts < ? ORDER BY ts LIMIT 10", T0)
        assert "usage_ts" in retention
    finally:
        await store.close()


def rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def _day(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(ts))


async def test_a_write_that_met_a_lock_does_not_poison_the_next_ones(tmp_path: Path) -> None:
    """A usage batch that fails on a locked database (another writer held it past the busy
    timeout) must leave no transaction behind: once the lock is gone, the retry succeeds."""
    store = await SQLiteStore.open(tmp_path / "llmproxy.db")
    other = sqlite3.connect(tmp_path / "llmproxy.db", isolation_level=None)
    try:
        await store.db.execute("PRAGMA busy_timeout=50")
        await usage(store).insert([row(T0)])
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO usage (ts, request_id, status) VALUES (?, 'other', 200)", (T0 + 1,))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await usage(store).insert([row(T0 + 2)])
        # left inside a transaction, the connection would keep a stale snapshot and fail every
        # later write at once (SQLITE_BUSY_SNAPSHOT) whenever another connection commits first
        assert not store.db.in_transaction
        other.execute("COMMIT")
        await usage(store).insert([row(T0 + 3)])
        assert await rows_in_log(store) == 3
        # the roll-up counted each batch once, the one that failed not at all
        (total,) = other.execute("SELECT sum(requests) FROM usage_daily").fetchone()
        assert total == 2
    finally:
        other.close()
        await store.close()


async def test_the_writer_thread_takes_batches_and_retention_in_turn(tmp_path: Path) -> None:
    """The usage store of its own writes on one thread: a batch insert and a retention pass at the
    same time never start a second transaction inside the first; batches of any size (multi-row
    INSERTs in power-of-two pieces) all land, rolled up once."""
    store = await open_store(tmp_path)
    own = await SQLiteUsageStore.open(tmp_path / "llmproxy.db")
    try:
        await own.insert([row(T0 + i) for i in range(600)])
        results = await asyncio.gather(
            own.insert([row(T0 + 5 * DAY + i) for i in range(50)]),
            own.delete_before(T0 + DAY, batch=100),
            own.insert([row(T0 + 5 * DAY + 100 + i) for i in range(57)]),
        )
        assert results[1] == 600
        assert await rows_in_log(store) == 107
        async with store.db.execute("SELECT sum(requests) FROM usage_daily") as cur:
            assert (await cur.fetchone())[0] == 707
    finally:
        await own.close()
        await store.close()


async def test_a_writer_thread_batch_that_met_a_lock_does_not_poison_the_next_ones(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    own = await SQLiteUsageStore.open(tmp_path / "llmproxy.db")
    other = sqlite3.connect(tmp_path / "llmproxy.db", isolation_level=None)
    try:
        own._writer.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await own.insert([row(T0)])
        assert not own._writer.in_transaction  # type: ignore[union-attr]
        other.execute("COMMIT")
        await own.insert([row(T0 + 1), row(T0 + 2)])
        assert await rows_in_log(store) == 2
    finally:
        other.close()
        await own.close()
        await store.close()


async def test_a_usage_store_on_a_connection_of_its_own(tmp_path: Path) -> None:
    store = await open_store(tmp_path)  # runs the migrations
    own = await SQLiteUsageStore.open(tmp_path / "llmproxy.db")
    try:
        await own.insert([row(T0, cost_usd=0.25), row(T0 + 1, cost_usd=0.5, key_id="k2")])
        assert await own.spend_by_key(T0) == {"k1": pytest.approx(0.25), "k2": pytest.approx(0.5)}
        assert await rows_in_log(store) == 2  # committed: the other connection sees the rows
    finally:
        await own.close()
        await store.close()


async def test_the_writer_thread_stores_every_row_as_given_whatever_its_nulls(tmp_path: Path) -> None:
    """A column NULL in every row of a piece is left out of its INSERT: rows with such columns, rows
    where the same column is NULL only sometimes, and pieces of different sizes (256 + 64 + 1 rows)
    all come back exactly as given, each column with its own value."""
    store = await open_store(tmp_path)
    own = await SQLiteUsageStore.open(tmp_path / "llmproxy.db")
    given = [
        row(T0 + i, key_id=None if i % 3 else f"k{i}", ttft_ms=None if i < 300 else 1.5 + i, error_type=None)
        for i in range(321)
    ]
    try:
        await own.insert(given)
        async with store.db.execute(f"SELECT {', '.join(usage_sql.COLUMNS)} FROM usage ORDER BY id") as cur:
            stored = [tuple(r) for r in await cur.fetchall()]
        assert stored == given
    finally:
        await own.close()
        await store.close()


async def test_each_batch_rolls_up_as_the_grouped_query_would_whatever_its_groups(tmp_path: Path) -> None:
    """The writer sums a batch whose rows all fall in one group without a GROUP BY: batches of one
    group, of two keys, across a UTC midnight (the last half millisecond before it is the next day
    to SQLite's date()), and with a NULL key beside an empty one all roll up as the grouped query
    does over the whole log."""
    store = await open_store(tmp_path)
    own = await SQLiteUsageStore.open(tmp_path / "llmproxy.db")
    midnight = T0 + DAY
    batches = [
        [row(T0 + i, cost_usd=0.001 * i) for i in range(300)],  # one group, in two INSERT pieces
        [row(T0 + 10 + i, key_id="k1" if i % 2 else "k2") for i in range(20)],
        [row(midnight - 0.0004), row(midnight - 0.0006), row(midnight + 1)],
        [row(midnight - 0.0006), row(midnight - 0.0004)],  # two days to SQLite
        [row(midnight - 0.0004), row(midnight - 0.0003)],  # both already the next day
        [row(T0 + 40, user="bob"), row(T0 + 41)],
        [row(T0 + 20, key_id=None), row(T0 + 21, key_id="")],
        [row(T0 + 30, status=502, cost_usd=None, cache="hit", saved_usd=0.5)],
    ]
    try:
        for batch in batches:
            await own.insert(batch)
        grouped = (
            usage_sql._ROLL_UP_SELECT.format(day="date(ts, 'unixepoch')")
            + " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
        )
        async with store.db.execute(grouped, (0,)) as cur:
            expected = [tuple(r) for r in await cur.fetchall()]
        async with store.db.execute("SELECT * FROM usage_daily ORDER BY 1, 2, 3, 4, 5") as cur:
            rolled = [tuple(r) for r in await cur.fetchall()]
        assert [tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rolled] == [
            tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in expected
        ]
        assert sum(r[5] for r in rolled) == sum(map(len, batches))
    finally:
        await own.close()
        await store.close()


def test_a_batch_is_one_group_only_when_every_row_shares_its_day_key_user_model_and_provider() -> None:
    def group(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
        return usage_sql._one_group(list(zip(*rows, strict=True)))

    day = usage_sql.sqlite_day(T0)
    assert group([row(T0), row(T0 + DAY - 1)]) == (day, "k1", "alice", "gpt-4o", "openai")
    assert group([row(T0), row(T0 + DAY)]) is None
    assert group([row(T0 + DAY - 0.0004), row(T0 + DAY)]) == (day + 1, "k1", "alice", "gpt-4o", "openai")
    for field, other in (("key_id", "k2"), ("user", None), ("model", "o3"), ("provider", "azure")):
        assert group([row(T0), row(T0 + 1, **{field: other})]) is None
