"""The upstream calls' deadlines: one timer ends the calls past their time, and only those."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmproxy.providers.deadlines import Deadlines


async def call(deadlines: Deadlines, timeout_s: float, takes_s: float) -> str:
    """What the transport does around an upstream call."""
    deadline = deadlines.start(timeout_s)
    try:
        await asyncio.sleep(takes_s)
        return "answered"
    except asyncio.CancelledError:
        if not deadline.passed():
            raise
        return "timed out"
    finally:
        deadlines.end(deadline)


async def test_a_call_past_its_deadline_is_ended_and_its_task_goes_on() -> None:
    deadlines = Deadlines()
    started = time.monotonic()
    assert await call(deadlines, 0.2, 30) == "timed out"
    assert 0.2 <= time.monotonic() - started < 0.2 * 1.25 + 0.2  # a quarter late at most, plus slack
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation was taken back
    await asyncio.sleep(0)  # and nothing is left pending for the task
    assert deadlines._timer is None  # nothing in flight: no timer


async def test_calls_within_their_time_are_left_alone() -> None:
    deadlines = Deadlines()
    results = await asyncio.gather(*(call(deadlines, 0.4, 0.05) for _ in range(20)))
    assert results == ["answered"] * 20
    await asyncio.sleep(0.3)  # past the sweep that would have found them
    assert deadlines._timer is None


async def test_a_shorter_timeout_is_kept_even_while_a_longer_one_runs() -> None:
    deadlines = Deadlines()
    long_call = asyncio.ensure_future(call(deadlines, 20, 0.6))
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await call(deadlines, 0.2, 30) == "timed out"
    assert time.monotonic() - started < 0.45  # not the long call's one-second tick
    assert await long_call == "answered"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()
    task = asyncio.ensure_future(call(deadlines, 5, 30))
    await asyncio.sleep(0.05)
    task.cancel()  # the client left, say
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._open
