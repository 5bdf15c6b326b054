"""Usage: the cost of a request from the registry prices of that moment, and the usage log,
written off the hot path in batches and flushed completely on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .context import RequestContext, Usage
from .registry import ModelEntry
from .store.records import UsageRow

log = logging.getLogger("llmproxy.usage")


def cost_usd(model: ModelEntry, usage: Usage | None) -> float | None:
    """USD for one request; None when the price (or the usage) is unknown, never a silent zero.

    `usage` is in OpenAI's shape, which every adapter produces: prompt_tokens counts every input
    token, cached ones (prompt_tokens_details.cached_tokens) and cache writes
    (prompt_tokens_details.cache_creation_tokens, Anthropic's) included; completion_tokens counts
    reasoning tokens. Cached reads are priced at the cached-input price, cache writes at the
    cache-write price (the input price where the registry has none). Past a model's long-context
    threshold (prompt tokens) the input and output prices move to the long-context tier; the
    cached price to the tier's own, or by the input price's factor where it has none, as does the
    cache-write price.
    """
    if usage is None or not model.priced:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    cached = writes = 0
    if isinstance(details, dict):
        cached = int(details.get("cached_tokens") or 0)
        writes = int(details.get("cache_creation_tokens") or 0)
    input_price, output_price = model.input_per_mtok, model.output_per_mtok
    assert input_price is not None and output_price is not None
    cached_price = model.cached_input_per_mtok if model.cached_input_per_mtok is not None else input_price
    write_price = input_price if model.cache_write_per_mtok is None else model.cache_write_per_mtok
    tier = model.long_context
    if tier is not None and prompt > (_tier_value(tier, "threshold") or float("inf")):
        long_input = _tier_value(tier, "input_per_mtok")
        long_input = input_price if long_input is None else long_input
        long_output = _tier_value(tier, "output_per_mtok")
        long_cached = _tier_value(tier, "cached_input_per_mtok")
        factor = long_input / input_price if input_price else 1.0
        cached_price = cached_price * factor if long_cached is None else long_cached
        write_price *= factor
        input_price = long_input
        output_price = output_price if long_output is None else long_output
    uncached = max(0, prompt - cached - writes)
    total = uncached * input_price + cached * cached_price + writes * write_price + completion * output_price
    return total / 1_000_000


def _tier_value(tier: Any, name: str) -> Any:
    """A long-context tier field, whether the registry hands it over as a mapping or an object."""
    value = tier.get(name) if isinstance(tier, Mapping) else getattr(tier, name, None)
    return float(value) if value is not None else None


def usage_row(ctx: RequestContext, latency_s: float, overhead_s: float) -> UsageRow:
    """The usage log row of a finished request: narrow, no copies of registry entries or payloads."""
    usage = ctx.usage or {}
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = writes = reasoning = None
    if isinstance(prompt_details, dict):
        cached, writes = prompt_details.get("cached_tokens"), prompt_details.get("cache_creation_tokens")
    if isinstance(completion_details, dict):
        reasoning = completion_details.get("reasoning_tokens")
    principal = ctx.principal
    model = ctx.model.id if ctx.model else ctx.served_model  # a hit: what answered the request it replays
    provider = ctx.provider.name if ctx.provider else ctx.served_provider
    # tuple.__new__ rather than UsageRow(...): the NamedTuple's own __new__ is Python code (0.4 against
    # 0.2 us a row); the values go in field order all the same.
    return _new_row(
        UsageRow,
        (
            ctx.started_wall,
            ctx.request_id,
            principal.key_id if principal else None,
            principal.user if principal else None,
            ctx.requested_model,
            model,
            provider,
            ctx.strategy,
            ctx.complexity,
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            cached,
            reasoning,
            ctx.cost_usd,
            round(latency_s * 1000.0, 3),
            round(ctx.first_token_s * 1000.0, 3) if ctx.first_token_s is not None else None,
            round(overhead_s * 1000.0, 3),
            ctx.cache_status,
            len(ctx.attempts),
            ctx.status,
            ctx.error_type,
            ctx.saved_usd,
            writes,
        ),
    )


_new_row = tuple.__new__
Rows = Sequence[UsageRow]


class UsageStats(NamedTuple):
    """The usage queue's counters, as /metrics exports them."""

    depth: int  # rows waiting to be written
    written: int
    dropped: int  # rows the full queue refused
    write_failures: int  # batch writes that failed (and were retried)


class UsageRecorder:
    """A bounded in-memory queue of usage rows and the one task that writes them in batches (every
    `interval_s`, or as soon as `batch_size` rows wait) and applies the retention.

    A full queue is said loudly (an error log line and the `dropped` counter, which /metrics
    exports); a failing database keeps the rows and retries, so a slow or locked database never
    fails a request. stop() writes everything still queued.
    """

    def __init__(
        self,
        write: Callable[[Rows], Awaitable[None]],
        *,
        interval_s: float,
        batch_size: int,
        max_rows: int,
        retain: Callable[[float], Awaitable[int]] | None = None,
        retention_days: float = 0,
        retention_every_s: float = 3600.0,
    ) -> None:
        self._write = write
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._max_rows = max_rows
        self._retain = retain if retention_days > 0 else None
        self._retention_s = retention_days * 86_400
        self._retention_every_s = retention_every_s
        self._rows: list[UsageRow] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        self.written = 0
        self.write_failures = 0
        self.deleted = 0

    @property
    def depth(self) -> int:
        return len(self._rows)

    def stats(self) -> UsageStats:
        return UsageStats(len(self._rows), self.written, self.dropped, self.write_failures)

    def add(self, row: UsageRow) -> None:
        rows = self._rows
        if len(rows) >= self._max_rows:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "usage queue full (%d rows): %d usage rows dropped so far; the database is not keeping up",
                    self._max_rows,
                    self.dropped,
                )
            return
        rows.append(row)
        if len(rows) == self._batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def _run(self) -> None:
        next_retention = time.monotonic() + min(60.0, self._retention_every_s)
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            while self._rows and await self._flush_once() and len(self._rows) >= self._batch_size:
                pass
            if self._retain is not None and time.monotonic() >= next_retention and not self._closing:
                next_retention = time.monotonic() + self._retention_every_s
                await self.apply_retention()

    async def apply_retention(self) -> int:
        """Delete raw rows older than the retention; the daily roll-up stays."""
        if self._retain is None:
            return 0
        try:
            deleted = await self._retain(time.time() - self._retention_s)
        except Exception as exc:  # noqa: BLE001 - retention can wait for its next turn
            log.error("usage retention failed: %s", exc)
            return 0
        self.deleted += deleted
        if deleted:
            log.info("usage retention: deleted %d rows older than %g days", deleted, self._retention_s / 86_400)
        return deleted

    async def _flush_once(self) -> bool:
        if not self._rows:
            return True
        limit = self._batch_size * 4
        batch, self._rows = self._rows[:limit], self._rows[limit:]
        try:
            await self._write(batch)
        except Exception as exc:  # noqa: BLE001 - keep the rows, try again on the next tick
            self.write_failures += 1
            log.error("usage write failed, %d rows kept for retry: %s", len(batch), exc)
            self._rows[:0] = batch
            return False
        self.written += len(batch)
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Write everything still queued (retrying a failing write until the timeout)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        deadline = time.monotonic() + timeout_s
        while self._rows and time.monotonic() < deadline:
            if not await self._flush_once():
                await asyncio.sleep(0.1)
        if self._rows:
            log.error("shutdown: %d usage rows could not be written", len(self._rows))
