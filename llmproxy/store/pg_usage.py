"""The usage log on PostgreSQL: its tables, and `PostgresUsageStore`, which owns every query on them.

The same rows, roll-up and reports as usage_sql.py (the SQLite twin), answering the same
store.protocols.UsageStore. A batch goes in with one COPY into a per-connection temporary table,
from which one statement appends it to the log and one upsert adds it to the daily roll-up, in one
transaction: batches of several gateways never interleave inside the roll-up's arithmetic, and the
roll-up never disagrees with the log. Upserts take their row locks in one order (ORDER BY), so
two processes writing the same days never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from .pg_sql import Params, affected
from .records import AutoRouted, Window
from .usage_sql import _OVERVIEW_NAMES, _SEP, COLUMNS, GROUPS, MEASURES, OUTPUT_NAMES, whole_days

# Never edit a shipped migration; append a new one. "user" is a reserved word here: always quoted.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE usage (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        "user" TEXT,
        requested_model TEXT,
        model TEXT,
        provider TEXT,
        strategy TEXT,
        complexity TEXT,
        prompt_tokens BIGINT,
        completion_tokens BIGINT,
        cached_tokens BIGINT,
        reasoning_tokens BIGINT,
        cost_usd DOUBLE PRECISION,
        latency_ms DOUBLE PRECISION,
        ttft_ms DOUBLE PRECISION,
        overhead_ms DOUBLE PRECISION,
        cache TEXT,
        attempts INTEGER,
        status INTEGER,
        error_type TEXT,
        saved_usd DOUBLE PRECISION,
        cache_write_tokens BIGINT
    );
    CREATE INDEX usage_ts ON usage (ts);
    CREATE INDEX usage_key_ts ON usage (key_id, ts);
    CREATE INDEX usage_user_ts ON usage ("user", ts);
    CREATE TABLE usage_daily (
        day TEXT NOT NULL,
        key_id TEXT NOT NULL,
        "user" TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        cache_hits BIGINT NOT NULL,
        unpriced BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        reasoning_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        saved_usd DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (day, key_id, "user", model, provider)
    );
    CREATE INDEX usage_daily_key ON usage_daily (key_id, day);
    CREATE INDEX usage_daily_user ON usage_daily ("user", day);
    """,
)

# Column types in COLUMNS order: the staging table's, and what a stray value is coerced to.
_TYPES = (
    "DOUBLE PRECISION",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "BIGINT",
    "BIGINT",
    "BIGINT",
    "BIGINT",
    "DOUBLE PRECISION",
    "DOUBLE PRECISION",
    "DOUBLE PRECISION",
    "DOUBLE PRECISION",
    "TEXT",
    "INTEGER",
    "INTEGER",
    "TEXT",
    "DOUBLE PRECISION",
    "BIGINT",
)
_CASTS = {"DOUBLE PRECISION": float, "TEXT": str, "BIGINT": int, "INTEGER": int}
_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)
STAGING = "usage_batch"
_STAGING_TABLE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} ("
    + ", ".join(f'"{c}" {t}' for c, t in zip(COLUMNS, _TYPES, strict=True))
    + ") ON COMMIT DELETE ROWS"
)
_APPEND = f"INSERT INTO usage ({_QUOTED}) SELECT {_QUOTED} FROM {STAGING}"

_DAY = "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _day_of(param: str) -> str:
    return f"to_char(to_timestamp({param}::double precision) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


_RAW_MEASURES = (
    "count(*)",
    "sum((status >= 400)::int)",
    "sum((coalesce(cache, '') = 'hit')::int)",
    "sum((cost_usd IS NULL AND status < 400 AND coalesce(cache, '') != 'hit')::int)",
    "sum(coalesce(prompt_tokens, 0))",
    "sum(coalesce(completion_tokens, 0))",
    "sum(coalesce(cached_tokens, 0))",
    "sum(coalesce(reasoning_tokens, 0))",
    "sum(coalesce(cost_usd, 0))",
    "sum(coalesce(saved_usd, 0))",
)
_ROLL_UP = f"""
INSERT INTO usage_daily AS d
SELECT {_DAY}, coalesce(key_id, ''), coalesce("user", ''), coalesce(model, ''), coalesce(provider, ''),
       {", ".join(_RAW_MEASURES)}
FROM {STAGING} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (day, key_id, "user", model, provider) DO UPDATE SET
    requests = d.requests + excluded.requests, errors = d.errors + excluded.errors,
    cache_hits = d.cache_hits + excluded.cache_hits, unpriced = d.unpriced + excluded.unpriced,
    prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = d.completion_tokens + excluded.completion_tokens,
    cached_tokens = d.cached_tokens + excluded.cached_tokens,
    reasoning_tokens = d.reasoning_tokens + excluded.reasoning_tokens,
    cost_usd = d.cost_usd + excluded.cost_usd, saved_usd = d.saved_usd + excluded.saved_usd
"""
SPEND_BY_KEY = (
    f"SELECT key_id, sum(cost_usd) FROM usage_daily WHERE day >= {_day_of('$1')} AND key_id != '' GROUP BY key_id"
)
_DELETE_OLD = "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE ts < $1 ORDER BY ts LIMIT $2)"

