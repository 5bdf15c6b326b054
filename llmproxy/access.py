"""Access control wiring: builds the authenticator, the limiter and the vault at startup, and keeps
them in step with the identity tables.

The CLI writes those tables from another process, so a task polls one integer (the tables' change
counter) every `auth.sync_interval_s` and reloads when it moves; writes made through the admin API
reload at once and, with Redis configured, tell the deployment's other processes, which reload at
once too (a "keys" notification) instead of at their next poll. A reload builds new maps aside and swaps them in, and makes the vault's provider
keys effective by swapping `gw.settings` for a copy (Settings is frozen).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from .auth import Authenticator
from .ratelimit import KeyBudget, Limiter, period_starts
from .store.keys_sql import KeysDB
from .store.sqlite import SQLiteStore
from .store.usage_sql import SQLiteUsageStore
from .vault import Vault, load_key

if TYPE_CHECKING:
    from .ratelimit_shared import SharedLimiter, SpendTotals

log = logging.getLogger("llmproxy.access")


class Access:
    """Identity state of one gateway: `auth`, `limits`, `vault`, the tables (`db`), and their sync."""

    def __init__(self, gw: Any, store: SQLiteStore, auth: Authenticator, limits: Limiter, vault: Vault) -> None:
        self._gw = gw
        self._store = store
        self.db = KeysDB(store.db)
        self.auth = auth
        self.limits = limits
        self.vault = vault
        self.generation = -1
        self._reload_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, gw: Any) -> Access:
        """Build everything from the gateway's store, hang `auth`, `limits` and `access` on `gw`, and
        start watching for changes."""
        settings = gw.settings
        # A connection of its own: identity writes are whole transactions, never split by a usage
        # batch committing on the shared connection.
        store = await SQLiteStore.open(gw.store.path)
        try:
            want = await KeysDB(store.db).vault_key_id()
            key = load_key(settings, want_id=want)
            auth = Authenticator(settings, key.derive(b"llmproxy login tokens v1"))
        except BaseException:
            await store.close()
            raise
        deployment = gw.shared
        shared_limits: SharedLimiter | None = None
        if deployment is not None:
            from .ratelimit_shared import SharedLimiter   # redis-py only where Redis is configured

            shared_limits = SharedLimiter(deployment.link, lambda: access.spend_totals())
        access = cls(gw, store, auth, shared_limits or Limiter(), Vault(key, settings))
        try:
            if auth.jwt_namespace is not None:
                moved = await access.db.namespace_jwt_owners(auth.jwt_namespace)
                if moved:
                    log.warning("%d keys made by identity-provider subjects now belong to '%s#<sub>'",
                                moved, auth.jwt_namespace)
        except BaseException:
            await store.close()
            raise
        await access._load()
        await access._load_spend()
        gw.auth, gw.limits, gw.access = access.auth, access.limits, access
        if deployment is not None:
            deployment.notifier.on("keys", lambda _: access.sync())
        if shared_limits is not None:
            await shared_limits.seed()
        access._task = asyncio.create_task(access._watch(settings.auth.sync_interval_s), name="access-sync")
        return access

    async def reload(self) -> None:
        """Reload after a write made here, and tell the other processes of the deployment."""
        await self._load()
        if self._gw.shared is not None:
            self._gw.shared.notifier.publish("keys", generation=self.generation)

    async def sync(self) -> None:
        """Reload when the tables changed (another process wrote them)."""
        if await self.db.generation() != self.generation:
            await self._load()

    async def _load(self) -> None:
        async with self._reload_lock:
            generation = await self.db.generation()
            keys, users = await self.db.keys(), await self.db.users()
            self.auth.load(keys, users)
            self.limits.set_keys({k.id: KeyBudget(k.parent_id, k.budget_usd, k.budget_period) for k in keys})
            await self.vault.load(self.db)
            self._gw.settings = self.vault.apply(self._gw.settings)
            self.generation = generation

    async def _watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a locked or busy file: keep serving, try again
                log.warning("could not reload keys and credentials: %s", exc)

    async def _load_spend(self) -> None:
        """Spend per key for today, this month and in total (rolled up to the keys above it), once;
        the record stage keeps it current."""
        day, month, total = await self.spend_totals()
        self.limits.load_spend(day, month, total, time.time())

    async def spend_totals(self) -> SpendTotals:
        """Each key's own spend from the usage log: today, this month, in total."""
        day, month = period_starts(time.time())
        usage = SQLiteUsageStore.over(self._store.db)
        return await usage.spend_by_key(day), await usage.spend_by_key(month), await usage.spend_by_key(0.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._store.close()
