"""GET /admin/usage on a real gateway and store: groups, totals, time filters, CSV, errors; and
what a non-admin caller may see."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmproxy.admin.usage import report, scope, time_range
from llmproxy.config import Secret
from llmproxy.context import Principal
from llmproxy.errors import InvalidRequest, PermissionDenied
from llmproxy.store import usage_sql
from llmproxy.store.sqlite import SQLiteStore
from llmproxy.store.usage_sql import SQLiteUsageStore
from tests.observability.test_usage_store import T0, row

MASTER = "sk-admin-usage-master-key-000"
AUTH = {"authorization": f"Bearer {MASTER}"}


def send_traffic(url: str) -> None:
    for i in range(4):
        r = httpx.post(
            url + "/v1/chat/completions",
            headers=AUTH,
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
        )
        assert r.status_code == 200
    for i in range(2):
        r = httpx.post(
            url + "/v1/chat/completions",
            headers=AUTH,
            json={"model": "llama3.3", "messages": [{"role": "user", "content": f"q{i}"}]},
        )
        assert r.status_code == 200
    r = httpx.post(
        url + "/v1/chat/completions",
        headers=AUTH,
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 404


def get(url: str, **params: str) -> httpx.Response:
    return httpx.get(url + "/admin/usage", params=params, headers=AUTH)


def wait_for(url: str, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        doc = get(url, group_by="model").json()
        if doc["totals"]["requests"] >= requests or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def test_usage_by_model_with_totals_filters_and_csv(gateway_factory: Callable[..., str]) -> None:
    url = gateway_factory(master_key=Secret(MASTER))
    send_traffic(url)
    doc = wait_for(url, 7)
    by_model = {r["model"]: r for r in doc["data"]}
    assert set(by_model) == {"gpt-4o-mini", "ollama/llama3.3", ""}
    mini = by_model["gpt-4o-mini"]
    assert mini["requests"] == 4 and mini["prompt_tokens"] == 48 and mini["completion_tokens"] == 28
    assert mini["cached_tokens"] == 8 and mini["cost_usd"] > 0 and mini["errors"] == 0
    assert by_model["ollama/llama3.3"]["unpriced"] == 2 and by_model["ollama/llama3.3"]["cost_usd"] == 0
    assert by_model[""]["errors"] == 1
    assert doc["totals"]["requests"] == 7 and doc["totals"]["cost_usd"] == pytest.approx(mini["cost_usd"])

    full = get(url).json()  # default: by day, key, model and provider
    assert full["group_by"] == ["day", "key", "model", "provider"]
    assert {(r["key_id"], r["model"], r["provider"]) for r in full["data"]} == {
        ("master", "gpt-4o-mini", "openai"),
        ("master", "ollama/llama3.3", "ollama"),
        ("master", "", ""),
    }
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert {r["day"] for r in full["data"]} == {today}

    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    whole_days = get(url, since=today, until=tomorrow, group_by="provider").json()
    assert whole_days["source"] == "rollup" and whole_days["totals"] == doc["totals"]
    last_hour = get(url, since=str(time.time() - 3600), group_by="provider").json()
    assert last_hour["source"] == "log" and last_hour["totals"]["requests"] == 7
    assert get(url, since=tomorrow).json()["data"] == []
    assert get(url, days="1", group_by="").json()["totals"]["requests"] == 7

    r = get(url, group_by="model,provider", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert list(table[0]) == ["model", "provider", *usage_sql.MEASURES]
    assert {t["model"]: int(t["requests"]) for t in table} == {"": 1, "gpt-4o-mini": 4, "ollama/llama3.3": 2}
    accept = httpx.get(url + "/admin/usage", headers={**AUTH, "accept": "text/csv"})
    assert accept.headers["content-type"].startswith("text/csv")


def test_bad_parameters_are_openai_shaped_400s(gateway_factory: Callable[..., str]) -> None:
    url = gateway_factory(master_key=Secret(MASTER))
    for params, param in (
        ({"group_by": "prompt"}, "group_by"),
        ({"since": "last tuesday"}, "since"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ({"format": "xml"}, "format"),
        ({"days": "0"}, "days"),
    ):
        r = get(url, **params)
        assert r.status_code == 400, params
        assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(url + "/admin/usage").status_code == 401


def test_time_range_forms() -> None:
    assert time_range({"since": "2026-11-01"}) == (1_793_491_200.0, None)
    assert time_range({"since": "2026-11-01T12:00:00Z", "until": "1793600000"}) == (1_793_534_400.0, 1_793_600_000.0)
    assert time_range({"days": "2"}, now=1_793_534_400.0) == (1_793_491_200.0 - 86_400, None)
    with pytest.raises(InvalidRequest):
        time_range({"days": "2", "since": "2026-11-01"})


async def test_a_user_sees_only_the_usage_of_their_own_keys(tmp_path: Path) -> None:
    admin = Principal(kind="master", key_id="master", role="admin")
    alice = Principal(kind="key", key_id="ka1", user="alice", role="user")
    lone_key = Principal(kind="key", key_id="kx", user=None, role="user")
    assert scope(admin, None) == (None, None) and scope(admin, "ka1") == ("ka1", None)
    assert scope(alice, None) == (None, "alice") and scope(alice, "kb1") == ("kb1", "alice")
    assert scope(lone_key, None) == ("kx", None)
    with pytest.raises(PermissionDenied):
        scope(lone_key, "ka1")
    store = await SQLiteStore.open(tmp_path / "llmproxy.db")
    try:
        await SQLiteUsageStore.over(store.db).insert(
            [
                row(T0 + 1, key_id="ka1", user="alice"),
                row(T0 + 2, key_id="ka2", user="alice"),
                row(T0 + 3, key_id="kb1", user="bob"),
                row(T0 + 4, key_id="kx", user=None),
            ]
        )
        mine = await report(SQLiteUsageStore.over(store.db), {"group_by": "key"}, alice)
        assert [r["key_id"] for r in mine["data"]] == ["ka1", "ka2"]
        assert (await report(SQLiteUsageStore.over(store.db), {"group_by": "key", "key_id": "kb1"}, alice))[
            "data"
        ] == []
        asked_for_bob = await report(
            SQLiteUsageStore.over(store.db), {"group_by": "key", "user": "bob"}, alice
        )  # ignored: not an admin
        assert [r["key_id"] for r in asked_for_bob["data"]] == ["ka1", "ka2"]
        assert [
            r["key_id"] for r in (await report(SQLiteUsageStore.over(store.db), {"group_by": "key"}, lone_key))["data"]
        ] == ["kx"]
        assert len((await report(SQLiteUsageStore.over(store.db), {"group_by": "key"}, admin))["data"]) == 4
    finally:
        await store.close()


def test_a_key_owner_sees_only_their_keys_over_http(gateway_factory: Callable[..., str]) -> None:
    url = gateway_factory(master_key=Secret(MASTER))
    keys: dict[str, tuple[str, str]] = {}
    for owner, name in (("alice", "a1"), ("alice", "a2"), ("bob", "b1")):
        r = httpx.post(url + "/admin/keys", headers=AUTH, json={"name": name, "owner": owner})
        assert r.status_code == 201, r.text
        keys[name] = (r.json()["id"], r.json()["key"])
    for name, (_, value) in keys.items():
        r = httpx.post(
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {value}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"from {name}"}]},
        )
        assert r.status_code == 200, r.text
    wait_for(url, 3)
    alice = {"authorization": f"Bearer {keys['a1'][1]}"}
    mine = httpx.get(url + "/admin/usage", params={"group_by": "key,user"}, headers=alice).json()
    assert sorted((r["key_id"], r["user"]) for r in mine["data"]) == sorted(
        [(keys["a1"][0], "alice"), (keys["a2"][0], "alice")]
    )
    assert mine["totals"]["requests"] == 2
    others = httpx.get(url + "/admin/usage", params={"key_id": keys["b1"][0]}, headers=alice).json()
    assert others["data"] == [] and others["totals"]["requests"] == 0
    everyone = get(url, group_by="user").json()
    assert {r["user"]: r["requests"] for r in everyone["data"]} == {"alice": 2, "bob": 1}