# The aggregation API: group names -> (raw log expression, roll-up column), as usage_sql.GROUPS.
_GROUPS: dict[str, tuple[str, str]] = {
    "day": (_DAY, "day"),
    "key": ("coalesce(key_id, '')", "key_id"),
    "user": ("coalesce(\"user\", '')", '"user"'),
    "model": ("coalesce(model, '')", "model"),
    "provider": ("coalesce(provider, '')", "provider"),
}
assert _GROUPS.keys() == GROUPS.keys()

_OVERVIEW_MEASURES = (
    "count(*)",
    "sum((status >= 400)::int)",
    "sum((coalesce(cache, '') = 'hit')::int)",
    "sum(coalesce(prompt_tokens, 0))",
    "sum(coalesce(completion_tokens, 0))",
    "sum(coalesce(cost_usd, 0))",
    "sum(coalesce(saved_usd, 0))",
)
_OVERVIEW_GROUPS = {
    "all": "'all'",
    "model": "coalesce(model, '') || chr(31) || coalesce(provider, '')",  # chr(31): _SEP
    "provider": "coalesce(provider, '')",
}


async def prepare_connection(db: Any) -> None:
    """Run on every new pooled connection: the staging table a batch is copied into."""
    await db.execute(_STAGING_TABLE)


class PostgresUsageStore:
    """The usage log's queries over the shared pool (store.postgres.PostgresStore.pool)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        """One batch (rows in COLUMNS order) and its roll-up, in one transaction, so the two never disagree."""
        try:
            await self._insert(rows)
        except (TypeError, ValueError, OverflowError, asyncpg.DataError):
            # A value of the wrong type (binary COPY is strict, SQLite is not): coerce the batch
            # rather than keep a batch that can never be written at the head of the queue.
            await self._insert([_coerced(r) for r in rows])

    async def _insert(self, rows: Sequence[Sequence[Any]]) -> None:
        async with self.pool.acquire() as db, db.transaction():
            # As plain tuples: asyncpg reads a record's values by index from C, and a tuple subclass
            # (a UsageRow) answers that through a Python-level __getitem__ (CPython's slot_sq_item):
            # 17,000 instructions per row on the event loop, against a few hundred for the copy.
            await db.copy_records_to_table(STAGING, records=map(tuple, rows), columns=COLUMNS)
            await db.execute(_APPEND)
            await db.execute(_ROLL_UP)

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        """Delete raw rows older than `cutoff_ts`, `batch` rows per transaction; the roll-up stays."""
        total = 0
        while True:
            async with self.pool.acquire() as db:
                deleted = affected(await db.execute(_DELETE_OLD, float(cutoff_ts), batch))
            total += deleted
            if deleted < batch:
                return total

    async def spend_by_key(self, since_ts: float) -> dict[str, float]:
        """USD spent per key from the start of the UTC day that holds `since_ts`, read from the roll-up."""
        async with self.pool.acquire() as db:
            return {key: float(total) for key, total in await db.fetch(SPEND_BY_KEY, float(since_ts))}

    async def aggregate(
        self,
        *,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        key_id: str | None = None,
        user: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Usage summed per group over [since, until); whole UTC days read the roll-up, other ranges the log."""
        unknown = [g for g in group_by if g not in _GROUPS]
        if unknown:
            raise ValueError(f"cannot group by {unknown[0]!r}; use {', '.join(_GROUPS)}")
        rollup = whole_days(since, until)
        params = Params()
        where: list[str] = []
        if rollup:
            table = "usage_daily"
            if since is not None:
                where.append(f"day >= {_day_of(params.add(float(since)))}")
            if until is not None:
                where.append(f"day < {_day_of(params.add(float(until)))}")
            measures = [f"sum({m})" for m in MEASURES]
            column = {g: _GROUPS[g][1] for g in group_by}
        else:
            table = "usage"
            if since is not None:
                where.append(f"ts >= {params.add(float(since))}")
            if until is not None:
                where.append(f"ts < {params.add(float(until))}")
            measures = list(_RAW_MEASURES)
            column = {g: _GROUPS[g][0] for g in group_by}
        if key_id is not None:
            where.append(f"key_id = {params.add(key_id)}")
        if user is not None:
            where.append(f'"user" = {params.add(user)}')
        groups = [column[g] for g in group_by]
        sql = f"SELECT {', '.join([*groups, *measures])} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if groups:
            positions = ", ".join(str(i + 1) for i in range(len(groups)))
            sql += f" GROUP BY {positions} ORDER BY {positions}"
        async with self.pool.acquire() as db:
            raw = await db.fetch(sql, *params.values)
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
        """The dashboard's measures and p50/p99 latency (nearest rank) per group of the raw log, as
        SQLiteUsageStore.overview."""
        if by == "bucket":
            group = f"floor(ts / {int(bucket_s)})::bigint"
        elif by in _OVERVIEW_GROUPS:
            group = _OVERVIEW_GROUPS[by]
        else:
            raise ValueError(f"cannot group the overview by {by!r}")
        params = Params()
        where = _where(window, params)
        out: dict[Any, dict[str, Any]] = {}
        sql = f"SELECT {group} AS g, {', '.join(_OVERVIEW_MEASURES)} FROM usage WHERE {where} GROUP BY 1"
        ranked = (
            f"SELECT g, rn, n, latency_ms FROM (SELECT {group} AS g, latency_ms, "
            f"row_number() OVER (PARTITION BY {group} ORDER BY latency_ms) AS rn, "
            f"count(*) OVER (PARTITION BY {group}) AS n FROM usage WHERE {where} AND latency_ms IS NOT NULL) r "
            "WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 99 + 99) / 100"
        )
        async with self.pool.acquire() as db:
            for g, *values in await db.fetch(sql, *params.values):
                row: dict[str, Any] = {
                    name: (float(v or 0) if name.endswith("_usd") else int(v or 0))
                    for name, v in zip(_OVERVIEW_NAMES, values, strict=True)
                }
                row["p50_ms"] = row["p99_ms"] = None
                out[tuple(g.split(_SEP)) if by == "model" else g] = row
            for g, rn, n, latency in await db.fetch(ranked, *params.values):
                measured = out.get(tuple(g.split(_SEP)) if by == "model" else g)
                if measured is None:
                    continue
                if rn == (n * 50 + 99) // 100:
                    measured["p50_ms"] = round(float(latency), 3)
                if rn == (n * 99 + 99) // 100:
                    measured["p99_ms"] = round(float(latency), 3)
        return out

    async def auto_routed(self, window: Window, long_threshold: int | None) -> list[AutoRouted]:
        """The successful, non-cached, priced requests that `auto` routed, on each side of `long_threshold`."""
        params = Params()
        threshold = params.add(long_threshold if long_threshold is not None else 1 << 62)
        where = _where(window, params)
        sql = (
            f"SELECT coalesce(prompt_tokens, 0) > {threshold}::bigint AS is_long, count(*), "
            "sum(coalesce(prompt_tokens, 0)), sum(coalesce(cached_tokens, 0)), sum(coalesce(cache_write_tokens, 0)), "
            "sum(coalesce(completion_tokens, 0)), sum(cost_usd) FROM usage "
            f"WHERE {where} AND strategy IS NOT NULL AND status < 400 AND coalesce(cache, '') != 'hit' "
            "AND cost_usd IS NOT NULL GROUP BY 1"
        )
        async with self.pool.acquire() as db:
            rows = await db.fetch(sql, *params.values)
        return [
            AutoRouted(bool(long), int(n), int(prompt), int(cached), int(writes), int(completion), float(cost or 0))
            for long, n, prompt, cached, writes, completion, cost in rows
        ]


def _where(window: Window, params: Params) -> str:
    sql = f"ts >= {params.add(float(window.since))} AND ts < {params.add(float(window.until))}"
    if window.key_id is not None:
        sql += f" AND key_id = {params.add(window.key_id)}"
    if window.user is not None:
        sql += f' AND "user" = {params.add(window.user)}'
    return sql


def _coerced(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row with every value cast to its column's type; a value that cannot be becomes NULL."""
    out: list[Any] = []
    for value, kind in zip(row, _TYPES, strict=True):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(_CASTS[kind](value))
        except (TypeError, ValueError, OverflowError):
            out.append(None)
    return tuple(out)
