"""Virtual keys through the admin API and the OpenAI SDK: shown once, stored as a hash, listed by
prefix, limited to models, revoked, expired and rotated with a grace period."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import openai
import pytest

from llmproxy.auth import Authenticator
from llmproxy.config import ProviderSettings, Secret, Settings
from llmproxy.context import Principal, RequestContext
from llmproxy.errors import PermissionDenied
from llmproxy.registry import ModelEntry
from tests.auth.conftest import MASTER, Gw


def make_key(gw: Gw, token: str = MASTER, **fields: object) -> dict:
    r = gw.admin("POST", "/admin/keys", token=token, json={"name": "app", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def test_key_is_shown_once_and_stored_only_as_a_hash(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw, owner="alice", metadata={"team": "search"})
    value = created["key"]
    assert value.startswith("sk-") and len(value) > 40 and created["prefix"] == value[:10]
    reply = gw.client(value).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    listing = gw.admin("GET", "/admin/keys")
    assert listing.status_code == 200 and value not in listing.text
    (item,) = listing.json()["data"]
    assert item["prefix"] == value[:10] and item["owner"] == "alice" and item["metadata"] == {"team": "search"}
    assert "key" not in gw.admin("GET", f"/admin/keys/{created['id']}").json()
    db = (gw.settings.data_dir / "llmproxy.db").read_bytes()
    assert value.encode() not in db


def test_unknown_and_missing_keys_are_401_in_openai_shape(launch: Callable[..., Gw]) -> None:
    gw = launch()
    with pytest.raises(openai.AuthenticationError) as err:
        gw.client("sk-not-a-real-key-000000000000").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "invalid_api_key"
    assert "sk-not-a-real-key-000000000000" not in str(err.value)
    assert gw.chat(None).status_code == 401


def test_revoked_key_stops_at_once(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw)
    assert gw.chat(created["key"]).status_code == 200
    r = gw.admin("DELETE", f"/admin/keys/{created['id']}")
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = gw.chat(created["key"])
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert gw.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 400


def test_expired_key_is_refused(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw, expires_in_s=0.5)
    assert gw.chat(created["key"]).status_code == 200
    time.sleep(0.7)
    r = gw.chat(created["key"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"


def test_rotation_new_key_works_at_once_old_one_until_grace_ends(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw, rpm=100)
    old = created["key"]
    r = gw.admin("POST", f"/admin/keys/{created['id']}/rotate", json={"grace_s": 1.5})
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    assert new != old and r.json()["id"] == created["id"] and r.json()["prefix"] == new[:10]
    assert r.json()["previous"][0]["prefix"] == old[:10]
    assert gw.chat(new).status_code == 200
    assert gw.chat(old).status_code == 200  # inside the grace period
    # both values are one key: one rate-limit window, one spend
    assert gw.chat(new).headers["x-ratelimit-remaining-requests"] == "97"
    time.sleep(1.7)
    r = gw.chat(old)
    assert r.status_code == 401 and "grace period is over" in r.json()["error"]["message"]
    assert gw.chat(new).status_code == 200


def test_rotation_with_no_grace_ends_the_old_value_now(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw)
    r = gw.admin("POST", f"/admin/keys/{created['id']}/rotate", json={"grace_s": 0})
    assert gw.chat(created["key"]).status_code == 401
    assert gw.chat(r.json()["key"]).status_code == 200


def test_allowed_models_are_enforced(launch: Callable[..., Gw]) -> None:
    gw = launch()
    key = make_key(gw, models=["gpt-4o-mini", "ollama/*"])["key"]
    assert gw.chat(key, "gpt-4o-mini").status_code == 200
    assert gw.chat(key, "openai/gpt-4o-mini").status_code == 200  # another name of an allowed model
    assert gw.chat(key, "ollama/llama3.3").status_code == 200
    with pytest.raises(openai.PermissionDeniedError) as err:
        gw.client(key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_allowed"


def test_allowed_models_also_filter_fallbacks() -> None:
    auth = Authenticator(Settings(master_key=Secret(MASTER)), b"k" * 32)
    openai_p = ProviderSettings(name="openai", kind="openai", base_url="http://x")
    ctx = RequestContext("r", {})
    ctx.principal = Principal(kind="key", key_id="k1", role="user", allowed_models=("gpt-4o-mini",))
    ctx.requested_model = "gpt-4o-mini"
    allowed = ModelEntry(id="gpt-4o-mini", provider="openai", provider_model="gpt-4o-mini")
    other = ModelEntry(id="gpt-4o", provider="openai", provider_model="gpt-4o")
    ctx.candidates = [(openai_p, allowed), (openai_p, other)]
    auth.filter_candidates(ctx)
    assert [m.id for _, m in ctx.candidates] == ["gpt-4o-mini"]
    ctx.candidates = [(openai_p, other)]
    with pytest.raises(PermissionDenied):
        auth.filter_candidates(ctx)


def test_user_keys_see_only_their_own_and_no_admin_endpoints(launch: Callable[..., Gw]) -> None:
    gw = launch()
    mine = make_key(gw, owner="bob", name="bob-1", rpm=100)
    make_key(gw, owner="carol", name="carol-1")
    listing = gw.admin("GET", "/admin/keys", token=mine["key"])
    assert listing.status_code == 200
    assert [k["name"] for k in listing.json()["data"]] == ["bob-1"]
    # a user creates keys for themselves only, and may not give them more than it holds
    own = gw.admin("POST", "/admin/keys", token=mine["key"], json={"name": "bob-2", "owner": "mallory"})
    assert own.status_code == 403
    own = gw.admin("POST", "/admin/keys", token=mine["key"], json={"name": "bob-2"})
    assert own.status_code == 201 and own.json()["owner"] == "bob"
    assert gw.admin("POST", "/admin/keys", token=mine["key"], json={"name": "x", "rpm": 10**6}).status_code == 403
    carol_id = [k for k in gw.admin("GET", "/admin/keys").json()["data"] if k["owner"] == "carol"][0]["id"]
    assert gw.admin("DELETE", f"/admin/keys/{carol_id}", token=mine["key"]).status_code == 404
    for method, path in (
        ("GET", "/admin/users"),
        ("GET", "/admin/providers"),
        ("GET", "/admin/audit"),
        ("GET", "/admin/info"),
        ("POST", "/admin/users"),
    ):
        r = gw.admin(method, path, token=mine["key"], json={})
        assert r.status_code == 403, path
        assert r.json()["error"]["type"] == "permission_error"
    assert gw.admin("GET", "/admin/whoami", token=mine["key"]).json()["role"] == "user"


def test_admin_role_key_may_use_the_admin_api(launch: Callable[..., Gw]) -> None:
    gw = launch()
    admin_key = make_key(gw, role="admin")["key"]
    assert gw.admin("GET", "/admin/users", token=admin_key).status_code == 200


def test_invalid_key_fields_are_400_naming_the_field(launch: Callable[..., Gw]) -> None:
    gw = launch()
    for body, param in (
        ({"name": "a", "rpm": -1}, "rpm"),
        ({"name": "a", "tpm": 15946783869124835328}, "tpm"),  # past a 64-bit column: was a 500 (schemathesis)
        ({"name": "a", "budget_period": "week"}, "budget_period"),
        ({"name": "a", "colour": "red"}, "colour"),
        ({}, "name"),
        ({"name": "a", "models": "gpt"}, "models"),
    ):
        r = gw.admin("POST", "/admin/keys", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, body


def test_update_changes_limits_at_once(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw)
    assert "x-ratelimit-limit-requests" not in gw.chat(created["key"]).headers
    r = gw.admin("PATCH", f"/admin/keys/{created['id']}", json={"rpm": 7, "name": "renamed"})
    assert r.status_code == 200 and r.json()["rpm"] == 7 and r.json()["name"] == "renamed"
    assert gw.chat(created["key"]).headers["x-ratelimit-limit-requests"] == "7"


def test_keyless_loopback_is_open_only_until_the_first_key(launch: Callable[..., Gw]) -> None:
    gw = launch(master_key=None)
    assert gw.chat(None).status_code == 200
    assert gw.chat("anything-at-all").status_code == 200
    created = gw.admin("POST", "/admin/keys", token=None, json={"name": "first"})
    assert created.status_code == 201
    assert gw.chat(None).status_code == 401
    assert gw.chat("anything-at-all").status_code == 401
    assert gw.chat(created.json()["key"]).status_code == 200
    assert gw.admin("GET", "/admin/keys", token=None).status_code == 401


def test_every_admin_action_is_audited_without_secrets(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw, name="audited")
    gw.admin("POST", f"/admin/keys/{created['id']}/rotate", json={"grace_s": 0})
    gw.admin("DELETE", f"/admin/keys/{created['id']}")
    gw.admin("POST", "/admin/users", json={"name": "dana", "password": "correct horse battery"})
    gw.admin("PUT", "/admin/providers/anthropic", json={"api_key": "sk-ant-secret-value-123456789"})
    entries = gw.admin("GET", "/admin/audit").json()["data"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["keys.create", "keys.rotate", "keys.revoke", "users.create", "providers.set"]
    assert all(e["actor"] == "master" and e["ts"] > 0 for e in entries)
    text = str(entries)
    assert created["key"] not in text and "correct horse" not in text and "sk-ant-secret-value-123456789" not in text
    rows = sqlite3.connect(gw.settings.data_dir / "llmproxy.db").execute("SELECT count(*) FROM audit_log").fetchone()
    assert rows == (5,)


def test_a_budget_refuses_models_whose_price_is_unknown() -> None:
    auth = Authenticator(Settings(master_key=Secret(MASTER)), b"k" * 32)
    openai_p = ProviderSettings(name="openai", kind="openai", base_url="http://x")
    priced = ModelEntry(
        id="gpt-4o-mini", provider="openai", provider_model="gpt-4o-mini", input_per_mtok=0.15, output_per_mtok=0.6
    )
    unpriced = ModelEntry(id="openai/some-new-model", provider="openai", provider_model="some-new-model")
    ctx = RequestContext("r", {})
    ctx.requested_model = "openai/some-new-model"
    ctx.principal = Principal(kind="key", key_id="k1", role="user", budget_usd=5.0)
    ctx.candidates = [(openai_p, unpriced), (openai_p, priced)]
    auth.filter_candidates(ctx)  # an unpriced fallback is dropped, the priced one kept
    assert [m.id for _, m in ctx.candidates] == ["gpt-4o-mini"]
    ctx.candidates = [(openai_p, unpriced)]
    with pytest.raises(PermissionDenied) as err:
        auth.filter_candidates(ctx)
    assert err.value.code == "model_price_unknown" and "openai/some-new-model" in err.value.message
    ctx.principal = Principal(kind="key", key_id="k2", role="user")  # no budget: unknown prices are fine
    auth.filter_candidates(ctx)
    assert [m.id for _, m in ctx.candidates] == ["openai/some-new-model"]


def test_a_key_with_a_budget_gets_403_on_an_unpriced_model(launch: Callable[..., Gw]) -> None:
    gw = launch()
    budgeted = make_key(gw, budget_usd=5.0)["key"]
    with pytest.raises(openai.PermissionDeniedError) as err:
        gw.client(budgeted).chat.completions.create(
            model="openai/some-new-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "model_price_unknown" and "ask an admin" in err.value.message
    assert gw.chat(budgeted, "gpt-4o-mini").status_code == 200
    assert gw.chat(make_key(gw)["key"], "openai/some-new-model").status_code == 200


def test_deleting_a_user_revokes_their_keys_for_good(launch: Callable[..., Gw]) -> None:
    gw = launch()
    assert gw.admin("POST", "/admin/users", json={"name": "dave", "password": "dave-password-1"}).status_code == 201
    theirs = make_key(gw, owner="dave")
    other = make_key(gw, owner="erin")
    assert gw.chat(theirs["key"]).status_code == 200
    r = gw.admin("DELETE", "/admin/users/dave")
    assert r.status_code == 200
    assert gw.chat(theirs["key"]).status_code == 401
    assert r.json()["keys_revoked"] == 1
    assert gw.chat(other["key"]).status_code == 200
    # a new user of the same name does not bring them back
    assert gw.admin("POST", "/admin/users", json={"name": "dave", "password": "dave-password-2"}).status_code == 201
    assert gw.chat(theirs["key"]).status_code == 401
    audit = gw.admin("GET", "/admin/audit").json()["data"]
    assert any(e["action"] == "users.delete" and e["detail"] == {"keys_revoked": 1} for e in audit)


def test_a_key_strategy_routes_its_auto_requests(launch: Callable[..., Gw]) -> None:
    gw = launch()
    quality = make_key(gw, strategy="quality")
    assert quality["strategy"] == "quality"
    plain = make_key(gw)
    assert plain["strategy"] is None
    messages = [{"role": "user", "content": "hi"}]
    raw = gw.client(quality["key"]).chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert raw.headers["x-llmproxy-strategy"] == "quality"
    raw = gw.client(plain["key"]).chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert raw.headers["x-llmproxy-strategy"] == "cost"
    r = gw.admin("PATCH", f"/admin/keys/{plain['id']}", json={"strategy": "latency"})
    assert r.status_code == 200 and r.json()["strategy"] == "latency"
    assert gw.chat(plain["key"], "auto").headers["x-llmproxy-strategy"] == "latency"
    assert (
        gw.admin("PATCH", f"/admin/keys/{plain['id']}", json={"strategy": "fast"}).json()["error"]["param"]
        == "strategy"
    )
    r = gw.admin("PATCH", f"/admin/keys/{plain['id']}", json={"strategy": None})
    assert r.status_code == 200 and r.json()["strategy"] is None
    # only an admin sets it, even on a user's own key
    r = gw.admin("PATCH", f"/admin/keys/{plain['id']}", token=plain["key"], json={"strategy": "quality"})
    assert r.status_code == 403 and r.json()["error"]["param"] == "strategy"
