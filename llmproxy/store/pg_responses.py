"""Stored Responses API answers on PostgreSQL: their table, and `PostgresResponsesStore`, which owns
every query on it (it implements store.protocols.ResponsesStore), so every gateway of a deployment
finds a response whichever of them answered it.

The twin of responses_sql.py: one row per stored response, the Response object and the conversation
it answered kept as the JSON bytes the gateway already has (a StoredResponse's fields, in its
order, are the row's). A batch goes in as one statement over arrays, in one transaction; a tenant's
row is found by its id, and a query for another tenant's id finds nothing. Retention deletes by
age, oldest first, in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .pg_sql import affected
from .records import StoredResponse

# Never edit a shipped migration; append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        model TEXT NOT NULL,
        response BYTEA NOT NULL,
        items BYTEA NOT NULL
    );
    CREATE INDEX responses_created ON responses (created);
    """,
)

# One statement per batch whatever its size: the columns as arrays, unnested into rows.
_PUT = """
INSERT INTO responses (id, tenant, created, model, response, items)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::bytea[], $6::bytea[])
ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, created = excluded.created, model = excluded.model,
    response = excluded.response, items = excluded.items
"""
_GET = "SELECT id, tenant, created, model, response, items FROM responses WHERE id = $1 AND tenant = $2"
_DELETE = "DELETE FROM responses WHERE id = $1 AND tenant = $2"
_DELETE_OLD = (
    "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE created < $1 ORDER BY created LIMIT $2)"
)


class PostgresResponsesStore:
    """The responses table over the shared pool (store.postgres.PostgresStore.pool)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def put_many(self, records: Sequence[StoredResponse]) -> None:
        """One batch, atomically; a record whose id exists replaces it (as does a later one of the
        same id in the batch: one statement may not touch a row twice)."""
        latest = list({record.id: record for record in records}.values())
        if not latest:
            return
        columns = [list(column) for column in zip(*latest, strict=True)]
        async with self.pool.acquire() as db:
            await db.execute(_PUT, *columns)

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        async with self.pool.acquire() as db:
            row = await db.fetchrow(_GET, response_id, tenant)
        if row is None:
            return None
        return StoredResponse(row[0], row[1], row[2], row[3], bytes(row[4]), bytes(row[5]))

    async def delete(self, tenant: str, response_id: str) -> bool:
        async with self.pool.acquire() as db:
            return affected(await db.execute(_DELETE, response_id, tenant)) > 0

    async def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:
        total = 0
        while True:
            async with self.pool.acquire() as db:
                deleted = affected(await db.execute(_DELETE_OLD, float(cutoff_ts), batch))
            total += deleted
            if deleted < batch:
                return total
