"""Rate limits and budgets: requests/min and tokens/min per key, spend caps, and OpenAI-style
x-ratelimit-* headers.

Limits are sliding 60-second windows held in memory: a log of request times, and a log of token
amounts whose entries are corrected once a response reports its real usage. Checking and
reserving happen with no await in between, so concurrent requests on the event loop can never
overshoot a limit. Spend per key is loaded from the usage log at startup and kept as a running
total by the record stage, so a budget check never reads the database.

A key made by another (user) key is charged up the chain: its spend counts against its own
budget and against the budget of every key above it, so a key that has used its budget cannot
mint a fresh key and spend again. A key's spend here is its own plus its descendants'.

One process holds these counters. Several processes share them through Redis instead
(ratelimit_shared.py); `llmproxy serve --workers N` refuses N > 1 without it.
"""

from __future__ import annotations

import calendar
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .context import BYTES_PER_TOKEN, Principal, RequestContext
from .errors import QuotaExceeded, RateLimited

WINDOW_S = 60.0
MAX_CHAIN = 1000  # ancestors followed at most (a guard against a cycle in hand-edited data)


@dataclass(slots=True)
class _Event:
    """One request, or one request's tokens, in a window. `amount` of a token reservation is the
    up-front estimate until the record stage replaces it with the real usage."""

    at: float  # time.monotonic()
    amount: float


class _Window:
    """Events of the last 60 s and their running sum."""

    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[_Event] = deque()
        self.total = 0.0

    def expire(self, now: float) -> None:
        events, edge = self.events, now - WINDOW_S
        while events and events[0].at <= edge:
            self.total -= events.popleft().amount


@dataclass(slots=True)
class KeySpend:
    """One key's running spend in USD; `day_start` / `month_start` say which day and month the
    counts belong to (a count of an earlier period is reset when next read)."""

    day_start: float
    day_usd: float
    month_start: float
    month_usd: float
    total_usd: float


class Spend:
    """Running spend per key for the current UTC day, the current month, and in total."""

    def __init__(self) -> None:
        self._by_key: dict[str, KeySpend] = {}
        self._day = self._month = 0.0
        self._next_boundary = 0.0

    def load(
        self, day: Mapping[str, float], month: Mapping[str, float], total: Mapping[str, float], now: float
    ) -> None:
        self._roll(now)
        self._by_key = {
            k: KeySpend(self._day, day.get(k, 0.0), self._month, month.get(k, 0.0), v) for k, v in total.items()
        }

    def add(self, key_id: str, usd: float, now: float) -> None:
        entry = self._current(key_id, now)
        entry.day_usd += usd
        entry.month_usd += usd
        entry.total_usd += usd

    def spent(self, key_id: str, period: str, now: float) -> float:
        entry = self._current(key_id, now)
        return entry.day_usd if period == "day" else entry.month_usd if period == "month" else entry.total_usd

    def _current(self, key_id: str, now: float) -> KeySpend:
        if now >= self._next_boundary:
            self._roll(now)
        entry = self._by_key.get(key_id)
        if entry is None:
            entry = self._by_key[key_id] = KeySpend(self._day, 0.0, self._month, 0.0, 0.0)
        if entry.day_start != self._day:
            entry.day_start, entry.day_usd = self._day, 0.0
        if entry.month_start != self._month:
            entry.month_start, entry.month_usd = self._month, 0.0
        return entry

    def _roll(self, now: float) -> None:
        self._day, self._month = period_starts(now)
        self._next_boundary = self._day + 86400.0


def period_starts(now: float) -> tuple[float, float]:
    """The UTC start of the day and of the month that `now` falls in."""
    t = time.gmtime(now)
    return float(now - now % 86400), float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


class KeyBudget(NamedTuple):
    """What the budget check needs of one key: who made it, and its own budget."""

    parent_id: str | None
    budget_usd: float | None
    budget_period: str


