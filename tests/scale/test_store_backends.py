"""The same behaviour from every storage backend: each test runs once on the SQLite file and once on
a real throwaway PostgreSQL server, through `open_stores` (what the gateway and the CLI call), and
asserts the same answers. Nothing above store/ can tell the two apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmproxy.config import DatabaseSettings, Secret, Settings
from llmproxy.doors.responses_state import StoredResponses
from llmproxy.store.backends import Stores, open_stores
from llmproxy.store.records import StoredResponse, TooManyKeys, Window
from tests.observability.test_usage_store import DAY, T0, rounded, row, sample


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=Secret(url) if url else None))


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    opened = await open_stores(settings)
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_backend_is_the_configured_one(stores: Stores, settings: Settings) -> None:
    assert stores.backend == ("postgresql" if settings.database.url else "sqlite")
    assert await stores.ping()


# --- usage ------------------------------------------------------------------------------------------


async def test_rollup_is_kept_with_each_batch_and_matches_the_log(stores: Stores) -> None:
    rows = sample()
    await stores.usage.insert(rows[:17])
    await stores.usage.insert(rows[17:])
    for groups in ((), ("day",), ("day", "key", "model", "provider"), ("user",), ("model",)):
        from_rollup, source = await stores.usage.aggregate(group_by=groups, since=T0, until=T0 + 3 * DAY)
        assert source == "rollup"
        from_log, source = await stores.usage.aggregate(group_by=groups, since=T0, until=T0 + 3 * DAY - 0.5)
        assert source == "log"
        assert rounded(from_rollup) == rounded(from_log)
    (total,), _ = await stores.usage.aggregate(group_by=())
    assert total["requests"] == len(rows) == 39
    assert total["errors"] == 3 and total["cache_hits"] == 3 and total["unpriced"] == 3
    assert total["cost_usd"] == pytest.approx(3 * sum(0.001 * (i + 1) for i in range(10)))
    assert total["saved_usd"] == pytest.approx(3 * 0.004)


async def test_time_filters_key_user_and_days(stores: Stores) -> None:
    await stores.usage.insert(sample())
    by_day, _ = await stores.usage.aggregate(group_by=("day",), since=T0 + DAY, until=T0 + 2 * DAY)
    assert len(by_day) == 1 and by_day[0]["requests"] == 13 and by_day[0]["day"].count("-") == 2
    hour, source = await stores.usage.aggregate(group_by=(), since=T0, until=T0 + 3600)
    assert source == "log" and hour[0]["requests"] == 6
    k2, _ = await stores.usage.aggregate(group_by=("key",), key_id="k2")
    assert [r["key_id"] for r in k2] == ["k2"] and k2[0]["requests"] == 15
    bob, _ = await stores.usage.aggregate(group_by=("user", "key"), user="bob")
    assert [(r["user"], r["key_id"]) for r in bob] == [("bob", "k2")]
    assert (await stores.usage.aggregate(group_by=(), since=T0 + 10 * DAY))[0] == []
    with pytest.raises(ValueError):
        await stores.usage.aggregate(group_by=("prompt",))


async def test_spend_by_key_counts_from_the_start_of_the_day(stores: Stores) -> None:
    await stores.usage.insert(sample())
    per_day_k1 = sum(0.001 * (i + 1) for i in range(10) if i % 2)
    per_day_k2 = sum(0.001 * (i + 1) for i in range(10) if not i % 2)
    spend = await stores.usage.spend_by_key(T0 + DAY + 5000)
    assert spend == pytest.approx({"k1": 2 * per_day_k1, "k2": 2 * per_day_k2})


async def test_retention_deletes_old_rows_in_batches_and_keeps_the_rollup(stores: Stores) -> None:
    await stores.usage.insert([row(T0 + i) for i in range(1200)] + [row(T0 + 5 * DAY + i) for i in range(30)])
    before, _ = await stores.usage.aggregate(group_by=("day",))
    assert await stores.usage.delete_before(T0 + 2 * DAY, batch=500) == 1200
    (left,), _ = await stores.usage.aggregate(group_by=(), since=T0, until=T0 + 6 * DAY - 1)
    assert left["requests"] == 30
    assert (await stores.usage.aggregate(group_by=("day",)))[0] == before


async def test_overview_measures_and_nearest_rank_latency(stores: Stores) -> None:
    rows = [
        row(
            T0 + i,
            latency_ms=float(i + 1),
            model="m-a" if i < 60 else "m-b",
            provider="p1" if i < 60 else "p2",
            cost_usd=0.01,
        )
        for i in range(100)
    ]
    await stores.usage.insert(rows)
    window = Window(T0, T0 + 100)
    everything = (await stores.usage.overview("all", window))["all"]
    assert everything["requests"] == 100 and everything["cost_usd"] == pytest.approx(1.0)
    assert (everything["p50_ms"], everything["p99_ms"]) == (50.0, 99.0)
    models = await stores.usage.overview("model", window)
    assert set(models) == {("m-a", "p1"), ("m-b", "p2")}
    assert (models[("m-a", "p1")]["p50_ms"], models[("m-b", "p2")]["p99_ms"]) == (30.0, 100.0)
    buckets = await stores.usage.overview("bucket", window, bucket_s=50)
    assert {b: v["requests"] for b, v in buckets.items()} == {T0 // 50: 50, T0 // 50 + 1: 50}
    assert set(await stores.usage.overview("provider", window)) == {"p1", "p2"}
    assert (await stores.usage.overview("all", Window(T0, T0 + 100, key_id="nobody"))) == {}


async def test_auto_routed_splits_at_the_long_context_threshold(stores: Stores) -> None:
    await stores.usage.insert(
        [row(T0 + i, strategy="cost", prompt_tokens=100 * (i + 1), cost_usd=0.5) for i in range(4)]
        + [row(T0 + 9, strategy=None)]
    )
    sides = {side.long: side for side in await stores.usage.auto_routed(Window(T0, T0 + 60), 250)}
    assert (sides[False].requests, sides[True].requests) == (2, 2)
    assert sides[True].prompt_tokens == 700 and sides[True].cost_usd == pytest.approx(1.0)


async def test_concurrent_batches_from_two_processes_roll_up_exactly(stores: Stores, settings: Settings) -> None:
    other = await open_stores(settings)  # another process's stores on the same database
    try:
        batches = [
            [row(T0 + b * 1000 + i, request_id=f"{b}-{i}", key_id=f"k{i % 3}") for i in range(200)] for b in range(8)
        ]
        await asyncio.gather(*((stores if b % 2 else other).usage.insert(batch) for b, batch in enumerate(batches)))
        (whole,), _ = await stores.usage.aggregate(group_by=(), since=T0, until=T0 + DAY)
        (logged,), _ = await other.usage.aggregate(group_by=(), since=T0, until=T0 + DAY - 1)
        assert whole["requests"] == logged["requests"] == 1600
        assert whole["cost_usd"] == pytest.approx(logged["cost_usd"])
    finally:
        await other.close()


async def test_a_row_with_stray_types_still_lands(stores: Stores) -> None:
    await stores.usage.insert([row(T0, prompt_tokens=12.0, completion_tokens="7", status=200, attempts=1.0)])
    (total,), _ = await stores.usage.aggregate(group_by=())
    assert (total["requests"], total["prompt_tokens"], total["completion_tokens"]) == (1, 12, 7)


# --- keys, users, credentials, audit --------------------------------------------------------------------


async def test_keys_are_created_updated_rotated_and_revoked(stores: Stores) -> None:
    keys = stores.keys
    start = await keys.generation()
    await keys.insert_key(
        "admin",
        "k1",
        "h1",
        "sk-1",
        {"name": "one", "owner": "bob", "models": ("gpt-4o",), "rpm": 10, "budget_usd": 2.5, "metadata": {"team": "x"}},
    )
    record = await keys.key("k1")
    assert record is not None and record.public()["prefix"] == "sk-1"
    assert (record.models, record.rpm, record.budget_usd, record.metadata) == (("gpt-4o",), 10, 2.5, {"team": "x"})
    assert await keys.generation() > start
    assert await keys.update_key("admin", "k1", {"rpm": 20, "models": None})
    updated = await keys.key("k1")
    assert updated is not None and (updated.rpm, updated.models) == (20, None)
    with pytest.raises(LookupError):
        await keys.update_key("admin", "nope", {"rpm": 1})
    await keys.rotate_key("admin", "k1", "h2", "sk-2", 60.0)
    rotated = await keys.key("k1")
    assert rotated is not None and [s.hash for s in rotated.secrets if s.expires_at is None] == ["h2"]
    assert [s.hash for s in rotated.secrets if s.expires_at is not None] == ["h1"]
    await keys.revoke_key("admin", "k1")
    with pytest.raises(LookupError):
        await keys.revoke_key("admin", "k1")
    revoked = await keys.key("k1")
    assert revoked is not None and revoked.revoked_at is not None
    assert await keys.key("missing") is None
    assert [k.id for k in await keys.keys()] == ["k1"]


async def test_an_owner_cannot_hold_more_keys_than_allowed_even_when_asking_at_once(stores: Stores) -> None:
    results = await asyncio.gather(
        *(
            stores.keys.insert_key("admin", f"k{i}", f"h{i}", "sk", {"name": "n", "owner": "al"}, max_per_owner=3)
            for i in range(6)
        ),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 3
    assert all(isinstance(r, TooManyKeys) for r in results if r is not None)


async def test_users_and_their_keys(stores: Stores) -> None:
    keys = stores.keys
    await keys.insert_user("admin", "carol", "hash", "user")
    with pytest.raises(ValueError):
        await keys.insert_user("admin", "a#b", "hash", "user")
    await keys.update_user("admin", "carol", role="admin", disabled=True)
    (carol,) = await keys.users()
    assert (carol.name, carol.role, carol.disabled) == ("carol", "admin", True)
    await keys.insert_key("admin", "kc", "hc", "sk", {"name": "c", "owner": "carol"})
    assert await keys.delete_user("admin", "carol") == 1
    assert await keys.users() == []
    with pytest.raises(LookupError):
        await keys.delete_user("admin", "carol")
    entries = await keys.audit_entries(actor="admin")
    assert entries[0]["action"] == "users.delete" and entries[0]["detail"] == {"keys_revoked": 1}


async def test_credentials_are_kept_under_one_vault_key_and_reencrypted(stores: Stores) -> None:
    keys = stores.keys
    await keys.put_credential("admin", "openai", b"\x00cipher", "v1", "sk-...abcd")
    with pytest.raises(PermissionError):
        await keys.put_credential("admin", "anthropic", b"other", "v2", "x")
    (cred,) = await keys.credentials()
    assert (cred.provider, cred.ciphertext, cred.vault_key_id, cred.hint) == (
        "openai",
        b"\x00cipher",
        "v1",
        "sk-...abcd",
    )
    assert await keys.vault_key_id() == "v1"
    with pytest.raises(RuntimeError):
        await keys.reencrypt("admin", "v1", "v2", [("openai", b"new", cred.version + 1)])
    await keys.reencrypt("admin", "v1", "v2", [("openai", b"new", cred.version)])
    (moved,) = await keys.credentials()
    assert (moved.ciphertext, moved.vault_key_id, moved.version) == (b"new", "v2", cred.version)
    await keys.delete_credential("admin", "openai")
    with pytest.raises(LookupError):
        await keys.delete_credential("admin", "openai")


async def test_audit_log_and_jwt_namespacing(stores: Stores) -> None:
    keys = stores.keys
    await keys.audit("login:bob", "login")
    await keys.insert_key("jwt:dave", "kd", "hd", "sk", {"name": "d", "owner": "dave"})
    assert await keys.namespace_jwt_owners("https://idp") == 1
    assert await keys.namespace_jwt_owners("https://idp") == 0  # once per database
    record = await keys.key("kd")
    assert record is not None and record.owner == "https://idp#dave"
    recent: list[dict[str, Any]] = await keys.audit_entries(limit=10)
    assert [e["action"] for e in recent][-1] == "login"
    assert await keys.audit_entries(since=recent[0]["ts"] + 1) == []


# --- stored Responses API answers ------------------------------------------------------------------


def stored(rid: str, tenant: str = "key:a", age_s: float = 0, body: bytes = b"") -> StoredResponse:
    return StoredResponse(
        rid, tenant, time.time() - age_s, "m", b'{"id": "%s", "output": []}' % rid.encode() + body, b"[]"
    )


async def test_stored_responses_write_behind_tenants_delete_and_retention(stores: Stores) -> None:
    interval_s = 0.02
    store = stores.responses
    kept = StoredResponses(store, interval_s=interval_s, retention_days=1)
    kept.start()
    kept.keep(stored("resp_a"))
    assert (await kept.get("key:a", "resp_a")) is not None  # readable before it is in the database
    assert await kept.get("key:b", "resp_a") is None  # another tenant's: not found
    await asyncio.sleep(interval_s * 5)
    assert not kept.waiting and (await store.get("key:a", "resp_a")) is not None
    assert await store.get("key:b", "resp_a") is None
    assert not await kept.delete("key:b", "resp_a")
    assert await kept.delete("key:a", "resp_a") and await kept.get("key:a", "resp_a") is None
    kept.keep(stored("resp_old", age_s=3 * 86_400))
    kept.keep(stored("resp_new"))
    await kept.flush()
    assert await kept.apply_retention() == 1
    assert await kept.get("key:a", "resp_old") is None and await kept.get("key:a", "resp_new") is not None
    kept.keep(stored("resp_last"))
    await kept.stop()  # what waits is written on stop
    assert await store.get("key:a", "resp_last") is not None


async def test_stored_response_batches_replace_by_id_and_another_process_reads_them(
    stores: Stores, settings: Settings
) -> None:
    old = [stored(f"resp_old{i:03}", age_s=2 * 86_400) for i in range(250)]
    await stores.responses.put_many(old + [stored("resp_x", body=b" first"), stored("resp_x", body=b"\x00\xff")])
    await stores.responses.put_many([stored("resp_x", "key:b", body=b" last"), stored("resp_y")])
    other = await open_stores(settings)  # another process's stores on the same database
    try:
        x = await other.responses.get("key:b", "resp_x")
        assert x is not None and x.response.endswith(b" last") and await other.responses.get("key:a", "resp_x") is None
        got = await other.responses.get("key:a", "resp_old007")
        assert got == old[7] and isinstance(got.response, bytes) and isinstance(got.items, bytes)
        assert await other.responses.delete_before(time.time() - 86_400, batch=100) == 250
        assert await stores.responses.get("key:a", "resp_old249") is None
        assert await stores.responses.get("key:a", "resp_y") is not None
        assert not await stores.responses.delete("key:a", "resp_missing")
        assert await other.responses.delete("key:a", "resp_y") and await stores.responses.get("key:a", "resp_y") is None
    finally:
        await other.close()


# --- the registry's published versions (PostgreSQL only: one process's files are its history) -----


async def test_registry_versions_are_published_once_and_one_writer_holds_the_lock(
    stores: Stores, settings: Settings
) -> None:
    if stores.registry is None:
        assert stores.backend == "sqlite"
        return
    other = await open_stores(settings)
    try:
        assert other.registry is not None and await stores.registry.latest() == 0
        assert await stores.registry.publish(8, b'{"version": 8}')
        assert not await other.registry.publish(8, b'{"version": 8, "other": true}')  # the first one stands
        assert await other.registry.latest() == 8 and await other.registry.read(8) == b'{"version": 8}'
        assert await other.registry.read(7) is None
        async with stores.registry.exclusive() as mine:
            async with other.registry.exclusive() as theirs:
                assert mine and not theirs
        async with other.registry.exclusive() as theirs:
            assert theirs  # released with the block
    finally:
        await other.close()
