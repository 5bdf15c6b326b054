"""Identity tables on PostgreSQL: virtual keys and their secrets, users, encrypted provider
credentials, the audit log, and the change counter; `PostgresKeysStore` answers
store.protocols.KeysStore as keys_sql.KeysDB does for SQLite.

Every write is one transaction that first bumps `auth_state.generation` (taking that row's lock:
identity writes of every process take turns, as SQLite's BEGIN IMMEDIATE makes them, so a count
read inside one, such as an owner's live keys, cannot be overtaken), then makes its change and
appends its audit row. Other gateways see the change by polling the counter and, sooner, by the
NOTIFY on CHANGES_CHANNEL sent when the transaction commits. Key values are never stored, only
their sha256; provider keys only as ciphertext (the vault encrypts them before they get here).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson

from .keys_sql import KEY_FIELDS, _audit_fields, _key_record, _key_values
from .pg_sql import Params, affected
from .records import CredentialRow, KeyRecord, KeySecret, TooManyKeys, UserRecord

CHANGES_CHANNEL = "llmproxy_identity"

# Never edit a shipped migration; append a new one. Timestamps are unix seconds, as in SQLite.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE auth_state (id INTEGER PRIMARY KEY CHECK (id = 1), generation BIGINT NOT NULL,
                             vault_key_id TEXT, jwt_namespace TEXT);
    INSERT INTO auth_state (id, generation) VALUES (1, 0);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT false,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner TEXT,
        role TEXT NOT NULL DEFAULT 'user',
        models TEXT,
        rpm BIGINT,
        tpm BIGINT,
        budget_usd DOUBLE PRECISION,
        budget_period TEXT NOT NULL DEFAULT 'total',
        expires_at DOUBLE PRECISION,
        metadata TEXT NOT NULL DEFAULT '{}',
        strategy TEXT,
        parent_id TEXT,
        complexity TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE INDEX api_keys_owner ON api_keys (owner);
    CREATE TABLE key_secrets (
        hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys (id),
        prefix TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION
    );
    CREATE INDEX key_secrets_key ON key_secrets (key_id);
    CREATE TABLE provider_credentials (
        provider TEXT PRIMARY KEY,
        ciphertext BYTEA NOT NULL,
        vault_key_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        hint TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE audit_log (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
    );
    CREATE INDEX audit_ts ON audit_log (ts);
    """,
)

_AUDIT = "INSERT INTO audit_log (ts, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)"
_KEY_COLUMNS = f"id, {', '.join(KEY_FIELDS)}, created_at, updated_at, revoked_at"
_NUMERIC_FIELDS = {"rpm": int, "tpm": int, "budget_usd": float, "expires_at": float}


