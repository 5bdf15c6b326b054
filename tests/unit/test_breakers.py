from __future__ import annotations

import time

from llmproxy.context import Attempt
from llmproxy.breakers import CLOSED, HALF_OPEN, OPEN, Health


def fail(provider: str = "p", **kw: object) -> Attempt:
    return Attempt(provider, "m", 503, retryable=True, **kw)


def test_breaker_opens_after_consecutive_failures_then_half_opens_and_closes() -> None:
    h = Health(failures=3, cooldown_s=0.2)
    h.observe([fail(), fail()])
    assert h.stats() == {"p": CLOSED}
    h.observe([fail()])
    assert h.stats() == {"p": OPEN} and not h.available("p")
    time.sleep(0.25)
    assert h.stats() == {"p": HALF_OPEN} and h.available("p")
    h.begin("p")  # the one trial request
    assert not h.available("p")  # others wait while it runs
    h.observe([fail()])  # the trial failed: open again
    assert h.stats() == {"p": OPEN}
    time.sleep(0.25)
    h.begin("p")
    h.observe([Attempt("p", "m", 200, ms=50)])
    assert h.stats() == {"p": CLOSED}


def test_non_retryable_errors_do_not_count() -> None:
    h = Health(failures=1)
    h.observe([Attempt("p", "m", 400, retryable=False)])
    assert h.available("p")


def test_retry_after_opens_for_that_long() -> None:
    h = Health(failures=99, cooldown_s=60)
    h.observe([Attempt("p", "m", 429, retryable=True, retry_after_s=0.1)])
    assert not h.available("p")
    time.sleep(0.15)
    assert h.available("p")


def test_latency_is_an_ewma() -> None:
    h = Health(alpha=0.5)
    h.observe([Attempt("p", "m", 200, ms=100)])
    h.observe([Attempt("p", "m", 200, ms=300)])
    assert abs(h.latency_s["m"] - 0.2) < 1e-9


def test_a_trial_that_never_reports_expires() -> None:
    h = Health(failures=1, cooldown_s=0.1)
    h.observe([fail()])
    time.sleep(0.12)
    h.begin("p")  # the trial request's client leaves: nothing is observed
    assert not h.available("p")
    time.sleep(0.12)
    assert h.stats() == {"p": HALF_OPEN}  # another trial may go


def test_a_callers_error_on_the_trial_closes_the_breaker() -> None:
    h = Health(failures=1, cooldown_s=0.1)
    h.observe([fail()])
    time.sleep(0.12)
    h.begin("p")
    h.observe([Attempt("p", "m", 400, retryable=False)])
    assert h.stats() == {"p": CLOSED}


def test_latency_map_is_bounded() -> None:
    from llmproxy.breakers import MAX_MODELS

    h = Health()
    for i in range(MAX_MODELS + 50):
        h.observe([Attempt("p", f"m{i}", 200, ms=1)])
    assert len(h.latency_s) == MAX_MODELS and "m0" not in h.latency_s
