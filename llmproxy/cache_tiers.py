"""What the response cache's tiers behind its memory must do, and which of them a configuration has.

cache.py (the stage) uses them; store/cache_sql.py (SQLite, the disk) and shared/redis_cache.py
(Redis, the tier every process shares) implement them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from .config import CacheSettings
from .context import RequestContext


class CacheBackend(Protocol):
    """A persistent (or shared) tier. Rows are cache_memory.Row tuples."""

    async def get(self, id_: int) -> Sequence[Any] | None: ...
    async def put_many(self, rows: Sequence[Sequence[Any]]) -> None: ...
    async def ids(self, now: float) -> list[int]: ...
    async def purge(
        self, *, key: str | None = None, model: str | None = None, tenants: Collection[str] | None = None
    ) -> int: ...
    async def sweep(self, now: float, max_bytes: int) -> int: ...
    async def totals(self, now: float) -> tuple[int, int]: ...
    async def close(self) -> None: ...


class SharedTier(Protocol):
    """A tier shared by every process (Redis: shared/redis_cache.py), between memory and disk.
    Values are packed entries; the tier may carry the request's pending limit check along."""

    def may_hold(self, id_: int) -> bool: ...  # False: it certainly lacks the entry, the read is skipped
    async def get(self, key: str, ctx: RequestContext) -> bytes | None: ...
    def put(self, key: str, id_: int, blob: bytes, ttl_s: float) -> None: ...
    async def purge(self, match: Callable[[str, bytes], bool] | None) -> int: ...
    def stats(self) -> dict[str, Any]: ...


def disk_tier(settings: CacheSettings, shared: object | None) -> bool:
    """Whether answers also go to the disk (SQLite): as `persist` says, else only without a shared
    tier (Redis keeps the answers across restarts and processes then)."""
    return settings.persist if settings.persist is not None else shared is None
