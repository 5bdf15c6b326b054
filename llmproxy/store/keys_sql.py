"""Identity tables (SQLite): virtual keys and their secrets, users, encrypted provider credentials,
the audit log, and a change counter.

Every write runs in one BEGIN IMMEDIATE transaction that also appends its audit row and bumps
`auth_state.generation`, so a gateway in another process (the CLI writes the file directly) sees
a change by polling one integer. Key values are never stored, only their sha256; provider keys
only as ciphertext (the vault encrypts them before they get here).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import orjson

from .records import CredentialRow, KeyRecord, KeySecret, TooManyKeys, UserRecord
from .transactions import Transactions

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE auth_state (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL,
                             vault_key_id TEXT);
    INSERT INTO auth_state (id, generation) VALUES (1, 0);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner TEXT,
        role TEXT NOT NULL DEFAULT 'user',
        models TEXT,
        rpm INTEGER,
        tpm INTEGER,
        budget_usd REAL,
        budget_period TEXT NOT NULL DEFAULT 'total',
        expires_at REAL,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE key_secrets (
        hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys (id),
        prefix TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL
    );
    CREATE INDEX key_secrets_key ON key_secrets (key_id);
    CREATE TABLE provider_credentials (
        provider TEXT PRIMARY KEY,
        ciphertext BLOB NOT NULL,
        vault_key_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        hint TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
    );
    CREATE INDEX audit_ts ON audit_log (ts);
    """,
    # 2: a key's own routing strategy for "auto" requests (NULL: the gateway's default).
    """
    ALTER TABLE api_keys ADD COLUMN strategy TEXT;
    """,
    # 3: identity hardening. parent_id: the key a key was made by (its spend counts against the
    # parent's budget too), filled in for the keys user keys made before, from the audit log.
    # auth_state.jwt_namespace: set once the keys JWT subjects made for themselves have moved to
    # their `<issuer>#<sub>` names (done at startup, where the issuer is known).
    """
    ALTER TABLE api_keys ADD COLUMN parent_id TEXT;
    ALTER TABLE auth_state ADD COLUMN jwt_namespace TEXT;
    CREATE INDEX api_keys_owner ON api_keys (owner);
    UPDATE api_keys SET parent_id = made.parent FROM (
        SELECT target AS child, substr(actor, 5, instr(actor || ' ', ' ') - 5) AS parent FROM audit_log
        WHERE action = 'keys.create' AND actor LIKE 'key:%') AS made
    WHERE api_keys.id = made.child AND made.parent IN (SELECT id FROM api_keys WHERE role = 'user');
    """,
    # 4: a key's default complexity for "auto" requests, instead of the classifier's (NULL: classify).
    """
    ALTER TABLE api_keys ADD COLUMN complexity TEXT;
    """,
)

KEY_FIELDS = (
    "name",
    "owner",
    "role",
    "models",
    "rpm",
    "tpm",
    "budget_usd",
    "budget_period",
    "expires_at",
    "metadata",
    "strategy",
    "parent_id",
    "complexity",
)


__all__ = ["KEY_FIELDS", "MIGRATIONS", "CredentialRow", "KeyRecord", "KeySecret", "KeysDB", "TooManyKeys", "UserRecord"]


