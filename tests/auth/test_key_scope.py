"""What a non-admin may do with keys: a key it creates inherits its restrictions (narrower is fine,
wider is 403), a change only tightens (an expiry is brought forward, never removed or pushed back),
and it never sees or touches a key of a higher role or, as a key, one more powerful than itself."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from llmproxy.config import LimitSettings
from tests.auth.conftest import Gw


def make_key(gw: Gw, token: str | None = None, **fields: object) -> dict:
    kwargs = {"token": token} if token else {}
    r = gw.admin("POST", "/admin/keys", json={"name": "k", **fields}, **kwargs)
    assert r.status_code == 201, r.text
    return r.json()


def refused(r: httpx.Response, param: str) -> bool:
    body = r.json()
    return r.status_code == 403 and body["error"]["param"] == param


def test_a_key_made_by_a_user_key_inherits_its_restrictions(launch: Callable[..., Gw]) -> None:
    gw = launch()
    parent = make_key(
        gw,
        owner="bob",
        models=["gpt-4o-mini", "ollama/*"],
        rpm=5,
        tpm=10_000,
        budget_usd=1.0,
        budget_period="day",
        expires_in_s=3600,
    )
    child = make_key(gw, token=parent["key"], name="child")
    assert child["owner"] == "bob" and child["role"] == "user"
    assert (child["models"], child["rpm"], child["tpm"]) == (["gpt-4o-mini", "ollama/*"], 5, 10_000)
    assert (child["budget_usd"], child["budget_period"], child["expires_at"]) == (1.0, "day", parent["expires_at"])
    assert gw.chat(child["key"], "gpt-4o").status_code == 403
    assert gw.chat(child["key"]).headers["x-ratelimit-limit-requests"] == "5"

    def create(**fields: object) -> httpx.Response:
        return gw.admin("POST", "/admin/keys", token=parent["key"], json={"name": "wider", **fields})

    assert refused(create(models=["gpt-4o"]), "models")
    assert refused(create(models=["gpt-*"]), "models")
    assert refused(create(models=None), "models")
    assert refused(create(rpm=6), "rpm") and refused(create(rpm=None), "rpm")
    assert refused(create(tpm=10_001), "tpm")
    assert refused(create(budget_usd=2.0), "budget_usd") and refused(create(budget_usd=None), "budget_usd")
    assert refused(create(budget_period="month"), "budget_period")
    assert refused(create(expires_in_s=7200), "expires_at") and refused(create(expires_at=None), "expires_at")
    assert refused(create(role="admin"), "role") and refused(create(strategy="quality"), "strategy")
    narrow = make_key(gw, token=parent["key"], models=["ollama/llama3.3"], rpm=2, budget_usd=0.5, expires_in_s=60)
    assert (narrow["models"], narrow["rpm"], narrow["budget_usd"]) == (["ollama/llama3.3"], 2, 0.5)
    assert narrow["expires_at"] < parent["expires_at"]


def test_a_login_user_hands_on_the_default_limits(launch: Callable[..., Gw]) -> None:
    gw = launch(limits=LimitSettings(rpm=7, tpm=5000))
    assert gw.admin("POST", "/admin/users", json={"name": "bob", "password": "bob-password-1"}).status_code == 201
    token = gw.admin("POST", "/admin/login", token=None, json={"username": "bob", "password": "bob-password-1"}).json()[
        "access_token"
    ]
    key = make_key(gw, token=token)
    assert (key["owner"], key["rpm"], key["tpm"], key["models"], key["budget_usd"]) == ("bob", 7, 5000, None, None)
    assert key["expires_at"] is None  # a login token's short life is not the account's
    r = gw.admin("POST", "/admin/keys", token=token, json={"name": "x", "rpm": 8})
    assert refused(r, "rpm")
    assert make_key(gw, token=token, rpm=3)["rpm"] == 3


def test_a_user_may_only_tighten_a_key_and_bring_its_expiry_forward(launch: Callable[..., Gw]) -> None:
    gw = launch()
    # an expiry the admin set on a user's own key binds it
    own = make_key(gw, owner="carol", expires_in_s=1000)
    r = gw.admin("PATCH", f"/admin/keys/{own['id']}", token=own["key"], json={"expires_in_s": 10**6})
    assert refused(r, "expires_at")
    r = gw.admin("PATCH", f"/admin/keys/{own['id']}", token=own["key"], json={"expires_at": None})
    assert refused(r, "expires_at")
    assert gw.admin("PATCH", f"/admin/keys/{own['id']}", token=own["key"], json={"expires_in_s": 10}).status_code == 200

    parent = make_key(gw, owner="bob", rpm=100)
    child = make_key(gw, token=parent["key"], rpm=10, expires_in_s=1000)

    def patch(**fields: object) -> httpx.Response:
        return gw.admin("PATCH", f"/admin/keys/{child['id']}", token=parent["key"], json=fields)

    assert refused(patch(expires_at=None), "expires_at")  # remove the expiry
    assert refused(patch(expires_in_s=5000), "expires_at")  # push it back
    assert refused(patch(expires_at=child["expires_at"] + 1), "expires_at")
    assert refused(patch(rpm=50), "rpm")  # within the caller's, above the key's
    r = patch(expires_in_s=100, rpm=5, name="renamed")
    assert r.status_code == 200, r.text
    assert r.json()["expires_at"] < child["expires_at"] and r.json()["rpm"] == 5
    # the admin still may do anything
    r = gw.admin("PATCH", f"/admin/keys/{child['id']}", json={"expires_at": None, "rpm": 1000})
    assert r.status_code == 200 and r.json()["expires_at"] is None


def test_a_user_never_sees_or_touches_an_admin_role_key_of_its_owner(launch: Callable[..., Gw]) -> None:
    gw = launch()
    admin_key = make_key(gw, owner="bob", role="admin", name="bob-admin")
    user_key = make_key(gw, owner="bob", name="bob-user")
    assert gw.admin("POST", "/admin/users", json={"name": "bob", "password": "bob-password-1"}).status_code == 201
    login = gw.admin("POST", "/admin/login", token=None, json={"username": "bob", "password": "bob-password-1"}).json()[
        "access_token"
    ]
    for token in (user_key["key"], login):
        names = [k["name"] for k in gw.admin("GET", "/admin/keys", token=token).json()["data"]]
        assert names == ["bob-user"]
        base = f"/admin/keys/{admin_key['id']}"
        for method, path, body in (
            ("GET", base, None),
            ("PATCH", base, {"name": "x"}),
            ("POST", base + "/rotate", {}),
            ("DELETE", base, None),
        ):
            assert gw.admin(method, path, token=token, json=body).status_code == 404, (method, path)
    assert gw.chat(admin_key["key"]).status_code == 200  # untouched, still its old value
    assert gw.admin("GET", "/admin/users", token=admin_key["key"]).status_code == 200


def test_a_restricted_key_cannot_take_over_a_wider_key_of_its_owner(launch: Callable[..., Gw]) -> None:
    gw = launch()
    wide = make_key(gw, owner="bob", name="wide")
    narrow = make_key(gw, owner="bob", name="narrow", models=["gpt-4o-mini"], rpm=5)
    assert gw.admin("POST", f"/admin/keys/{wide['id']}/rotate", token=narrow["key"], json={}).status_code == 404
    assert gw.chat(wide["key"]).status_code == 200
    sibling = make_key(gw, token=narrow["key"], name="sibling", rpm=2)
    listed = [k["name"] for k in gw.admin("GET", "/admin/keys", token=narrow["key"]).json()["data"]]
    assert sorted(listed) == ["narrow", "sibling"]
    assert gw.admin("POST", f"/admin/keys/{sibling['id']}/rotate", token=narrow["key"], json={}).status_code == 200
    # the wider key (or the owner's login) manages the narrower ones
    assert gw.admin("GET", f"/admin/keys/{narrow['id']}", token=wide["key"]).status_code == 200
