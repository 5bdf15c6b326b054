"""The shared-state parts on a real redis-server, without gateways: breakers announced to another
process, the registry lock held by one process at a time, the heartbeat's live count, and a link
that goes down at once and comes back by itself, and a close that ends both background loops."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmproxy.breakers import OPEN, Health
from llmproxy.config import RedisSettings, Secret
from llmproxy.context import Attempt, RequestContext
from llmproxy.shared.deployment import Deployment
from llmproxy.idfilter import entry_id
from llmproxy.shared.redis_link import RedisDown, RedisLink
from tests.scale.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def settings(server: RedisServer) -> RedisSettings:
    return RedisSettings(url=Secret(server.url), heartbeat_s=0.1, timeout_s=0.5)


async def wait_until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(3.0):
        while not check():  # noqa: ASYNC110 - polling state that another task's I/O changes
            await asyncio.sleep(0.02)


async def test_a_breaker_opened_in_one_process_holds_the_provider_off_in_the_other(redis_server: RedisServer) -> None:
    one, other = await Deployment.open(settings(redis_server)), await Deployment.open(settings(redis_server))
    assert one is not None and other is not None
    try:
        here, there = Health(failures=1, cooldown_s=30), Health(failures=1, cooldown_s=30)
        here.on_open = lambda provider, seconds: one.notifier.publish("breaker", provider=provider, seconds=seconds)
        other.notifier.on(
            "breaker", lambda m: there.hold(m["provider"], m["seconds"]) if m["kind"] == "breaker" else None
        )
        await asyncio.sleep(0.2)  # both subscribed
        here.observe([Attempt("openai", "gpt-4o-mini", 429, retryable=True, retry_after_s=20.0)])
        assert here.stats() == {"openai": OPEN}
        await wait_until(lambda: there.stats().get("openai") == OPEN)
        assert not there.available("openai")
    finally:
        await one.close()
        await other.close()


async def test_the_registry_lock_is_held_by_one_process_at_a_time(redis_server: RedisServer) -> None:
    one, other = await Deployment.open(settings(redis_server)), await Deployment.open(settings(redis_server))
    assert one is not None and other is not None
    try:
        async with one.registry_lock() as first:
            async with other.registry_lock() as second:
                assert first is True and second is False
        async with other.registry_lock() as again:
            assert again is True  # released
        assert one.link.live_processes == 2 or other.link.live_processes == 2
    finally:
        await one.close()
        await other.close()


async def test_the_link_goes_down_at_once_and_comes_back_by_itself(redis_server: RedisServer) -> None:
    deployment = await Deployment.open(settings(redis_server))
    assert deployment is not None
    link = deployment.link
    try:
        assert link.up
        redis_server.stop()
        with pytest.raises(RedisDown):
            await link.run(lambda client: client.ping())
        assert not link.up
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisDown):  # no wait at all while down
            await link.run(lambda client: client.ping())
        assert asyncio.get_running_loop().time() - started < 0.01
        redis_server.start()
        await wait_until(lambda: link.up)
        assert await link.run(lambda client: client.ping())
    finally:
        await deployment.close()


async def test_the_cache_tier_reads_redis_only_for_ids_some_process_stored(redis_server: RedisServer) -> None:
    """Each process's filter of the shared tier's ids: what a scan found at the start, what it
    stores itself, what the others announce; anything else is a miss without a read."""
    early = await Deployment.open(settings(redis_server))
    assert early is not None
    before = uuid.uuid4().hex  # stored before the others start: their scans find it
    early.cache.put(before, entry_id(before), b"entry stored early", 60)
    await asyncio.sleep(0.1)
    await early.close()
    one, other = await Deployment.open(settings(redis_server)), await Deployment.open(settings(redis_server))
    assert one is not None and other is not None
    try:
        await wait_until(lambda: one.cache.trusted and other.cache.trusted)
        ctx = RequestContext("r", {})
        assert one.cache.may_hold(entry_id(before))
        assert await one.cache.get(before, ctx) == b"entry stored early"
        never = uuid.uuid4().hex
        assert not one.cache.may_hold(entry_id(never))  # no read at all
        assert one.cache.stats()["reads_skipped"] == 1
        mine = uuid.uuid4().hex
        one.cache.put(mine, entry_id(mine), b"stored here", 60)
        assert one.cache.may_hold(entry_id(mine))  # at once, for its own
        theirs = uuid.uuid4().hex
        other.cache.put(theirs, entry_id(theirs), b"stored there", 60)
        await wait_until(lambda: one.cache.may_hold(entry_id(theirs)))  # announced within ANNOUNCE_S
        assert await one.cache.get(theirs, ctx) == b"stored there"  # the SET went before the announcement
        one.cache.subscription(False)  # announcements may be missed from now on
        assert one.cache.may_hold(entry_id(uuid.uuid4().hex)) and not one.cache.trusted
        one.cache.subscription(True)  # back: a new scan, then trusted again
        await wait_until(lambda: one.cache.trusted)
        assert all(one.cache.may_hold(entry_id(k)) for k in (before, mine, theirs))
        assert not one.cache.may_hold(entry_id(uuid.uuid4().hex))
    finally:
        await one.close()
        await other.close()


async def test_the_cache_filter_is_not_trusted_while_redis_is_away(redis_server: RedisServer) -> None:
    deployment = await Deployment.open(settings(redis_server))
    assert deployment is not None
    tier = deployment.cache
    try:
        await wait_until(lambda: tier.trusted)
        redis_server.stop()
        await wait_until(lambda: not tier.trusted)  # the subscription is lost: announcements too
        redis_server.start()
        await wait_until(lambda: tier.trusted)  # subscribed again and scanned
    finally:
        await deployment.close()


class LosesOneCancellation:
    """A call that loses the first cancellation it gets, going on as if none had come (a later one
    goes through)."""

    def __init__(self) -> None:
        self.lost = 0

    async def __call__(self, *args: object, **kwargs: object) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.lost:
                raise
            self.lost += 1


async def test_closing_ends_the_heartbeat_and_the_subscription_even_if_a_cancellation_is_lost(
    redis_server: RedisServer,
) -> None:
    class LosingPubSub:
        async def subscribe(self, channel: str) -> None:
            pass

        get_message = LosesOneCancellation()

        async def aclose(self) -> None:
            pass

    deployment = Deployment(RedisLink(settings(redis_server)))
    await deployment.link.start()
    # Both loops wait in calls that lose the first cancellation they get.
    beat = deployment.link._beat = LosesOneCancellation()  # type: ignore[method-assign]
    deployment.notifier._client.pubsub = lambda **_: LosingPubSub()  # type: ignore[method-assign]
    await deployment.notifier.start()
    await wait_until(lambda: deployment.cache.trusted)  # the listener is in get_message
    await asyncio.sleep(0.3)  # the heartbeat is in a beat
    closing = asyncio.ensure_future(deployment.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "close() waits for ever on a loop that lost its cancellation"
    assert beat.lost == 1 and LosingPubSub.get_message.lost == 1  # both lost the cancellation, and ended all the same