class KeysDB:
    """The identity tables (implementing store.protocols.KeysStore) over one aiosqlite connection of their own (so a usage batch commit on the
    shared connection can never split one of these transactions)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._transactions = Transactions(db)  # the connection's write turns: this object owns it

    @asynccontextmanager
    async def write(
        self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
    ) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction: the caller's statements, the audit row and the generation bump."""
        async with self._transactions.write():
            yield self.db
            await self.db.execute(
                "INSERT INTO audit_log (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (time.time(), actor, action, target, orjson.dumps(detail).decode() if detail else None),
            )
            await self.db.execute("UPDATE auth_state SET generation = generation + 1 WHERE id = 1")

    async def audit(
        self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """An audit row with no other change (a login, a refused login)."""
        async with self._transactions.write():
            await self.db.execute(
                "INSERT INTO audit_log (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (time.time(), actor, action, target, orjson.dumps(detail).decode() if detail else None),
            )

    async def generation(self) -> int:
        async with self.db.execute("SELECT generation FROM auth_state WHERE id = 1") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- keys -----------------------------------------------------------------------------------

    async def keys(self) -> list[KeyRecord]:
        out: dict[str, KeyRecord] = {}
        async with self.db.execute(
            f"SELECT id, {', '.join(KEY_FIELDS)}, created_at, updated_at, revoked_at FROM api_keys ORDER BY created_at"
        ) as cur:
            async for row in cur:
                out[row[0]] = _key_record(row)
        async with self.db.execute(
            "SELECT key_id, hash, prefix, created_at, expires_at FROM key_secrets ORDER BY created_at DESC"
        ) as cur:
            async for key_id, digest, prefix, created, expires in cur:
                if key_id in out:
                    out[key_id].secrets.append(KeySecret(digest, prefix, created, expires))
        return list(out.values())

    async def key(self, key_id: str) -> KeyRecord | None:
        for record in await self.keys():
            if record.id == key_id:
                return record
        return None

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
        (counted in the same transaction, so concurrent creations cannot overshoot)."""
        now = time.time()
        values = _key_values(fields)
        async with self.write(actor, "keys.create", key_id, _audit_fields(fields)) as db:
            owner = fields.get("owner")
            if max_per_owner is not None and owner is not None:
                async with db.execute(
                    "SELECT count(*) FROM api_keys WHERE owner = ? AND revoked_at IS NULL", (owner,)
                ) as cur:
                    counted = await cur.fetchone()
                assert counted is not None  # count(*) always answers one row
                (held,) = counted
                if held >= max_per_owner:
                    raise TooManyKeys(owner, max_per_owner)
            await db.execute(
                f"INSERT INTO api_keys (id, {', '.join(values)}, created_at, updated_at) "
                f"VALUES (?, {', '.join('?' for _ in values)}, ?, ?)",
                (key_id, *values.values(), now, now),
            )
            await db.execute(
                "INSERT INTO key_secrets (hash, key_id, prefix, created_at) VALUES (?, ?, ?, ?)",
                (digest, key_id, prefix, now),
            )

    async def update_key(self, actor: str, key_id: str, fields: dict[str, Any]) -> bool:
        values = _key_values(fields)
        async with self.write(actor, "keys.update", key_id, _audit_fields(fields)) as db:
            sets = ", ".join(f"{name} = ?" for name in values)
            cur = await db.execute(
                f"UPDATE api_keys SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?",
                (*values.values(), time.time(), key_id),
            )
            if cur.rowcount == 0:
                raise LookupError(key_id)
        return True

    async def revoke_key(self, actor: str, key_id: str) -> None:
        async with self.write(actor, "keys.revoke", key_id) as db:
            now = time.time()
            cur = await db.execute(
                "UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, now, key_id),
            )
            if cur.rowcount == 0:
                raise LookupError(key_id)

    async def rotate_key(self, actor: str, key_id: str, digest: str, prefix: str, grace_s: float) -> None:
        """The new secret works at once; the current ones stop after `grace_s` (earlier ends are kept)."""
        now = time.time()
        async with self.write(actor, "keys.rotate", key_id, {"grace_s": grace_s}) as db:
            async with db.execute("SELECT revoked_at FROM api_keys WHERE id = ?", (key_id,)) as cur:
                row = await cur.fetchone()
            if row is None or row[0] is not None:
                raise LookupError(key_id)
            await db.execute(
                "UPDATE key_secrets SET expires_at = ? WHERE key_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                (now + grace_s, key_id, now + grace_s),
            )
            await db.execute("DELETE FROM key_secrets WHERE key_id = ? AND expires_at < ?", (key_id, now - 86400.0))
            await db.execute(
                "INSERT INTO key_secrets (hash, key_id, prefix, created_at) VALUES (?, ?, ?, ?)",
                (digest, key_id, prefix, now),
            )
            await db.execute("UPDATE api_keys SET updated_at = ? WHERE id = ?", (now, key_id))

    # --- users ----------------------------------------------------------------------------------

    async def users(self) -> list[UserRecord]:
        async with self.db.execute(
            "SELECT name, password_hash, role, disabled, created_at, updated_at FROM users ORDER BY name"
        ) as cur:
            return [UserRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) async for r in cur]

    async def insert_user(self, actor: str, name: str, password_hash: str, role: str) -> None:
        if "#" in name:
            raise ValueError("a user name may not contain '#': it marks the identity provider's subjects")
        now = time.time()
        async with self.write(actor, "users.create", name, {"role": role}) as db:
            await db.execute(
                "INSERT INTO users (name, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, password_hash, role, now, now),
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
            changes["disabled"] = int(disabled)
        detail = {k: v for k, v in changes.items() if k != "password_hash"}
        if password_hash is not None:
            detail["password"] = "changed"
        async with self.write(actor, "users.update", name, detail) as db:
            sets = "".join(f"{k} = ?, " for k in changes)
            cur = await db.execute(
                f"UPDATE users SET {sets}updated_at = ? WHERE name = ?", (*changes.values(), time.time(), name)
            )
            if cur.rowcount == 0:
                raise LookupError(name)

    async def delete_user(self, actor: str, name: str) -> int:
        """Delete a user and revoke the keys they own, in one transaction (a later user of the same
        name must not inherit them); returns how many keys were revoked."""
        detail: dict[str, Any] = {}
        async with self.write(actor, "users.delete", name, detail) as db:
            cur = await db.execute("DELETE FROM users WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise LookupError(name)
            now = time.time()
            cur = await db.execute(
                "UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE owner = ? AND revoked_at IS NULL",
                (now, now, name),
            )
            revoked = detail["keys_revoked"] = cur.rowcount  # read by write() when it appends the audit row
        return revoked

    async def namespace_jwt_owners(self, namespace: str) -> int:
        """Once per database: the keys JWT subjects made for themselves while their names were
        bare (`sub`, shared with local users) move to `<namespace>#<sub>`. Known from the audit
        log: created by actor `jwt:<sub>` with owner `<sub>`. Returns how many moved."""
        async with self.db.execute("SELECT jwt_namespace FROM auth_state WHERE id = 1") as cur:
            row = await cur.fetchone()
        if row is None or row[0] is not None:
            return 0
        detail: dict[str, Any] = {"namespace": namespace}
        async with self.write("system", "keys.namespace_jwt_owners", None, detail) as db:
            cur = await db.execute(
                "UPDATE api_keys SET owner = ? || '#' || owner, updated_at = ? WHERE owner IS NOT NULL "
                "AND instr(owner, '#') = 0 AND EXISTS (SELECT 1 FROM audit_log WHERE action = 'keys.create' "
                "AND target = api_keys.id AND actor = 'jwt:' || api_keys.owner)",
                (namespace, time.time()),
            )
            moved = detail["keys_moved"] = cur.rowcount
            await db.execute("UPDATE auth_state SET jwt_namespace = ? WHERE id = 1", (namespace,))
        return moved

    # --- provider credentials -------------------------------------------------------------------

    async def credentials(self) -> list[CredentialRow]:
        async with self.db.execute(
            "SELECT provider, ciphertext, vault_key_id, version, hint, created_at, updated_at "
            "FROM provider_credentials ORDER BY provider"
        ) as cur:
            return [CredentialRow(*r) async for r in cur]

    async def vault_key_id(self) -> str | None:
        async with self.db.execute("SELECT vault_key_id FROM auth_state WHERE id = 1") as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def put_credential(self, actor: str, provider: str, ciphertext: bytes, vault_key_id: str, hint: str) -> None:
        now = time.time()
        async with self.write(actor, "providers.set", provider, {"hint": hint}) as db:
            await _claim_vault_key(db, vault_key_id)
            await db.execute(
                "INSERT INTO provider_credentials (provider, ciphertext, vault_key_id, version, hint, created_at, updated_at) "
                "VALUES (?, ?, ?, (SELECT generation + 1 FROM auth_state WHERE id = 1), ?, ?, ?) "
                "ON CONFLICT (provider) DO UPDATE SET ciphertext = excluded.ciphertext, "
                "vault_key_id = excluded.vault_key_id, version = excluded.version, hint = excluded.hint, "
                "updated_at = excluded.updated_at",
                (provider, ciphertext, vault_key_id, hint, now, now),
            )

    async def delete_credential(self, actor: str, provider: str) -> None:
        async with self.write(actor, "providers.delete", provider) as db:
            cur = await db.execute("DELETE FROM provider_credentials WHERE provider = ?", (provider,))
            if cur.rowcount == 0:
                raise LookupError(provider)

    async def reencrypt(
        self, actor: str, old_key_id: str, new_key_id: str, rows: Iterable[tuple[str, bytes, int]]
    ) -> None:
        """Swap every ciphertext for its re-encryption in one transaction; a row whose version moved
        meanwhile (someone set a new value) aborts the whole rotation rather than losing it."""
        rows = list(rows)
        async with self.write(
            actor, "secrets.rotate", None, {"from_key": old_key_id, "to_key": new_key_id, "credentials": len(rows)}
        ) as db:
            async with db.execute("SELECT count(*) FROM provider_credentials") as cur:
                counted = await cur.fetchone()
            assert counted is not None  # count(*) always answers one row
            (total,) = counted
            if total != len(rows):
                raise RuntimeError("the credentials changed during the rotation; run it again")
            for provider, ciphertext, version in rows:
                cur = await db.execute(
                    "UPDATE provider_credentials SET ciphertext = ?, vault_key_id = ? "
                    "WHERE provider = ? AND version = ? AND vault_key_id = ?",
                    (ciphertext, new_key_id, provider, version, old_key_id),
                )
                if cur.rowcount != 1:
                    raise RuntimeError("the credentials changed during the rotation; run it again")
            await db.execute("UPDATE auth_state SET vault_key_id = ? WHERE id = 1", (new_key_id,))

    # --- audit ----------------------------------------------------------------------------------

    async def audit_entries(
        self, *, limit: int = 100, since: float | None = None, actor: str | None = None
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[float | str] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        sql = (
            "SELECT id, ts, actor, action, target, detail FROM audit_log"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        async with self.db.execute(sql, (*args, limit)) as cur:
            return [
                {
                    "id": r[0],
                    "ts": r[1],
                    "actor": r[2],
                    "action": r[3],
                    "target": r[4],
                    "detail": orjson.loads(r[5]) if r[5] else None,
                }
                async for r in cur
            ]


async def _claim_vault_key(db: aiosqlite.Connection, vault_key_id: str) -> None:
    """The database remembers which vault key its credentials are under; a process holding another
    (an old one, after `secrets rotate`) must not mix a second key in."""
    async with db.execute("SELECT vault_key_id FROM auth_state WHERE id = 1") as cur:
        row = await cur.fetchone()
    current = row[0] if row else None
    if current is None:
        await db.execute("UPDATE auth_state SET vault_key_id = ? WHERE id = 1", (vault_key_id,))
    elif current != vault_key_id:
        raise PermissionError(current)


def _key_record(row: Sequence[Any]) -> KeyRecord:
    (
        key_id,
        name,
        owner,
        role,
        models,
        rpm,
        tpm,
        budget,
        period,
        expires,
        metadata,
        strategy,
        parent_id,
        complexity,
        created,
        updated,
        revoked,
    ) = row
    return KeyRecord(
        key_id,
        name,
        owner,
        role,
        tuple(orjson.loads(models)) if models is not None else None,
        rpm,
        tpm,
        budget,
        period,
        expires,
        orjson.loads(metadata or "{}"),
        created,
        updated,
        revoked,
        strategy=strategy,
        parent_id=parent_id,
        complexity=complexity,
    )


def _key_values(fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in KEY_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name == "models":
            value = orjson.dumps(list(value)).decode() if value is not None else None
        elif name == "metadata":
            value = orjson.dumps(value or {}).decode()
        values[name] = value
    return values


def _audit_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items() if k in KEY_FIELDS}
