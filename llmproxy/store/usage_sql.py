"""The usage log on SQLite: its tables, and `SQLiteUsageStore`, which owns every query on them.

One narrow row per request; a daily roll-up kept by one upsert per batch in the same transaction
as the batch's insert; retention in batches; the aggregations the usage API, the dashboard's
overview and the budget check read. Budgets and whole-day reports read the roll-up (a few rows per
key and day), never the raw log. The class implements store.protocols.UsageStore.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..background import writer_thread
from .cache_sql import connect_writer, transaction
from .records import AutoRouted, UsageRow, Window
from .transactions import Transactions

T = TypeVar("T")

# Never edit a shipped migration; append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        user TEXT,
        requested_model TEXT,
        model TEXT,
        provider TEXT,
        strategy TEXT,
        complexity TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        cached_tokens INTEGER,
        reasoning_tokens INTEGER,
        cost_usd REAL,
        latency_ms REAL,
        ttft_ms REAL,
        overhead_ms REAL,
        cache TEXT,
        attempts INTEGER,
        status INTEGER,
        error_type TEXT
    );
    CREATE INDEX usage_ts ON usage (ts);
    CREATE INDEX usage_key_ts ON usage (key_id, ts);
    """,
    # 2: what a cache hit saved, cache writes (priced apart by Anthropic), and the daily roll-up.
    # Roll-up keys are '' rather than NULL so that the upsert's conflict target matches them.
    """
    ALTER TABLE usage ADD COLUMN saved_usd REAL;
    ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER;
    CREATE INDEX usage_user_ts ON usage (user, ts);
    CREATE TABLE usage_daily (
        day TEXT NOT NULL,
        key_id TEXT NOT NULL,
        user TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        cache_hits INTEGER NOT NULL,
        unpriced INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        saved_usd REAL NOT NULL,
        PRIMARY KEY (day, key_id, user, model, provider)
    ) WITHOUT ROWID;
    CREATE INDEX usage_daily_key ON usage_daily (key_id, day);
    CREATE INDEX usage_daily_user ON usage_daily (user, day);
    CREATE TRIGGER usage_rollup AFTER INSERT ON usage BEGIN
        INSERT INTO usage_daily VALUES (
            date(NEW.ts, 'unixepoch'), coalesce(NEW.key_id, ''), coalesce(NEW.user, ''),
            coalesce(NEW.model, ''), coalesce(NEW.provider, ''),
            1, NEW.status >= 400, coalesce(NEW.cache, '') = 'hit',
            NEW.cost_usd IS NULL AND NEW.status < 400 AND coalesce(NEW.cache, '') != 'hit',
            coalesce(NEW.prompt_tokens, 0), coalesce(NEW.completion_tokens, 0),
            coalesce(NEW.cached_tokens, 0), coalesce(NEW.reasoning_tokens, 0),
            coalesce(NEW.cost_usd, 0), coalesce(NEW.saved_usd, 0))
        ON CONFLICT (day, key_id, user, model, provider) DO UPDATE SET
            requests = requests + excluded.requests, errors = errors + excluded.errors,
            cache_hits = cache_hits + excluded.cache_hits, unpriced = unpriced + excluded.unpriced,
            prompt_tokens = prompt_tokens + excluded.prompt_tokens,
            completion_tokens = completion_tokens + excluded.completion_tokens,
            cached_tokens = cached_tokens + excluded.cached_tokens,
            reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
            cost_usd = cost_usd + excluded.cost_usd, saved_usd = saved_usd + excluded.saved_usd;
    END;
    INSERT INTO usage_daily
    SELECT date(ts, 'unixepoch'), coalesce(key_id, ''), coalesce(user, ''), coalesce(model, ''),
           coalesce(provider, ''), count(*), sum(status >= 400), sum(coalesce(cache, '') = 'hit'),
           sum(cost_usd IS NULL AND status < 400 AND coalesce(cache, '') != 'hit'),
           sum(coalesce(prompt_tokens, 0)), sum(coalesce(completion_tokens, 0)), sum(coalesce(cached_tokens, 0)),
           sum(coalesce(reasoning_tokens, 0)), sum(coalesce(cost_usd, 0)), 0
    FROM usage GROUP BY 1, 2, 3, 4, 5;
    """,
    # 3: the roll-up is kept per batch (one upsert per day/key/user/model/provider group) instead of
    # per row by a trigger: 8.3 instead of 9.4 us of CPU per row, on the gateway's own core.
    """
    DROP TRIGGER usage_rollup;
    """,
)

