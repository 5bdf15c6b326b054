"""Upstream calls' whole-call deadlines, kept by one timer instead of one per call.

The HTTP client's own total timeout (base.py) starts a timer for every request (uvloop's `call_at`:
about 2 us in a tight loop, more in the serving process) and cancels it at the end; under callgrind
that was 23,000 of the gateway's 1,000,000 instructions per request. Here each call in flight is an
entry in a dict, and one timer, running only while a call is in flight, ends those past their
time, 4 times per timeout (at most once a second): a call may run up to a quarter of its timeout
(at most 1 s) past it. Ending a call cancels the task that waits on it; the transport tells that
cancellation from any other by the deadline's `expired` flag and turns it into a 504.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..running import TaskFinder

MAX_TICK_S = 1.0


class Deadline:
    """One call in flight: the task waiting on it, and when it must be done by."""

    __slots__ = ("task", "at", "tick", "expired")

    def __init__(self, task: asyncio.Task[Any], at: float, tick: float) -> None:
        self.task, self.at, self.tick = task, at, tick
        self.expired = False

    def passed(self) -> bool:
        """On a CancelledError: was it this deadline's? If so the cancellation is taken back, so
        that the task goes on (to the caller's timeout error, and maybe the next candidate)."""
        if not self.expired:
            return False
        self.task.uncancel()
        return True


class Deadlines:
    """The calls in flight of one transport, and the timer that ends those past their deadline."""

    def __init__(self) -> None:
        self._open: dict[Deadline, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tick = MAX_TICK_S
        self._tasks = TaskFinder()

    def start(self, timeout_s: float) -> Deadline:
        """A deadline `timeout_s` from now for the current task's call; end it with `end`."""
        task = self._tasks.current()
        tick = min(MAX_TICK_S, timeout_s / 4)
        deadline = Deadline(task, time.monotonic() + timeout_s, tick)
        self._open[deadline] = None
        if self._timer is None or tick < self._tick:
            self._schedule(tick)
        return deadline

    def end(self, deadline: Deadline) -> None:
        self._open.pop(deadline, None)  # (gone already if it expired)

    def _schedule(self, tick: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._tick = tick
        self._timer = (self._tasks.loop or asyncio.get_running_loop()).call_later(tick, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        for deadline in [d for d in self._open if d.at <= now]:
            del self._open[deadline]
            deadline.expired = True
            deadline.task.cancel()
        if self._open:
            self._schedule(min(d.tick for d in self._open))