class PostgresKeysStore:
    """The identity tables over the shared pool (store.postgres.PostgresStore.pool)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @asynccontextmanager
    async def write(
        self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
    ) -> AsyncIterator[Any]:
        """One transaction: the generation bump (the turn), the caller's statements, the audit row,
        and a notification to the other gateways, delivered at commit."""
        async with self.pool.acquire() as db, db.transaction():
            await db.execute("UPDATE auth_state SET generation = generation + 1 WHERE id = 1")
            yield db
            await db.execute(
                _AUDIT, time.time(), actor, action, target, orjson.dumps(detail).decode() if detail else None
            )
            await db.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, action)

    async def audit(
        self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """An audit row with no other change (a login, a refused login)."""
        async with self.pool.acquire() as db:
            await db.execute(
                _AUDIT, time.time(), actor, action, target, orjson.dumps(detail).decode() if detail else None
            )

    async def generation(self) -> int:
        async with self.pool.acquire() as db:
            value = await db.fetchval("SELECT generation FROM auth_state WHERE id = 1")
        return int(value) if value is not None else 0

    # --- keys -----------------------------------------------------------------------------------

    async def keys(self) -> list[KeyRecord]:
        return await self._keys("")

    async def key(self, key_id: str) -> KeyRecord | None:
        found = await self._keys(" WHERE id = $1", key_id)
        return found[0] if found else None

    async def _keys(self, where: str, *args: Any) -> list[KeyRecord]:
        out: dict[str, KeyRecord] = {}
        async with self.pool.acquire() as db, db.transaction(isolation="repeatable_read", readonly=True):
            for row in await db.fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys{where} ORDER BY created_at", *args):
                out[row[0]] = _key_record(row)
            secrets = (
                "SELECT key_id, hash, prefix, created_at, expires_at FROM key_secrets"
                + (" WHERE key_id = $1" if args else "")
                + " ORDER BY created_at DESC"
            )
            for key_id, digest, prefix, created, expires in await db.fetch(secrets, *args):
                if key_id in out:
                    out[key_id].secrets.append(KeySecret(digest, prefix, created, expires))
        return list(out.values())

    async def insert_key(
        self,
        actor: str,
        key_id: str,
        digest: str,
        prefix: str,
        fields: dict[str, Any],
        *,
        max_per_owner: int | None = None,
    ) -> None:
        """TooManyKeys when the key has an owner who already holds `max_per_owner` live keys
        (counted inside the write's turn, so concurrent creations in any process cannot overshoot)."""
        now = time.time()
        values = _pg_values(fields)
        async with self.write(actor, "keys.create", key_id, _audit_fields(fields)) as db:
            owner = fields.get("owner")
            if max_per_owner is not None and owner is not None:
                held = await db.fetchval("SELECT count(*) FROM api_keys WHERE owner = $1 AND revoked_at IS NULL", owner)
                if held >= max_per_owner:
                    raise TooManyKeys(owner, max_per_owner)
            params = Params()
            placeholders = ", ".join(params.add(v) for v in (key_id, *values.values(), now, now))
            await db.execute(
                f"INSERT INTO api_keys (id, {', '.join(values)}, created_at, updated_at) VALUES ({placeholders})",
                *params.values,
            )
            await db.execute(
                "INSERT INTO key_secrets (hash, key_id, prefix, created_at) VALUES ($1, $2, $3, $4)",
                digest,
                key_id,
                prefix,
                now,
            )

    async def update_key(self, actor: str, key_id: str, fields: dict[str, Any]) -> bool:
        values = _pg_values(fields)
        async with self.write(actor, "keys.update", key_id, _audit_fields(fields)) as db:
            params = Params()
            sets = "".join(f"{name} = {params.add(value)}, " for name, value in values.items())
            status = await db.execute(
                f"UPDATE api_keys SET {sets}updated_at = {params.add(time.time())} WHERE id = {params.add(key_id)}",
                *params.values,
            )
            if affected(status) == 0:
                raise LookupError(key_id)
        return True

    async def revoke_key(self, actor: str, key_id: str) -> None:
        async with self.write(actor, "keys.revoke", key_id) as db:
            now = time.time()
            status = await db.execute(
                "UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE id = $2 AND revoked_at IS NULL", now, key_id
            )
            if affected(status) == 0:
                raise LookupError(key_id)

    async def rotate_key(self, actor: str, key_id: str, digest: str, prefix: str, grace_s: float) -> None:
        """The new secret works at once; the current ones stop after `grace_s` (earlier ends are kept)."""
        now = time.time()
        async with self.write(actor, "keys.rotate", key_id, {"grace_s": grace_s}) as db:
            row = await db.fetchrow("SELECT revoked_at FROM api_keys WHERE id = $1", key_id)
            if row is None or row[0] is not None:
                raise LookupError(key_id)
            ends = now + float(grace_s)
            await db.execute(
                "UPDATE key_secrets SET expires_at = $1 WHERE key_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                ends,
                key_id,
            )
            await db.execute("DELETE FROM key_secrets WHERE key_id = $1 AND expires_at < $2", key_id, now - 86400.0)
            await db.execute(
                "INSERT INTO key_secrets (hash, key_id, prefix, created_at) VALUES ($1, $2, $3, $4)",
                digest,
                key_id,
                prefix,
                now,
            )
            await db.execute("UPDATE api_keys SET updated_at = $1 WHERE id = $2", now, key_id)

    # --- users ----------------------------------------------------------------------------------

    async def users(self) -> list[UserRecord]:
        async with self.pool.acquire() as db:
            rows = await db.fetch(
                "SELECT name, password_hash, role, disabled, created_at, updated_at FROM users ORDER BY name"
            )
        return [UserRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    async def insert_user(self, actor: str, name: str, password_hash: str, role: str) -> None:
        if "#" in name:
            raise ValueError("a user name may not contain '#': it marks the identity provider's subjects")
        now = time.time()
        async with self.write(actor, "users.create", name, {"role": role}) as db:
            await db.execute(
                "INSERT INTO users (name, password_hash, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                name,
                password_hash,
                role,
                now,
            )

    async def update_user(
        self,
        actor: str,
        name: str,
        *,
        password_hash: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if role is not None:
            changes["role"] = role
        if disabled is not None:
            changes["disabled"] = bool(disabled)
        detail = {k: (int(v) if k == "disabled" else v) for k, v in changes.items() if k != "password_hash"}
        if password_hash is not None:
            detail["password"] = "changed"
        async with self.write(actor, "users.update", name, detail) as db:
            params = Params()
            sets = "".join(f"{k} = {params.add(v)}, " for k, v in changes.items())
            status = await db.execute(
                f"UPDATE users SET {sets}updated_at = {params.add(time.time())} WHERE name = {params.add(name)}",
                *params.values,
            )
            if affected(status) == 0:
                raise LookupError(name)

    async def delete_user(self, actor: str, name: str) -> int:
        """Delete a user and revoke the keys they own, in one transaction; returns how many keys were revoked."""
        detail: dict[str, Any] = {}
        async with self.write(actor, "users.delete", name, detail) as db:
            if affected(await db.execute("DELETE FROM users WHERE name = $1", name)) == 0:
                raise LookupError(name)
            now = time.time()
            status = await db.execute(
                "UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE owner = $2 AND revoked_at IS NULL",
                now,
                name,
            )
            revoked = detail["keys_revoked"] = affected(status)  # read by write() when it appends the audit row
        return revoked

    async def namespace_jwt_owners(self, namespace: str) -> int:
        """Once per database: keys JWT subjects made for themselves under their bare `sub` move to
        `<namespace>#<sub>` (as KeysDB.namespace_jwt_owners). Returns how many moved."""
        async with self.pool.acquire() as db:
            if await db.fetchval("SELECT jwt_namespace FROM auth_state WHERE id = 1") is not None:
                return 0
        detail: dict[str, Any] = {"namespace": namespace}
        async with self.write("system", "keys.namespace_jwt_owners", None, detail) as db:
            if await db.fetchval("SELECT jwt_namespace FROM auth_state WHERE id = 1") is not None:
                return 0  # another gateway did it first; its audit row stands, this one says 0
            status = await db.execute(
                "UPDATE api_keys SET owner = $1 || '#' || owner, updated_at = $2 WHERE owner IS NOT NULL "
                "AND strpos(owner, '#') = 0 AND EXISTS (SELECT 1 FROM audit_log WHERE action = 'keys.create' "
                "AND target = api_keys.id AND actor = 'jwt:' || api_keys.owner)",
                namespace,
                time.time(),
            )
            moved = detail["keys_moved"] = affected(status)
            await db.execute("UPDATE auth_state SET jwt_namespace = $1 WHERE id = 1", namespace)
        return moved

    # --- provider credentials -------------------------------------------------------------------

    async def credentials(self) -> list[CredentialRow]:
        async with self.pool.acquire() as db:
            rows = await db.fetch(
                "SELECT provider, ciphertext, vault_key_id, version, hint, created_at, updated_at "
                "FROM provider_credentials ORDER BY provider"
            )
        return [CredentialRow(r[0], bytes(r[1]), r[2], int(r[3]), r[4], r[5], r[6]) for r in rows]

    async def vault_key_id(self) -> str | None:
        async with self.pool.acquire() as db:
            value = await db.fetchval("SELECT vault_key_id FROM auth_state WHERE id = 1")
        return str(value) if value is not None else None

    async def put_credential(self, actor: str, provider: str, ciphertext: bytes, vault_key_id: str, hint: str) -> None:
        now = time.time()
        async with self.write(actor, "providers.set", provider, {"hint": hint}) as db:
            current = await db.fetchval("SELECT vault_key_id FROM auth_state WHERE id = 1")
            if current is None:
                await db.execute("UPDATE auth_state SET vault_key_id = $1 WHERE id = 1", vault_key_id)
            elif current != vault_key_id:
                raise PermissionError(current)  # a process holding another vault key must not mix it in
            # write() bumped the generation first: its value now is this change's, never repeated.
            await db.execute(
                "INSERT INTO provider_credentials (provider, ciphertext, vault_key_id, version, hint, created_at, updated_at) "
                "VALUES ($1, $2, $3, (SELECT generation FROM auth_state WHERE id = 1), $4, $5, $5) "
                "ON CONFLICT (provider) DO UPDATE SET ciphertext = excluded.ciphertext, "
                "vault_key_id = excluded.vault_key_id, version = excluded.version, hint = excluded.hint, "
                "updated_at = excluded.updated_at",
                provider,
                ciphertext,
                vault_key_id,
                hint,
                now,
            )

    async def delete_credential(self, actor: str, provider: str) -> None:
        async with self.write(actor, "providers.delete", provider) as db:
            if affected(await db.execute("DELETE FROM provider_credentials WHERE provider = $1", provider)) == 0:
                raise LookupError(provider)

    async def reencrypt(
        self, actor: str, old_key_id: str, new_key_id: str, rows: Iterable[tuple[str, bytes, int]]
    ) -> None:
        """Swap every ciphertext for its re-encryption in one transaction; a row whose version moved
        meanwhile aborts the whole rotation rather than losing it."""
        rows = list(rows)
        async with self.write(
            actor, "secrets.rotate", None, {"from_key": old_key_id, "to_key": new_key_id, "credentials": len(rows)}
        ) as db:
            if await db.fetchval("SELECT count(*) FROM provider_credentials") != len(rows):
                raise RuntimeError("the credentials changed during the rotation; run it again")
            for provider, ciphertext, version in rows:
                status = await db.execute(
                    "UPDATE provider_credentials SET ciphertext = $1, vault_key_id = $2 "
                    "WHERE provider = $3 AND version = $4 AND vault_key_id = $5",
                    ciphertext,
                    new_key_id,
                    provider,
                    version,
                    old_key_id,
                )
                if affected(status) != 1:
                    raise RuntimeError("the credentials changed during the rotation; run it again")
            await db.execute("UPDATE auth_state SET vault_key_id = $1 WHERE id = 1", new_key_id)

    # --- audit ----------------------------------------------------------------------------------

    async def audit_entries(
        self, *, limit: int = 100, since: float | None = None, actor: str | None = None
    ) -> list[dict[str, Any]]:
        params = Params()
        where: list[str] = []
        if since is not None:
            where.append(f"ts >= {params.add(float(since))}")
        if actor is not None:
            where.append(f"actor = {params.add(actor)}")
        sql = (
            "SELECT id, ts, actor, action, target, detail FROM audit_log"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY id DESC LIMIT {params.add(limit)}"
        )
        async with self.pool.acquire() as db:
            rows = await db.fetch(sql, *params.values)
        return [
            {
                "id": r[0],
                "ts": r[1],
                "actor": r[2],
                "action": r[3],
                "target": r[4],
                "detail": orjson.loads(r[5]) if r[5] else None,
            }
            for r in rows
        ]


def _pg_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The SQLite column values (JSON text for models and metadata), with numbers in the types the
    columns take (asyncpg's binary protocol does not convert a float to BIGINT as SQLite does)."""
    values = _key_values(fields)
    for name, cast in _NUMERIC_FIELDS.items():
        if values.get(name) is not None:
            values[name] = cast(values[name])
    return values