COLUMNS = UsageRow._fields
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
ROWS_PER_INSERT = 256  # a power of two; 23 values a row: under SQLite's limit of 32766 per statement
# The writer's INSERT for (the columns it names, the rows it takes). Only power-of-two row counts,
# and the columns vary only with what a kind of traffic leaves NULL: the connection's statement
# cache holds a handful of programs.
_INSERTS: dict[tuple[tuple[int, ...], int], str] = {}
_MAX_INSERTS = 256  # distinct statements kept (a bound, never reached by real traffic)
_LAST_ID = "SELECT coalesce(max(id), 0) FROM usage"
_DELETE_OLD = "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE ts < ? ORDER BY ts LIMIT ?)"

# The aggregation API: group names -> (raw log expression, roll-up column).
GROUPS: dict[str, tuple[str, str]] = {
    "day": ("date(ts, 'unixepoch')", "day"),
    "key": ("coalesce(key_id, '')", "key_id"),
    "user": ("coalesce(user, '')", "user"),
    "model": ("coalesce(model, '')", "model"),
    "provider": ("coalesce(provider, '')", "provider"),
}
OUTPUT_NAMES = {"day": "day", "key": "key_id", "user": "user", "model": "model", "provider": "provider"}
MEASURES = (
    "requests",
    "errors",
    "cache_hits",
    "unpriced",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "saved_usd",
)
_RAW_MEASURES = (
    "count(*)",
    "sum(status >= 400)",
    "sum(coalesce(cache, '') = 'hit')",
    "sum(cost_usd IS NULL AND status < 400 AND coalesce(cache, '') != 'hit')",
    "sum(coalesce(prompt_tokens, 0))",
    "sum(coalesce(completion_tokens, 0))",
    "sum(coalesce(cached_tokens, 0))",
    "sum(coalesce(reasoning_tokens, 0))",
    "sum(coalesce(cost_usd, 0))",
    "sum(coalesce(saved_usd, 0))",
)
DAY_S = 86_400

# The roll-up of a batch: the rows past an id, summed into usage_daily by group.
_ROLL_UP_SELECT = (
    "SELECT {day}, coalesce(key_id, ''), coalesce(user, ''), coalesce(model, ''), coalesce(provider, ''), "
    + ", ".join(_RAW_MEASURES)
    + " FROM usage WHERE id > ?"
)
_ROLL_UP_UPSERT = """
ON CONFLICT (day, key_id, user, model, provider) DO UPDATE SET
    requests = requests + excluded.requests, errors = errors + excluded.errors,
    cache_hits = cache_hits + excluded.cache_hits, unpriced = unpriced + excluded.unpriced,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens,
    reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
    cost_usd = cost_usd + excluded.cost_usd, saved_usd = saved_usd + excluded.saved_usd
"""
_ROLL_UP = (
    "INSERT INTO usage_daily "
    + _ROLL_UP_SELECT.format(day="date(ts, 'unixepoch')")
    + " GROUP BY 1, 2, 3, 4, 5"
    + _ROLL_UP_UPSERT
)
# A batch whose rows all fall in one group (one key, user, model and provider, within one UTC day:
# most batches) is summed without the GROUP BY, which first sorts every row into a temporary
# b-tree (500-row batches of the bench's rows, the writer's CPU per row: 2.53-2.57 -> 2.10-2.14 us).
_ROLL_UP_ONE_GROUP = (
    "INSERT INTO usage_daily " + _ROLL_UP_SELECT.format(day="date(max(ts), 'unixepoch')") + _ROLL_UP_UPSERT
)


# `+column` keeps the planner on the primary key's day range (a few days of the roll-up) instead
# of walking the whole roll-up in key order to save a sort.
SPEND_BY_KEY = (
    "SELECT key_id, sum(cost_usd) FROM usage_daily WHERE day >= date(?, 'unixepoch') AND +key_id != '' GROUP BY +key_id"
)


