"""The task that is running now, found without a system call.

On Python 3.11 `asyncio.get_running_loop()`, and so `asyncio.current_task()` without a loop, asks
the OS for the process id on every call (to notice a fork): a system call per request for a value
that never changes while the gateway serves. A `TaskFinder` asks for the loop once.
"""

from __future__ import annotations

import asyncio
from typing import Any


class TaskFinder:
    """For an owner that lives on one event loop (an app, a transport and its HTTP session)."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def current(self) -> asyncio.Task[Any]:
        """The running task; must be called from one."""
        task = asyncio.current_task(self.loop) if self.loop is not None else None
        if task is None:  # the first call, or the owner moved to another loop (tests)
            self.loop = asyncio.get_running_loop()
            task = asyncio.current_task(self.loop)
        assert task is not None, "called outside a task"
        return task
