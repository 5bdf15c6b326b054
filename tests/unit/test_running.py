"""TaskFinder: the running task, on the loop it remembers or, after a move, on the new one."""

from __future__ import annotations

import asyncio

import pytest

from llmproxy.running import TaskFinder


def test_it_finds_the_running_task_on_each_loop_it_is_used_on() -> None:
    finder = TaskFinder()

    async def both() -> None:
        async def one() -> asyncio.Task[object] | None:
            return finder.current()

        first, second = asyncio.create_task(one()), asyncio.create_task(one())
        assert await first is first and await second is second
        assert finder.loop is asyncio.get_running_loop()

    asyncio.run(both())
    remembered = finder.loop
    asyncio.run(both())  # a new loop: the remembered one no longer runs a task, so it asks again
    assert finder.loop is not remembered


def test_outside_a_task_it_refuses() -> None:
    with pytest.raises(RuntimeError):  # no running loop at all
        TaskFinder().current()