class Limiter:
    def __init__(self) -> None:
        self._requests: dict[str, _Window] = {}
        self._tokens: dict[str, _Window] = {}
        self._next_sweep = 0.0
        self.spend = Spend()
        # key_id -> the keys above it, nearest first, as (key_id, budget_usd, budget_period);
        # only keys made by a key appear
        self._ancestors: dict[str, tuple[tuple[str, float | None, str], ...]] = {}

    def set_keys(self, keys: Mapping[str, KeyBudget]) -> None:
        """The chains of keys made by keys, from a fresh snapshot of the keys table."""
        ancestors: dict[str, tuple[tuple[str, float | None, str], ...]] = {}
        for key_id, key in keys.items():
            chain: list[tuple[str, float | None, str]] = []
            parent_id = key.parent_id
            while parent_id is not None and parent_id != key_id and len(chain) < MAX_CHAIN:
                parent = keys.get(parent_id)
                if parent is None:
                    break
                chain.append((parent_id, parent.budget_usd, parent.budget_period))
                parent_id = parent.parent_id
            if chain:
                ancestors[key_id] = tuple(chain)
        self._ancestors = ancestors

    def load_spend(
        self, day: Mapping[str, float], month: Mapping[str, float], total: Mapping[str, float], now: float
    ) -> None:
        """Each key's spend from the usage log (its own), rolled up to the keys above it."""
        self.spend.load(self._roll_up(day.items()), self._roll_up(month.items()), self._roll_up(total.items()), now)

    def _roll_up(self, spent: Iterable[tuple[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key_id, usd in spent:
            out[key_id] = out.get(key_id, 0.0) + usd
            for ancestor_id, _, _ in self._ancestors.get(key_id, ()):
                out[ancestor_id] = out.get(ancestor_id, 0.0) + usd
        return out

    def admit(self, ctx: RequestContext, body_bytes: int) -> None:
        """The ratelimit stage: refuse a key over budget (insufficient_quota) or over its limits
        (rate_limit_exceeded), else reserve one request and the prompt's estimated tokens."""
        p = ctx.principal
        if p is None:
            return
        if p.budget_usd is not None and p.key_id is not None:
            spent = self.spend.spent(p.key_id, p.budget_period, time.time())
            if spent >= p.budget_usd:
                raise QuotaExceeded(
                    f"this key has used its budget of ${p.budget_usd:.2f}{_period(p.budget_period)} "
                    f"(spent ${spent:.4f}); ask an admin to raise it"
                )
        if self._ancestors and p.key_id in self._ancestors:
            self._check_ancestors(p.key_id)
        if p.rpm is None and p.tpm is None:
            return
        ident = _ident(p)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        headers = ctx.response_headers
        requests = tokens = None
        if p.rpm is not None:
            requests = self._requests.get(ident) or self._requests.setdefault(ident, _Window())
            requests.expire(now)
            if requests.total >= p.rpm:
                _headers(headers, "requests", p.rpm, 0, requests, now)
                wait = requests.events[0].at + WINDOW_S - now if requests.events else WINDOW_S
                raise RateLimited(
                    f"rate limit reached: {p.rpm} requests per minute for this key; try again in {_duration(wait)}",
                    headers={"retry-after": str(max(1, math.ceil(wait)))},
                )
        estimate = float(body_bytes // BYTES_PER_TOKEN)
        if p.tpm is not None:
            tokens = self._tokens.get(ident) or self._tokens.setdefault(ident, _Window())
            tokens.expire(now)
            if tokens.total + estimate > p.tpm:
                if requests is not None and p.rpm is not None:  # one implies the other; the check tells mypy
                    _headers(headers, "requests", p.rpm, p.rpm - requests.total, requests, now)
                _headers(headers, "tokens", p.tpm, max(0.0, p.tpm - tokens.total), tokens, now)
                if estimate > p.tpm:
                    raise RateLimited(
                        f"this request (~{int(estimate)} tokens) is larger than the key's limit of "
                        f"{p.tpm} tokens per minute"
                    )
                wait = _time_to_fit(tokens, p.tpm - estimate, now)
                raise RateLimited(
                    f"rate limit reached: {p.tpm} tokens per minute for this key; try again in {_duration(wait)}",
                    headers={"retry-after": str(max(1, math.ceil(wait)))},
                )
        if requests is not None and p.rpm is not None:
            requests.events.append(_Event(now, 1.0))
            requests.total += 1.0
            _headers(headers, "requests", p.rpm, p.rpm - requests.total, requests, now)
        if tokens is not None and p.tpm is not None:
            entry = _Event(now, estimate)
            tokens.events.append(entry)
            tokens.total += estimate
            ctx.rate_hold = (tokens, entry)
            _headers(headers, "tokens", p.tpm, max(0.0, p.tpm - tokens.total), tokens, now)

    async def confirm(self, ctx: RequestContext) -> None:
        """The second half of a check that `admit` left pending in ctx.admission: only the shared
        limiter (ratelimit_shared.py) defers its decision; this one decides in admit."""
        ctx.admission = None

    def _check_ancestors(self, key_id: str) -> None:
        """QuotaExceeded when a key above this one has used its budget (its keys' spend included)."""
        now = time.time()
        for ancestor_id, usd, period in self._ancestors[key_id]:
            if usd is not None:
                spent = self.spend.spent(ancestor_id, period, now)
                if spent >= usd:
                    raise QuotaExceeded(
                        f"this key was made from key {ancestor_id}, which has used its budget of "
                        f"${usd:.2f}{_period(period)} (spent ${spent:.4f}, its keys included); "
                        "ask an admin to raise it"
                    )

    def _sweep(self, now: float) -> None:
        """Drop the windows that have emptied, once a minute: one per key or JWT subject seen would
        otherwise stay for good. A reservation older than the window no longer counts either way."""
        for table in (self._requests, self._tokens):
            for ident in [k for k, w in table.items() if not w.events or w.events[-1].at <= now - WINDOW_S]:
                del table[ident]
        self._next_sweep = now + WINDOW_S

    def settle(self, ctx: RequestContext) -> None:
        """In the record stage: swap the token estimate for the real usage, and add the cost to the
        key's spend."""
        hold = ctx.rate_hold
        if hold is not None:
            ctx.rate_hold = None
            window, entry = hold
            usage = ctx.usage
            if usage is not None and isinstance(usage.get("total_tokens"), int):
                actual = float(usage["total_tokens"])
            elif ctx.status != 200:
                actual = 0.0  # refused or failed before any tokens were spent
            else:
                actual = entry.amount
            if window.events and window.events[0].at <= entry.at:  # still inside the window
                window.total += actual - entry.amount
                entry.amount = actual
        p = ctx.principal
        if ctx.cost_usd and p is not None and p.key_id is not None:
            now = time.time()
            self.spend.add(p.key_id, ctx.cost_usd, now)
            if self._ancestors:
                for ancestor_id, _, _ in self._ancestors.get(p.key_id, ()):
                    self.spend.add(ancestor_id, ctx.cost_usd, now)


def _period(budget_period: str) -> str:
    return {"day": " today", "month": " this month"}.get(budget_period, "")


def _ident(p: Principal) -> str:
    return p.key_id or f"{p.kind}:{p.user}"


def _headers(headers: dict[str, str], kind: str, limit: int, remaining: float, window: _Window, now: float) -> None:
    headers[f"x-ratelimit-limit-{kind}"] = str(limit)
    headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(remaining)))
    # OpenAI's meaning: the time until the limit is back to its initial (full) state.
    reset = window.events[-1].at + WINDOW_S - now if window.events else 0.0
    headers[f"x-ratelimit-reset-{kind}"] = _duration(reset)


def _time_to_fit(window: _Window, room: float, now: float) -> float:
    """How long until the window's total drops to `room`."""
    total = window.total
    for event in window.events:
        total -= event.amount
        if total <= room:
            return event.at + WINDOW_S - now
    return WINDOW_S


def _duration(seconds: float) -> str:
    """OpenAI's format: 20ms, 1.5s, 6m0s."""
    if seconds < 1.0:
        return f"{max(0, int(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"
