"""Keys made by keys: what a child spends counts against every key above it, so a key over its
budget cannot mint children that spend again (also after a restart); and an owner holds at most
`auth.max_keys_per_owner` live keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from llmproxy.config import Settings
from llmproxy.store import keys_sql, sqlite
from llmproxy.store.keys_sql import KeysDB
from llmproxy.store.sqlite import SQLiteStore
from tests.auth.conftest import Gw

TINY = 0.0000001  # less than one request to the fake upstream costs


def make_key(gw: Gw, token: str | None = None, **fields: object) -> dict:
    kwargs = {"token": token} if token else {}
    r = gw.admin("POST", "/admin/keys", json={"name": "k", **fields}, **kwargs)
    assert r.status_code == 201, r.text
    return r.json()


def over_budget(r: httpx.Response) -> bool:
    return r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"


def test_a_key_over_budget_cannot_mint_a_child_that_spends_again(launch: Callable[..., Gw]) -> None:
    gw = launch()
    parent = make_key(gw, owner="bob", budget_usd=TINY)
    assert gw.chat(parent["key"]).status_code == 200  # spends more than the budget
    assert over_budget(gw.chat(parent["key"]))
    child = make_key(gw, token=parent["key"], name="child")
    assert over_budget(gw.chat(child["key"]))
    grandchild = make_key(gw, token=child["key"], name="grandchild")
    assert over_budget(gw.chat(grandchild["key"]))


def test_a_childs_spend_counts_against_its_ancestors_also_after_a_restart(launch: Callable[..., Gw]) -> None:
    gw = launch()
    root = make_key(gw, owner="bob", budget_usd=TINY, budget_period="day")
    child = make_key(gw, token=root["key"], name="child")
    grandchild = make_key(gw, token=child["key"], name="grandchild")
    sibling = make_key(gw, owner="bob", name="unrelated", budget_usd=TINY)
    assert gw.chat(grandchild["key"]).status_code == 200
    for key in (root, child, grandchild):
        assert over_budget(gw.chat(key["key"])), key["name"]
    assert gw.chat(sibling["key"]).status_code == 200  # another tree is not charged
    gw.stop()
    again = launch(gw.settings)  # spend is rolled up from the usage log
    for key in (root, child, grandchild):
        assert over_budget(again.chat(key["key"])), key["name"]
    # raising the root's budget frees the root; the child inherited the tiny budget, which its
    # subtree has spent
    again.admin("PATCH", f"/admin/keys/{root['id']}", json={"budget_usd": 10.0})
    assert again.chat(root["key"]).status_code == 200
    assert over_budget(again.chat(child["key"]))


def test_an_owner_holds_at_most_max_keys_per_owner(
    launch: Callable[..., Gw], settings: Callable[..., Settings]
) -> None:
    config = settings()
    gw = launch(replace(config, auth=replace(config.auth, max_keys_per_owner=3)))
    first = make_key(gw, owner="bob")
    make_key(gw, token=first["key"])
    make_key(gw, token=first["key"])
    r = gw.admin("POST", "/admin/keys", token=first["key"], json={"name": "fourth"})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "too_many_keys" and "3" in error["message"] and "revoke" in error["message"]
    assert gw.admin("POST", "/admin/keys", json={"name": "admin-too", "owner": "bob"}).status_code == 409
    make_key(gw, owner="carol")  # another owner is not affected
    make_key(gw, name="service")  # nor a key without an owner
    assert gw.admin("DELETE", f"/admin/keys/{first['id']}").status_code == 200
    make_key(gw, owner="bob")  # a revoked key frees its place


def test_the_migration_links_keys_that_user_keys_made_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "llmproxy.db"

    async def old_database() -> None:
        with monkeypatch.context() as m:  # the schema as it was before parent_id
            m.setitem(sqlite.MIGRATIONS, "keys", keys_sql.MIGRATIONS[:2])
            store = await SQLiteStore.open(db_path)
        rows = [
            ("key_parent", "user", "master"),
            ("key_child", "user", "key:key_parent (bob)"),
            ("key_grand", "user", "key:key_child (bob)"),
            ("key_admin", "admin", "master"),
            ("key_given", "user", "key:key_admin"),
        ]
        for key_id, role, actor in rows:
            await store.db.execute(
                "INSERT INTO api_keys (id, name, owner, role, created_at, updated_at) VALUES (?, ?, 'bob', ?, 0, 0)",
                (key_id, key_id, role),
            )
            await store.db.execute(
                "INSERT INTO audit_log (ts, actor, action, target) VALUES (0, ?, 'keys.create', ?)", (actor, key_id)
            )
        await store.db.commit()
        await store.close()

    async def parents() -> dict[str, str | None]:
        store = await SQLiteStore.open(db_path)
        try:
            return {k.id: k.parent_id for k in await KeysDB(store.db).keys()}
        finally:
            await store.close()

    asyncio.run(old_database())
    assert asyncio.run(parents()) == {
        "key_parent": None,
        "key_child": "key_parent",
        "key_grand": "key_child",
        "key_admin": None,
        "key_given": None,
    }  # an admin key's gifts are free