# The dashboard's overview: measures of the raw log per group, in this order.
_OVERVIEW_MEASURES = (
    "count(*)",
    "sum(status >= 400)",
    "sum(coalesce(cache, '') = 'hit')",
    "sum(coalesce(prompt_tokens, 0))",
    "sum(coalesce(completion_tokens, 0))",
    "sum(coalesce(cost_usd, 0))",
    "sum(coalesce(saved_usd, 0))",
)
_OVERVIEW_NAMES = (
    "requests",
    "errors",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "cache_saved_usd",
)
_SEP = "\x1f"  # joins model and provider in one SQL group key; never in a model id
_OVERVIEW_GROUPS = {
    "all": "'all'",
    "model": f"coalesce(model, '') || '{_SEP}' || coalesce(provider, '')",
    "provider": "coalesce(provider, '')",
}


class SQLiteUsageStore:
    """The usage log's queries over one connection. A store opened with `open` writes on a thread
    of its own over a plain sqlite3 connection, one call per batch (BEGIN, multi-row INSERTs, the
    roll-up, COMMIT), as the cache's disk tier does: aiosqlite's one hand-over per statement cost
    the event loop's core more than the insert itself. A store `over` a connection it does not
    own (the app's shared one: reads, tests) writes through that connection."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        writer: sqlite3.Connection | None = None,
        thread: ThreadPoolExecutor | None = None,
    ) -> None:
        self.db = db
        self._writer = writer
        self._thread = thread
        self._transactions = Transactions(db)

    @classmethod
    async def open(cls, path: Path) -> SQLiteUsageStore:
        """Connections of its own (a reader, and the writer on its thread) on a database whose
        migrations have run (SQLiteStore.open)."""
        db = await aiosqlite.connect(path, timeout=5.0)
        await db.execute("PRAGMA busy_timeout=5000")
        thread = writer_thread("llmproxy-usage-writer")
        writer = await asyncio.get_running_loop().run_in_executor(thread, connect_writer, path)
        return cls(db, writer, thread)

    @classmethod
    def over(cls, db: aiosqlite.Connection) -> SQLiteUsageStore:
        """On a connection that no usage store owns (the app's shared one): its reads."""
        return cls(db)

    async def close(self) -> None:
        await self.db.close()
        if self._writer is not None and self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
            self._thread.shutdown()

    async def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        """One batch (rows in COLUMNS order) and its roll-up, in one transaction, so the two never disagree."""
        if self._writer is not None:
            await self._write(_insert, rows)
            return
        async with self._transactions.write() as db:
            async with db.execute(_LAST_ID) as cur:
                (last,) = await cur.fetchone() or (0,)
            await db.executemany(_INSERT, rows)
            await db.execute(_ROLL_UP, (last,))

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        """Delete raw rows older than `cutoff_ts`, `batch` rows per transaction so that writers are
        never held up for long. The roll-up keeps the days it summarised."""
        total = 0
        while True:
            if self._writer is not None:
                deleted = await self._write(_delete, cutoff_ts, batch)
            else:
                async with self._transactions.write() as db:
                    cur = await db.execute(_DELETE_OLD, (cutoff_ts, batch))
                    deleted = cur.rowcount
                    await cur.close()
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(0)  # let the batch writer and the readers in between two deletes

    def _write(self, work: Callable[..., T], *args: Any) -> Awaitable[T]:
        if self._writer is None:
            raise RuntimeError("this usage store was made over a shared connection: it has no writer thread")
        return asyncio.get_running_loop().run_in_executor(self._thread, transaction, self._writer, work, *args)

    async def spend_by_key(self, since_ts: float) -> dict[str, float]:
        """USD spent per key from the start of the UTC day that holds `since_ts`, read from the roll-up.
        Rows still in the in-memory queue (a fraction of a second of traffic) are not counted yet."""
        async with self.db.execute(SPEND_BY_KEY, (since_ts,)) as cur:
            return {key: float(total) for key, total in await cur.fetchall()}

    async def aggregate(
        self,
        *,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        key_id: str | None = None,
        user: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Usage summed per group over [since, until) (unix seconds), optionally for one key or user.

        Ranges on whole UTC days read the roll-up; any other range reads the raw log through its time
        index. Returns the rows and which of the two answered ("rollup" or "log")."""
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown:
            raise ValueError(f"cannot group by {unknown[0]!r}; use {', '.join(GROUPS)}")
        rollup = whole_days(since, until)
        where: list[str] = []
        params: list[Any] = []
        if rollup:
            table = "usage_daily"
            if since is not None:
                where.append("day >= date(?, 'unixepoch')")
                params.append(since)
            if until is not None:
                where.append("day < date(?, 'unixepoch')")
                params.append(until)
            measures = [f"sum({m})" for m in MEASURES]
            column = {g: GROUPS[g][1] for g in group_by}
        else:
            table = "usage"
            if since is not None:
                where.append("ts >= ?")
                params.append(since)
            if until is not None:
                where.append("ts < ?")
                params.append(until)
            measures = list(_RAW_MEASURES)
            column = {g: GROUPS[g][0] for g in group_by}
        if key_id is not None:
            where.append("key_id = ?")
            params.append(key_id)
        if user is not None:
            where.append("user = ?")
            params.append(user)
        groups = [column[g] for g in group_by]
        sql = f"SELECT {', '.join([*groups, *measures])} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if groups:
            positions = ", ".join(str(i + 1) for i in range(len(groups)))
            sql += f" GROUP BY {positions} ORDER BY {positions}"
        async with self.db.execute(sql, params) as cur:
            raw = await cur.fetchall()
        out: list[dict[str, Any]] = []
        for values in raw:
            if values[len(groups)] in (None, 0):  # an empty range still yields one all-NULL row without groups
                continue
            row = {OUTPUT_NAMES[g]: values[i] for i, g in enumerate(group_by)}
            for j, name in enumerate(MEASURES):
                value = values[len(groups) + j] or 0
                row[name] = float(value) if name.endswith("_usd") else int(value)
            out.append(row)
        return out, ("rollup" if rollup else "log")

    async def overview(self, by: str, window: Window, *, bucket_s: int = 0) -> dict[Any, dict[str, Any]]:
        """_OVERVIEW_NAMES and p50/p99 latency (nearest rank) per group of the raw log: `by` is "all"
        (one group, "all"), "bucket" (the index of each `bucket_s`-second bucket), "model" (the pair
        (model, provider)) or "provider"."""
        if by == "bucket":
            group = f"CAST(ts / {int(bucket_s)} AS INTEGER)"
        elif by in _OVERVIEW_GROUPS:
            group = _OVERVIEW_GROUPS[by]
        else:
            raise ValueError(f"cannot group the overview by {by!r}")
        where, params = _where(window)
        out: dict[Any, dict[str, Any]] = {}
        sql = f"SELECT {group} AS g, {', '.join(_OVERVIEW_MEASURES)} FROM usage WHERE {where} GROUP BY g"
        async with self.db.execute(sql, params) as cur:
            for g, *values in await cur.fetchall():
                row: dict[str, Any] = {
                    name: (float(v or 0) if name.endswith("_usd") else int(v or 0))
                    for name, v in zip(_OVERVIEW_NAMES, values, strict=True)
                }
                row["p50_ms"] = row["p99_ms"] = None
                out[tuple(g.split(_SEP)) if by == "model" else g] = row
        # Window functions keep the sort in SQLite: only the two ranked rows per group come back.
        ranked = (
            f"SELECT g, rn, n, latency_ms FROM (SELECT {group} AS g, latency_ms, "
            f"row_number() OVER (PARTITION BY {group} ORDER BY latency_ms) AS rn, "
            f"count(*) OVER (PARTITION BY {group}) AS n FROM usage WHERE {where} AND latency_ms IS NOT NULL) "
            "WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 99 + 99) / 100"
        )
        async with self.db.execute(ranked, params) as cur:
            for g, rn, n, latency in await cur.fetchall():
                measured = out.get(tuple(g.split(_SEP)) if by == "model" else g)
                if measured is None:
                    continue
                if rn == (n * 50 + 99) // 100:
                    measured["p50_ms"] = round(float(latency), 3)
                if rn == (n * 99 + 99) // 100:
                    measured["p99_ms"] = round(float(latency), 3)
        return out

    async def auto_routed(self, window: Window, long_threshold: int | None) -> list[AutoRouted]:
        """The successful, non-cached, priced requests that `auto` routed (the log's strategy column
        is set only for those), summed on each side of `long_threshold` prompt tokens."""
        where, params = _where(window)
        sql = (
            "SELECT coalesce(prompt_tokens, 0) > ? AS long, count(*), sum(coalesce(prompt_tokens, 0)), "
            "sum(coalesce(cached_tokens, 0)), sum(coalesce(cache_write_tokens, 0)), "
            "sum(coalesce(completion_tokens, 0)), sum(cost_usd) FROM usage "
            f"WHERE {where} AND strategy IS NOT NULL AND status < 400 AND coalesce(cache, '') != 'hit' "
            "AND cost_usd IS NOT NULL GROUP BY long"
        )
        threshold = long_threshold if long_threshold is not None else 1 << 62
        async with self.db.execute(sql, [threshold, *params]) as cur:
            rows = await cur.fetchall()
        return [
            AutoRouted(bool(long), int(n), int(prompt), int(cached), int(writes), int(completion), float(cost or 0))
            for long, n, prompt, cached, writes, completion, cost in rows
        ]


def _where(window: Window) -> tuple[str, list[Any]]:
    sql = "ts >= ? AND ts < ?"
    params: list[Any] = [window.since, window.until]
    if window.key_id is not None:
        sql += " AND key_id = ?"
        params.append(window.key_id)
    if window.user is not None:
        sql += " AND user = ?"
        params.append(window.user)
    return sql, params


def _insert(db: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    (last,) = db.execute(_LAST_ID).fetchone()
    groups: set[tuple[Any, ...] | None] = set()
    start = 0
    while start < len(rows):
        size = min(ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
        # Turned into columns (in C): a column NULL in every row is left out of the INSERT, so it
        # takes its default, NULL, instead of a bound None per row (about half a usage row is NULL,
        # and the sqlite3 module adapts each None: 5.8 -> 4.9 us of the writer's CPU per row).
        columns = list(zip(*rows[start : start + size], strict=True))
        named = tuple(i for i, column in enumerate(columns) if column.count(None) != size)
        values = list(chain.from_iterable(zip(*(columns[i] for i in named), strict=True)))
        db.execute(_insert_sql(named, size), values)
        groups.add(_one_group(columns))
        start += size
    db.execute(_ROLL_UP_ONE_GROUP if len(groups) == 1 and None not in groups else _ROLL_UP, (last,))


_TS = COLUMNS.index("ts")
_GROUP_COLUMNS = tuple(COLUMNS.index(name) for name in ("key_id", "user", "model", "provider"))


def _one_group(columns: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """The roll-up group (UTC day, key, user, model, provider) that every row of these columns
    falls in, or None when they fall in several. In C-speed passes: a set per column, and the day
    of the earliest and of the latest time. (A NULL and an empty string, one group to the roll-up, count
    as two here: such a batch just takes the GROUP BY.)"""
    times = columns[_TS]
    day = sqlite_day(min(times))
    if sqlite_day(max(times)) != day:
        return None
    group: list[Any] = [day]
    for i in _GROUP_COLUMNS:
        values = set(columns[i])
        if len(values) != 1:
            return None
        group.append(values.pop())
    return tuple(group)


def sqlite_day(ts: float) -> int:
    """The day number SQLite's date(ts, 'unixepoch') names, computed as SQLite computes it: the
    time in milliseconds on the Julian day scale, rounded (so the last half millisecond before a
    UTC midnight is already the next day), from which the day starts at noon."""
    return (int(ts * 1000.0 + 210866760000000.0 + 0.5) + 43200000) // 86400000


def _insert_sql(named: tuple[int, ...], rows: int) -> str:
    sql = _INSERTS.get((named, rows))
    if sql is None:
        if len(_INSERTS) >= _MAX_INSERTS:
            _INSERTS.clear()
        row = "(" + ", ".join("?" for _ in named) + ")"
        sql = f"INSERT INTO usage ({', '.join(COLUMNS[i] for i in named)}) VALUES " + ", ".join([row] * rows)
        _INSERTS[(named, rows)] = sql
    return sql


def _delete(db: sqlite3.Connection, cutoff_ts: float, batch: int) -> int:
    return max(db.execute(_DELETE_OLD, (cutoff_ts, batch)).rowcount, 0)


def whole_days(since: float | None, until: float | None) -> bool:
    """A range the roll-up can answer exactly: open ends or UTC midnights."""
    return all(t is None or t % DAY_S == 0 for t in (since, until))


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sum of each measure over aggregated rows."""
    out: dict[str, Any] = {name: (0.0 if name.endswith("_usd") else 0) for name in MEASURES}
    for row in rows:
        for name in MEASURES:
            out[name] += row[name]
    return out
