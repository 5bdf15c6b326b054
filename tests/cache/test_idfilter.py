"""The id filter of the cache's disk and shared tiers: fixed memory, never a false "no"."""

from __future__ import annotations

import asyncio
import random

from llmproxy.idfilter import IdFilter, disk_index_bits


def test_every_added_id_is_found_and_few_others_are() -> None:
    index = IdFilter(disk_index_bits(64 * 1024 * 1024))  # 64 MiB of disk: a 1 Mbit (128 KiB) set
    rng = random.Random(7)
    added = [rng.getrandbits(64) - 2**63 for _ in range(20_000)]
    for id_ in added:
        index.add(id_)
    assert all(id_ in index for id_ in added)
    others = [rng.getrandbits(64) - 2**63 for _ in range(20_000)]
    wrong = sum(id_ in index for id_ in others)
    assert wrong / len(others) < 0.005  # 20k ids in 1M bits, two bits each: about 0.15% wrong "maybe"s


def test_memory_does_not_grow_with_the_number_of_entries() -> None:
    index = IdFilter(disk_index_bits(1024**3))
    size = len(index._bits)
    for id_ in range(200_000):
        index.add(id_ * 7919)
    assert len(index._bits) == size <= 4 * 1024 * 1024


async def test_rebuild_keeps_only_the_given_ids_and_those_added_meanwhile() -> None:
    index = IdFilter(disk_index_bits(64 * 1024 * 1024))  # 1 Mbit: the ids below do not wrap around
    index.add(1)

    async def add_while_rebuilding() -> None:
        await asyncio.sleep(0)
        index.add(3)

    ids = range(100, 60_100)  # long enough to yield to the loop on the way
    await asyncio.gather(index.rebuild(ids), add_while_rebuilding())
    assert 3 in index and 100 in index and 60_099 in index
    assert 1 not in index and 60_100 not in index


def test_a_rebuild_in_steps_keeps_what_is_added_meanwhile_and_a_later_one_supersedes_it() -> None:
    index = IdFilter(1 << 20)
    index.add(1)
    first = index.begin()
    index.fill(first, 100)
    second = index.begin()  # supersedes the first
    index.fill(second, 200)
    index.add(3)  # goes to the current set and to the rebuild under way
    assert not index.commit(first)
    assert 1 in index and 100 not in index  # nothing changed yet
    assert index.commit(second)
    assert 200 in index and 3 in index and 1 not in index and 100 not in index
    third = index.begin()
    index.abandon()
    assert not index.commit(third) and 200 in index
