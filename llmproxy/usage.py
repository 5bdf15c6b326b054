"""Usage: the cost of a request from the registry prices of that moment, and the usage log,
written off the hot path in batches and flushed completely on shutdown."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .context import RequestContext, Usage
from .registry import ModelEntry

log = logging.getLogger("llmproxy.usage")


def cost_usd(model: ModelEntry, usage: Usage | None) -> float | None:
    """USD for one request; None when the price (or the usage) is unknown, never a silent zero."""
    if usage is None or not model.priced:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    cached_price = model.cached_input_per_mtok if model.cached_input_per_mtok is not None else model.input_per_mtok
    total = ((prompt - cached) * model.input_per_mtok + cached * cached_price
             + completion * model.output_per_mtok)  # type: ignore[operator]
    return total / 1_000_000


def usage_row(ctx: RequestContext, now: float) -> tuple[Any, ...]:
    usage = ctx.usage or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    principal = ctx.principal
    return (
        ctx.started_wall, ctx.request_id, principal.key_id if principal else None,
        principal.user if principal else None, ctx.requested_model,
        ctx.model.id if ctx.model else None, ctx.provider.name if ctx.provider else None,
        ctx.strategy, ctx.complexity, usage.get("prompt_tokens"), usage.get("completion_tokens"),
        prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None,
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None,
        ctx.cost_usd, round((now - ctx.started) * 1000.0, 3),
        round(ctx.first_token_s * 1000.0, 3) if ctx.first_token_s is not None else None,
        round(ctx.overhead_ms(now), 3), ctx.cache_status, len(ctx.attempts), ctx.status, ctx.error_type,
    )


class UsageRecorder:
    """A bounded in-memory queue of usage rows and the task that writes them in batches.

    A full queue is said loudly (log and `dropped` counter); a failing database keeps the rows and
    retries, so a slow or locked database never fails a request.
    """

    def __init__(self, write: Callable[[Sequence[tuple[Any, ...]]], Awaitable[None]], *,
                 interval_s: float, batch_size: int, max_rows: int) -> None:
        self._write = write
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._max_rows = max_rows
        self._rows: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        self.written = 0

    @property
    def depth(self) -> int:
        return len(self._rows)

    def add(self, row: tuple[Any, ...]) -> None:
        if len(self._rows) >= self._max_rows:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("usage queue full (%d rows): %d usage rows dropped so far", self._max_rows, self.dropped)
            return
        self._rows.append(row)
        if len(self._rows) >= self._batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self._flush_once()

    async def _flush_once(self) -> bool:
        if not self._rows:
            return True
        batch, self._rows = self._rows[:self._batch_size * 4], self._rows[self._batch_size * 4:]
        try:
            await self._write(batch)
        except Exception as exc:  # noqa: BLE001 - keep the rows, try again on the next tick
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
