"""Conversation state for the Responses door: stored answers, written behind the request.

`keep` puts a response in memory at once, before its answer goes out, so a follow-up that names it
(previous_response_id, retrieve) finds it whatever the disk is doing; one writer task hands what
waits to the store (any ResponsesStore) in batches, every `interval_s`, and forgets each record
only once it is on disk. Reads look in memory first. A delete takes the writer's turn, so a batch
in flight can never bring back what was deleted. Retention (the usage retention's days) runs in
the same task. A store that fails keeps the records waiting, up to `max_waiting`; past that new
ones are dropped, loudly.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..store.protocols import ResponsesStore
from ..store.records import StoredResponse

log = logging.getLogger("llmproxy.responses")


class StoredResponses:
    def __init__(
        self,
        store: ResponsesStore,
        *,
        interval_s: float = 0.2,
        max_waiting: int = 20_000,
        retention_days: float = 0,
        retention_every_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_waiting = max_waiting
        self.retention_s = retention_days * 86_400
        self.retention_every_s = retention_every_s
        self.waiting: dict[str, StoredResponse] = {}
        self._turn = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = self.dropped = self.deleted = self.write_failures = 0

    def keep(self, record: StoredResponse) -> None:
        """Store a response: readable at once, on disk shortly."""
        if len(self.waiting) >= self.max_waiting and record.id not in self.waiting:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "stored responses: %d wait for the database; %d dropped so far", len(self.waiting), self.dropped
                )
            return
        self.waiting[record.id] = record
        if len(self.waiting) >= 256:
            self._wake.set()

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        record = self.waiting.get(response_id)
        if record is not None:
            return record if record.tenant == tenant else None
        return await self.store.get(tenant, response_id)

    async def delete(self, tenant: str, response_id: str) -> bool:
        async with self._turn:
            record = self.waiting.get(response_id)
            if record is not None and record.tenant == tenant:
                del self.waiting[response_id]
                await self.store.delete(tenant, response_id)
                return True
            return await self.store.delete(tenant, response_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="responses-writer")

    async def stop(self) -> None:
        """Write what waits (the lifespan calls this after the server drained its requests)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self.waiting:
            log.error("shutdown: %d stored responses could not be written", len(self.waiting))

    async def flush(self) -> bool:
        async with self._turn:
            batch = list(self.waiting.values())
            if not batch:
                return True
            try:
                await self.store.put_many(batch)
            except Exception as exc:  # noqa: BLE001 - keep them, try again on the next tick
                self.write_failures += 1
                log.error("stored responses: writing %d failed, kept for retry: %s", len(batch), exc)
                return False
            for record in batch:
                if self.waiting.get(record.id) is record:
                    del self.waiting[record.id]
            self.written += len(batch)
            return True

    async def _run(self) -> None:
        next_retention = time.monotonic() + min(60.0, self.retention_every_s)
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            if self.retention_s > 0 and time.monotonic() >= next_retention and not self._closing:
                next_retention = time.monotonic() + self.retention_every_s
                await self.apply_retention()

    async def apply_retention(self) -> int:
        """Delete what is older than the retention (in memory too)."""
        cutoff = time.time() - self.retention_s
        async with self._turn:
            for key in [k for k, r in self.waiting.items() if r.created_at < cutoff]:
                del self.waiting[key]
            try:
                deleted = await self.store.delete_before(cutoff)
            except Exception as exc:  # noqa: BLE001 - retention can wait for its next turn
                log.error("stored responses retention failed: %s", exc)
                return 0
        self.deleted += deleted
        if deleted:
            log.info("stored responses retention: deleted %d older than %g days", deleted, self.retention_s / 86_400)
        return deleted
