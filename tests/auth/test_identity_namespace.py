"""Identities from an outside identity provider live in their own namespace: a JWT whose `sub` is
the name of a local user is not that user. Its keys, its cache entries and its usage are its own,
named `<issuer>#<sub>`; keys a JWT subject made before that rule are moved to its namespace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jwt

from llmproxy.config import CacheSettings, Secret, Settings
from llmproxy.store.keys_sql import KeysDB
from llmproxy.store.sqlite import SQLiteStore
from tests.auth.conftest import Gw

ISSUER, AUDIENCE = "https://idp.example.com/", "llmproxy-tests"
HS_SECRET = "an-hs256-shared-secret-of-enough-length-0123"


def with_jwt(config: Settings, **cache: object) -> Settings:
    return replace(
        config,
        auth=replace(config.auth, jwt_secret=Secret(HS_SECRET), jwt_issuer=ISSUER, jwt_audience=AUDIENCE),
        cache=replace(CacheSettings(), **cache) if cache else config.cache,
    )


def idp_token(sub: str, **extra: object) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, **extra},
        HS_SECRET,
        algorithm="HS256",
    )


def login(gw: Gw, name: str, password: str) -> str:
    r = gw.admin("POST", "/admin/login", token=None, json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_a_jwt_named_like_a_local_user_cannot_manage_its_keys(
    launch: Callable[..., Gw], settings: Callable[..., Settings]
) -> None:
    gw = launch(with_jwt(settings()))
    assert gw.admin("POST", "/admin/users", json={"name": "alice", "password": "alice-password-1"}).status_code == 201
    local = gw.admin("POST", "/admin/keys", json={"name": "alice-key", "owner": "alice"}).json()
    outsider = idp_token("alice")
    me = gw.admin("GET", "/admin/whoami", token=outsider).json()
    assert (me["kind"], me["user"]) == ("jwt", f"{ISSUER}#alice")
    assert gw.admin("GET", "/admin/keys", token=outsider).json()["data"] == []
    for method, path, body in (
        ("GET", f"/admin/keys/{local['id']}", None),
        ("PATCH", f"/admin/keys/{local['id']}", {"name": "mine"}),
        ("POST", f"/admin/keys/{local['id']}/rotate", {}),
        ("DELETE", f"/admin/keys/{local['id']}", None),
    ):
        assert gw.admin(method, path, token=outsider, json=body).status_code == 404, (method, path)
    assert gw.chat(local["key"]).status_code == 200
    # what the outsider creates is its own, and the local user does not see it
    made = gw.admin("POST", "/admin/keys", token=outsider, json={"name": "idp-key"}).json()
    assert made["owner"] == f"{ISSUER}#alice"
    names = [
        k["name"] for k in gw.admin("GET", "/admin/keys", token=login(gw, "alice", "alice-password-1")).json()["data"]
    ]
    assert names == ["alice-key"]


def test_a_jwt_named_like_a_local_user_does_not_share_its_cache(
    launch: Callable[..., Gw], settings: Callable[..., Settings]
) -> None:
    gw = launch(with_jwt(settings(), scope="user"))
    assert gw.admin("POST", "/admin/users", json={"name": "alice", "password": "alice-password-1"}).status_code == 201
    question = "what is in alice's private notes"
    first = gw.chat(login(gw, "alice", "alice-password-1"), content=question, temperature=0)
    assert first.status_code == 200 and first.headers["x-llmproxy-cache"] == "miss"
    outsider = idp_token("alice")
    again = gw.chat(outsider, content=question, temperature=0)
    assert again.status_code == 200 and again.headers["x-llmproxy-cache"] == "miss"
    # and its usage is its own: the local user's report does not hold it
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        users = {r["user"]: r["requests"] for r in gw.admin("GET", "/admin/usage?group_by=user").json()["data"]}
        if len(users) == 2:
            break
        time.sleep(0.05)
    assert users == {"alice": 1, f"{ISSUER}#alice": 1}
    mine = gw.admin("GET", "/admin/usage?group_by=user", token=outsider).json()["data"]
    assert [r["user"] for r in mine] == [f"{ISSUER}#alice"]


async def _key_made_by_a_jwt_before_namespacing(db_path: Path) -> None:
    store = await SQLiteStore.open(db_path)
    try:
        db = KeysDB(store.db)
        # what the old code wrote when JWT subject "bob" (no local bob) created a key for itself
        await db.insert_key("jwt:bob", "key_old_jwt", "0" * 64, "sk-oldjwt", {"name": "bob-old", "owner": "bob"})
        await db.insert_key("master", "key_local", "1" * 64, "sk-local0", {"name": "carol-key", "owner": "carol"})
    finally:
        await store.close()


def test_keys_a_jwt_made_before_are_moved_to_its_namespace(
    launch: Callable[..., Gw], settings: Callable[..., Settings]
) -> None:
    config = with_jwt(settings())
    config.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_key_made_by_a_jwt_before_namespacing(config.data_dir / "llmproxy.db"))
    gw = launch(config)
    listed = gw.admin("GET", "/admin/keys", token=idp_token("bob")).json()["data"]
    assert [(k["name"], k["owner"]) for k in listed] == [("bob-old", f"{ISSUER}#bob")]
    owners = {k["name"]: k["owner"] for k in gw.admin("GET", "/admin/keys").json()["data"]}
    assert owners == {"bob-old": f"{ISSUER}#bob", "carol-key": "carol"}
    gw.stop()
    again = launch(config)  # the move is done once: a restart changes nothing
    owners = {k["name"]: k["owner"] for k in again.admin("GET", "/admin/keys").json()["data"]}
    assert owners == {"bob-old": f"{ISSUER}#bob", "carol-key": "carol"}
