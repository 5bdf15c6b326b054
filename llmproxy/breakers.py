"""Provider health as the router sees it: a circuit breaker per provider and an exponentially
weighted latency per model, both learned from live traffic (in memory). With Redis configured a
breaker that opens (a retry-after hold included) is announced to the deployment's other processes
(`on_open`), which hold that provider off as long (`hold`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .config import ProviderSettings
from .context import Attempt
from .registry import ModelEntry

Candidate = tuple[ProviderSettings, ModelEntry]
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


MAX_MODELS = 1000  # latency entries kept; ad-hoc model names from clients must not grow it forever


@dataclass(slots=True)
class Breaker:
    failures: int = 0  # consecutive retryable failures
    open_until: float = 0.0  # monotonic time; 0 when closed
    trial_until: float = 0.0  # a half-open trial is under way until then (it may never report)

    def state(self, now: float) -> str:
        if self.open_until == 0.0:
            return CLOSED
        return OPEN if now < self.open_until or now < self.trial_until else HALF_OPEN


class Health:
    def __init__(self, *, failures: int = 5, cooldown_s: float = 30.0, alpha: float = 0.2) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.alpha = alpha
        self.breakers: dict[str, Breaker] = {}
        self.latency_s: dict[str, float] = {}  # model id -> EWMA of time to first token
        self.on_open: Callable[[str, float], None] | None = None  # (provider, seconds): tell the others

    def available(self, provider: str, now: float | None = None) -> bool:
        breaker = self.breakers.get(provider)
        if breaker is None:
            return True
        return breaker.state(time.monotonic() if now is None else now) != OPEN

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """Candidates whose provider's breaker is open go last: still tried if nothing else works."""
        if not self.breakers:
            return list(candidates)
        now = time.monotonic()
        good = [c for c in candidates if self.available(c[0].name, now)]
        return good + [c for c in candidates if not self.available(c[0].name, now)]

    def begin(self, provider: str) -> None:
        """A request is about to go to `provider`: a half-open breaker lets this one through alone."""
        breaker = self.breakers.get(provider)
        if breaker is not None:
            now = time.monotonic()
            if breaker.state(now) == HALF_OPEN:
                breaker.trial_until = now + self.cooldown_s

    def observe(self, attempts: Iterable[Attempt]) -> None:
        now = time.monotonic()
        for attempt in attempts:
            breaker = self.breakers.get(attempt.provider)
            if attempt.status < 400 or not attempt.retryable:
                # An answer, or the caller's own mistake: either way the provider is up.
                if breaker is not None:
                    breaker.failures, breaker.open_until, breaker.trial_until = 0, 0.0, 0.0
                if attempt.status < 400:
                    self._latency(attempt.model, attempt.ms / 1000.0)
                continue
            if breaker is None:
                breaker = self.breakers[attempt.provider] = Breaker()
            breaker.failures += 1
            breaker.trial_until = 0.0
            was_open_until = breaker.open_until
            if attempt.retry_after_s:
                # The provider said when to come back: believe it, even for a single 429.
                breaker.open_until = max(breaker.open_until, now + attempt.retry_after_s)
            elif breaker.failures >= self.failures or breaker.open_until:
                breaker.open_until = now + self.cooldown_s
            if self.on_open is not None and breaker.open_until > max(was_open_until, now) + 0.5:
                self.on_open(attempt.provider, breaker.open_until - now)

    def hold(self, provider: str, seconds: float) -> None:
        """Another process opened this provider's breaker for `seconds`: open it here as long."""
        breaker = self.breakers.get(provider)
        if breaker is None:
            breaker = self.breakers[provider] = Breaker()
        breaker.failures = max(breaker.failures, self.failures)
        breaker.trial_until = 0.0
        breaker.open_until = max(breaker.open_until, time.monotonic() + max(0.0, min(seconds, 3600.0)))

    def _latency(self, model: str, sample: float) -> None:
        old = self.latency_s.get(model)
        if old is None and len(self.latency_s) >= MAX_MODELS:
            self.latency_s.pop(next(iter(self.latency_s)))  # forget the oldest-seen model
        self.latency_s[model] = sample if old is None else old + self.alpha * (sample - old)

    def stats(self) -> dict[str, str]:
        """Each provider's breaker state (closed, open or half_open); providers never failed are absent."""
        now = time.monotonic()
        return {name: b.state(now) for name, b in self.breakers.items()}
