"""Rate limits and budgets exact across processes: the ratelimit stage when Redis is configured.

`SharedLimiter` is a Limiter (ratelimit.py) whose decisions are made by one Lua script in Redis
(shared/redis_limits.py) instead of this process's windows. `admit` only prepares the check
(ctx.admission); `confirm`, after the cache lookup, sends it, unless the cache's shared-tier read
already carried it in the same round trip. Settling (real tokens, spend) is queued and sent in one
pipeline per event-loop turn, after the answer.

While Redis is down (redis_link.RedisLink) the inherited in-process limiter decides, with each
key's rpm and tpm divided by the processes last seen alive (or [redis] fallback_processes), so
the deployment as a whole stays within the limits; budgets are checked against this process's
spend (loaded from the usage log, plus what it has spent since). Exactness returns with Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from itertools import count
from typing import Any, NamedTuple

from .context import BYTES_PER_TOKEN, RequestContext
from .errors import QuotaExceeded, RateLimited
from .ratelimit import WINDOW_S, Limiter, _duration, _ident, _period, period_starts
from .shared.redis_limits import (
    ADMITTED,
    DAY_TTL_S,
    MONTH_TTL_S,
    NOT_SEEDED,
    OVER_BUDGET,
    OVER_RPM,
    SCRIPTS,
    WINDOW_MS,
    Admission,
    spend_key,
    window_keys,
)
from .shared.redis_link import RedisDown, RedisLink

log = logging.getLogger("llmproxy.ratelimit")
SpendTotals = tuple[Mapping[str, float], Mapping[str, float], Mapping[str, float]]  # day, month, total


class _SharedHold(NamedTuple):
    """A token reservation made in Redis, corrected in the record stage."""

    ident: str
    member: str
    estimate: float


class SharedLimiter(Limiter):
    def __init__(self, link: RedisLink, spend_source: Callable[[], Awaitable[SpendTotals]]) -> None:
        super().__init__()
        self.link = link
        self._spend_source = spend_source  # the usage log's spend per key (own), to seed Redis from
        self._prefix = link.prefix
        self._member_prefix = os.urandom(4).hex()
        self._next_member = count(1).__next__
        self._outbox: list[tuple[str, list[str], list[Any]]] = []  # settle calls for the next pipeline
        self._seeding: asyncio.Task[None] | None = None
        for name, source in SCRIPTS.items():  # (the deployment registers them already; harmless twice)
            link.script(name, source)
        link.on_up(self.seed)

    # --- the stage ---

    def admit(self, ctx: RequestContext, body_bytes: int) -> None:
        p = ctx.principal
        if p is None:
            return
        if not self.link.up:
            self._admit_here(ctx, body_bytes)
            return
        budgets: list[tuple[str, float, str]] = []
        if p.budget_usd is not None and p.key_id is not None:
            budgets.append((p.key_id, p.budget_usd, p.budget_period))
        if self._ancestors and p.key_id in self._ancestors:
            budgets += [(a, usd, period) for a, usd, period in self._ancestors[p.key_id] if usd is not None]
        if p.rpm is None and p.tpm is None and not budgets:
            return
        ident = _ident(p)
        member = f"{self._member_prefix}{self._next_member():x}"
        prefix = self._prefix
        now = time.time()
        day, month = period_starts(now)
        starts = {"day": day, "month": month}
        keys = window_keys(prefix, ident) + [prefix + "seeded"]
        keys += [spend_key(prefix, key_id, period, starts.get(period, 0.0)) for key_id, _, period in budgets]
        args: list[Any] = [
            -1 if p.rpm is None else p.rpm,
            -1 if p.tpm is None else p.tpm,
            body_bytes // BYTES_PER_TOKEN,
            member,
            *[usd for _, usd, _ in budgets],
            WINDOW_MS,
        ]
        ctx.admission = Admission(keys, args, body_bytes, budgets, member, ident)

    async def confirm(self, ctx: RequestContext) -> None:
        """Send the prepared check (unless the cache's read carried it) and act on the answer:
        QuotaExceeded, RateLimited, or the reservation and the x-ratelimit-* headers."""
        adm: Admission = ctx.admission
        ctx.admission = None
        if adm.reply is None and not adm.failed:
            try:
                adm.reply = await self.link.evalsha("admit", adm.keys, adm.args)
            except RedisDown:
                adm.failed = True
        reply = adm.reply
        if adm.failed or reply is None:
            self._admit_here(ctx, adm.body_bytes)
            return
        outcome = int(reply[0])
        if outcome == NOT_SEEDED:
            self.seed_soon()
            self._admit_here(ctx, adm.body_bytes)
            return
        p = ctx.principal
        assert p is not None
        headers = ctx.response_headers
        if outcome == OVER_BUDGET:
            key_id, usd, period = adm.budgets[int(reply[1]) - 1]
            spent = float(reply[2])
            if key_id == p.key_id:
                raise QuotaExceeded(
                    f"this key has used its budget of ${usd:.2f}{_period(period)} "
                    f"(spent ${spent:.4f}); ask an admin to raise it"
                )
            raise QuotaExceeded(
                f"this key was made from key {key_id}, which has used its budget of "
                f"${usd:.2f}{_period(period)} (spent ${spent:.4f}, its keys included); "
                "ask an admin to raise it"
            )
        if outcome == OVER_RPM:
            wait = float(reply[2])
            assert p.rpm is not None
            _set_headers(headers, "requests", p.rpm, 0, wait)
            raise RateLimited(
                f"rate limit reached: {p.rpm} requests per minute for this key; try again in {_duration(wait)}",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        estimate = float(adm.args[2])
        if outcome != ADMITTED:  # over tpm
            assert p.tpm is not None
            total, wait = float(reply[1]), float(reply[2])
            _set_headers(headers, "tokens", p.tpm, max(0.0, p.tpm - total), wait)
            if estimate > p.tpm:
                raise RateLimited(
                    f"this request (~{int(estimate)} tokens) is larger than the key's limit of "
                    f"{p.tpm} tokens per minute"
                )
            raise RateLimited(
                f"rate limit reached: {p.tpm} tokens per minute for this key; try again in {_duration(wait)}",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        if p.rpm is not None:
            _set_headers(headers, "requests", p.rpm, p.rpm - int(reply[1]), WINDOW_S)
        if p.tpm is not None:
            _set_headers(headers, "tokens", p.tpm, max(0.0, p.tpm - float(reply[2])), WINDOW_S)
            ctx.rate_hold = _SharedHold(adm.ident, adm.member, estimate)

    def _admit_here(self, ctx: RequestContext, body_bytes: int) -> None:
        """The in-process limiter, each limit divided among the processes sharing it."""
        self.link.fallbacks += 1
        p = ctx.principal
        n = self.link.divisor()
        if p is None or n <= 1 or (p.rpm is None and p.tpm is None):
            super().admit(ctx, body_bytes)
            return
        ctx.principal = replace(
            p, rpm=None if p.rpm is None else max(1, p.rpm // n), tpm=None if p.tpm is None else max(1, p.tpm // n)
        )
        try:
            super().admit(ctx, body_bytes)
        finally:
            ctx.principal = p

    def settle(self, ctx: RequestContext) -> None:
        hold = ctx.rate_hold
        if type(hold) is _SharedHold:
            ctx.rate_hold = None
            usage = ctx.usage
            if usage is not None and isinstance(usage.get("total_tokens"), int):
                actual = float(usage["total_tokens"])
            elif ctx.status != 200:
                actual = 0.0
            else:
                actual = hold.estimate
            if actual != hold.estimate:
                keys = window_keys(self._prefix, hold.ident)
                self._send("settle_tokens", [keys[2], keys[3]], [hold.member, actual])
        super().settle(ctx)  # a reservation made here while Redis was down; this process's spend
        p = ctx.principal
        if ctx.cost_usd and p is not None and p.key_id is not None:
            self._add_spend(p.key_id, ctx.cost_usd)

    def _add_spend(self, key_id: str, usd: float) -> None:
        day, month = period_starts(time.time())
        prefix = self._prefix
        keys, ttls = [prefix + "seeded"], [usd]
        for owner in (key_id, *(a for a, _, _ in self._ancestors.get(key_id, ()))):
            keys += [
                spend_key(prefix, owner, "day", day),
                spend_key(prefix, owner, "month", month),
                spend_key(prefix, owner, "total", 0.0),
            ]
            ttls += [DAY_TTL_S, MONTH_TTL_S, 0]
        self._send("add_spend", keys, ttls)

    def _send(self, script: str, keys: list[str], args: list[Any]) -> None:
        if not self.link.up:
            return
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append((script, keys, args))

    def _flush(self) -> None:
        calls, self._outbox = self._outbox, []
        if calls:
            asyncio.ensure_future(self._write(calls))

    async def _write(self, calls: list[tuple[str, list[str], list[Any]]]) -> None:
        try:
            await self.link.call(*[self.link.script_call(script, keys, args) for script, keys, args in calls])
        except RedisDown:
            pass  # the spend is in the usage log; a reseed after Redis returns counts it

    # --- seeding the spend counters ---

    def seed_soon(self) -> None:
        if self._seeding is None or self._seeding.done():
            self._seeding = asyncio.ensure_future(self.seed())

    async def seed(self) -> None:
        """Spend counters from the usage log, once per Redis lifetime (a lock keeps other processes
        from doing it at the same time; the marker says it is done)."""
        link = self.link
        prefix = self._prefix
        try:
            if await link.run(lambda c: c.exists(prefix + "seeded")):
                return
            if not await link.run(lambda c: c.set(prefix + "seeding", link.process_id, nx=True, px=10_000)):
                return  # another process is at it
            day_usd, month_usd, total_usd = await self._spend_source()
            day, month = period_starts(time.time())
            writes: list[tuple[str, float, int]] = []
            for spent, period, start, ttl in (
                (day_usd, "day", day, DAY_TTL_S),
                (month_usd, "month", month, MONTH_TTL_S),
                (total_usd, "total", 0.0, 0),
            ):
                for key_id, usd in self._roll_up(spent.items()).items():
                    writes.append((spend_key(prefix, key_id, period, start), usd, ttl))

            async def write(client: Any) -> None:
                pipe = client.pipeline(transaction=True)
                for key, usd, ttl in writes:
                    pipe.set(key, repr(usd), ex=ttl or None)
                pipe.set(prefix + "seeded", link.process_id)
                pipe.delete(prefix + "seeding")
                await pipe.execute()

            await link.run(write)
            log.info("redis: spend counters seeded from the usage log", extra={"counters": len(writes)})
        except RedisDown:
            pass


def _set_headers(headers: dict[str, str], kind: str, limit: int, remaining: float, reset_s: float) -> None:
    headers[f"x-ratelimit-limit-{kind}"] = str(limit)
    headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(remaining)))
    headers[f"x-ratelimit-reset-{kind}"] = _duration(reset_s)
