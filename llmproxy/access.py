"""Access control wiring: builds the authenticator, the limiter and the vault at startup, and keeps
them in step with the identity tables.

The CLI and other gateways write those tables from other processes, so a task polls one integer
(the tables' change counter) every `auth.sync_interval_s` and reloads when it moves, at once when
the store notifies a change (PostgreSQL's LISTEN/NOTIFY) or, with Redis configured, another
gateway announces one (a "keys" notification); writes made through the admin API reload at once
and are announced. A reload builds new maps aside and swaps them in, and makes the vault's provider
keys effective by setting a copy of the settings (Settings is frozen) in the holder it owns, which
the Gateway reads as `gw.settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from .auth import Authenticator
from .ratelimit import KeyBudget, Limiter, period_starts
from .config import Settings
from .current import Current
from .store.backends import Stores
from .store.protocols import KeysStore, UsageStore
from .vault import Vault, load_key

if TYPE_CHECKING:
    from .ratelimit_shared import SharedLimiter, SpendTotals
    from .shared.deployment import Deployment

log = logging.getLogger("llmproxy.access")


class Access:
    """Identity state of one gateway: `auth`, `limits`, `vault`, the tables (`db`), and their sync."""

    def __init__(
        self, settings: Current[Settings], stores: Stores, auth: Authenticator, limits: Limiter, vault: Vault
    ) -> None:
        self._settings = settings
        self._stores = stores
        self.db: KeysStore = stores.keys
        self.auth = auth
        self.limits = limits
        self.vault = vault
        self.generation = -1
        self._reload_lock = asyncio.Lock()
        self._changed = asyncio.Event()  # set by the store's change notifications, where it has them
        self._task: asyncio.Task[None] | None = None
        self._shared: Deployment | None = None

    @classmethod
    async def open(cls, settings_ref: Current[Settings], stores: Stores, shared: Deployment | None = None) -> Access:
        """Build everything from the identity tables in `stores` (opened and closed by the app), load
        the spend so far from its usage log, and start watching for changes. Owns `settings_ref`
        from now on: each reload sets in it the settings with the vault's provider keys. With
        `shared` (Redis), limits and spend are the deployment's (ratelimit_shared.py)."""
        settings = settings_ref.current
        key = load_key(settings, want_id=await stores.keys.vault_key_id())
        auth = Authenticator(settings, key.derive(b"llmproxy login tokens v1"))
        shared_limits: SharedLimiter | None = None
        if shared is not None:
            from .ratelimit_shared import SharedLimiter  # redis-py only where Redis is configured

            shared_limits = SharedLimiter(shared.link, lambda: access.spend_totals())
        access = cls(settings_ref, stores, auth, shared_limits or Limiter(), Vault(key, settings))
        if auth.jwt_namespace is not None:
            moved = await access.db.namespace_jwt_owners(auth.jwt_namespace)
            if moved:
                log.warning(
                    "%d keys made by identity-provider subjects now belong to '%s#<sub>'", moved, auth.jwt_namespace
                )
        await access._load()
        await access._load_spend()
        access._task = asyncio.create_task(access._watch(settings.auth.sync_interval_s), name="access-sync")
        stores.watch_changes(access._changed.set)
        if shared is not None:
            access._shared = shared
            shared.notifier.on("keys", lambda _: access._changed.set())  # (and on a resync after an outage)
        if shared_limits is not None:
            await shared_limits.seed()
        return access

    async def reload(self) -> None:
        """Reload after a write made here, and tell the deployment's other gateways (Redis)."""
        await self._load()
        if self._shared is not None:
            self._shared.notifier.publish("keys", generation=self.generation)

    async def _load(self) -> None:
        async with self._reload_lock:
            generation = await self.db.generation()
            keys, users = await self.db.keys(), await self.db.users()
            self.auth.load(keys, users)
            self.limits.set_keys({k.id: KeyBudget(k.parent_id, k.budget_usd, k.budget_period) for k in keys})
            await self.vault.load(self.db)
            self._settings.set(self.vault.apply(self._settings.current))
            self.generation = generation

    async def _watch(self, interval_s: float) -> None:
        """Reload when the change counter moved: looked at every `interval_s`, and at once when the
        store says something changed. While the database is away, requests are checked against the
        keys loaded last (never refused for that); one warning says so, one line says it is back."""
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), interval_s)
            self._changed.clear()
            try:
                if await self.db.generation() != self.generation:
                    await self._load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a locked file, a database away: keep serving, try again
                if not failing:
                    log.warning("could not reload keys and credentials (serving with the ones loaded last): %s", exc)
                failing = True
            else:
                if failing:
                    log.warning("keys and credentials are in step with the database again")
                failing = False

    async def _load_spend(self) -> None:
        """Spend per key for today, this month and in total (rolled up to the keys above it), once;
        the record stage keeps it current."""
        day, month, total = await self.spend_totals()
        self.limits.load_spend(day, month, total, time.time())

    async def spend_totals(self) -> SpendTotals:
        """Each key's own spend from the usage log: today, this month, in total."""
        day, month = period_starts(time.time())
        usage: UsageStore = self._stores.usage
        return await usage.spend_by_key(day), await usage.spend_by_key(month), await usage.spend_by_key(0.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
