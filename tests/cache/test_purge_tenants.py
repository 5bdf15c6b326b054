"""Purging by API key or by user removes every entry that key's or user's requests could hit, in
memory and on disk: keys restricted to some models (their entries sit under a tenant that names the
restriction), the keys a user owns, and, with scope "user", the owner's entries a key reads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from llmproxy.cache import ResponseCache
from llmproxy.idfilter import entry_id
from llmproxy.cache_memory import Entry
from llmproxy.config import CacheSettings, Secret
from llmproxy.store.cache_sql import SQLiteCacheStore
from llmproxy.store.sqlite import SQLiteStore

MASTER = "sk-master-purge-tests-0123456789"
QUESTION = "what is the capital of France"


def admin(base: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, base + path, headers={"authorization": f"Bearer {MASTER}"}, timeout=30, **kwargs)


def ask(base: str, key: str, content: str = QUESTION) -> str:
    r = httpx.post(
        base + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
        json={
            "model": "gpt-4o-mini",
            "temperature": 0,  # deterministic: cached by default
            "messages": [{"role": "user", "content": content}],
        },
    )
    assert r.status_code == 200, r.text
    return r.headers["x-llmproxy-cache"]


def disk_tenants(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(t for (t,) in conn.execute("SELECT tenant FROM cache_entries"))


def wait_on_disk(db: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(tenants := disk_tenants(db)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return tenants


def start(gateway_factory: Callable[..., str], tmp_path: Path, scope: str) -> tuple[str, Path]:
    base = gateway_factory(master_key=Secret(MASTER), cache=CacheSettings(scope=scope))
    return base, tmp_path / "data" / "llmproxy.db"


def test_purge_by_key_removes_a_model_restricted_keys_entries(
    gateway_factory: Callable[..., str], tmp_path: Path
) -> None:
    base, db = start(gateway_factory, tmp_path, "key")
    narrow = admin(base, "POST", "/admin/keys", json={"name": "narrow", "models": ["gpt-4o-mini"]}).json()
    other = admin(base, "POST", "/admin/keys", json={"name": "other", "models": ["gpt-4o-mini"]}).json()
    assert (ask(base, narrow["key"]), ask(base, narrow["key"]), ask(base, other["key"])) == ("miss", "hit", "miss")
    assert len(wait_on_disk(db, 2)) == 2
    r = admin(base, "POST", "/admin/cache/purge", json={"key_id": narrow["id"]})
    assert r.status_code == 200 and r.json() == {"purged": 1}
    assert disk_tenants(db) == [f"key:{other['id']}|models:gpt-4o-mini"]
    assert ask(base, narrow["key"]) == "miss" and ask(base, other["key"]) == "hit"


def test_purge_by_user_removes_the_entries_of_every_key_it_owns(
    gateway_factory: Callable[..., str], tmp_path: Path
) -> None:
    base, db = start(gateway_factory, tmp_path, "key")
    keys = [
        admin(base, "POST", "/admin/keys", json={"name": f"bob-{i}", "owner": "bob", **extra}).json()
        for i, extra in enumerate(({}, {"models": ["gpt-4o-mini"]}))
    ]
    carol = admin(base, "POST", "/admin/keys", json={"name": "carol", "owner": "carol"}).json()
    for key in (*keys, carol):
        assert ask(base, key["key"]) == "miss"
    assert len(wait_on_disk(db, 3)) == 3
    r = admin(base, "POST", "/admin/cache/purge", json={"user": "bob"})
    assert r.status_code == 200 and r.json() == {"purged": 2}
    assert disk_tenants(db) == [f"key:{carol['id']}"]
    assert [ask(base, key["key"]) for key in (*keys, carol)] == ["miss", "miss", "hit"]


def test_with_user_scope_purge_by_key_removes_what_the_key_reads(
    gateway_factory: Callable[..., str], tmp_path: Path
) -> None:
    base, db = start(gateway_factory, tmp_path, "user")
    narrow = admin(base, "POST", "/admin/keys", json={"name": "n", "owner": "bob", "models": ["gpt-4o-mini"]}).json()
    assert ask(base, narrow["key"]) == "miss"
    assert wait_on_disk(db, 1) == ["user:bob|models:gpt-4o-mini"]
    assert admin(base, "POST", "/admin/cache/purge", json={"key_id": narrow["id"]}).json() == {"purged": 1}
    assert disk_tenants(db) == []
    assert ask(base, narrow["key"]) == "miss"


async def test_a_tenant_family_matches_its_restrictions_and_nothing_else(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "llmproxy.db")
    cache = ResponseCache(CacheSettings(), await SQLiteCacheStore.open(store.path))
    await cache.start()
    try:
        tenants = [
            "key:ab",
            "key:ab|models:gpt-4o-mini",
            "key:abc",
            "key:abc|models:gpt-4o",
            "key:ab|modelsX",
            "user:https://idp/#auth0|42",
            "user:https://idp/#auth0|42|models:a,b",
            "user:https://idp/#auth0",
        ]
        for i, tenant in enumerate(tenants):
            key = f"{i + 1:016x}" + "0" * 16
            entry = Entry(key, entry_id(key), tenant, "gpt-4o-mini", None, None, 0.0, time.time() + 60, None, b"{}")
            cache.memory.put(entry)
            cache._pending.append(entry.row())
        await cache._flush()
        families = {"key:ab", "user:https://idp/#auth0|42"}
        assert await cache.purge(tenants=families) == 4
        left = ["key:abc", "key:abc|models:gpt-4o", "key:ab|modelsX", "user:https://idp/#auth0"]
        assert sorted(e.tenant for e in cache.memory.entries()) == sorted(left)
        assert disk_tenants(store.path) == sorted(left)
        assert await cache.purge(tenants=set()) == 0
    finally:
        await cache.stop()
        await store.close()
