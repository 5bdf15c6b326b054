"""GET /admin/overview and /admin/models on a real gateway: latency percentiles, the auto savings
arithmetic against a named frontier model, a user's scope, and the static files' headers."""

from __future__ import annotations

import time

import httpx

from .conftest import MASTER, Dashboard

# The fake upstream reports 12 prompt tokens (2 of them cached) and 7 completion tokens.
PROMPT, CACHED, COMPLETION = 12, 2, 7


def overview(dash: Dashboard, token: str = MASTER, **params: object) -> dict:
    response = dash.admin("GET", "/admin/overview", token=token, params={"since": time.time() - 3600, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_percentiles_error_rate_and_savings_against_a_named_frontier(dashboard: Dashboard) -> None:
    for i in range(4):
        assert dashboard.chat(MASTER, "auto", f"hi {i}").status_code == 200
    for i in range(4):
        assert dashboard.chat(MASTER, "gpt-4o-mini", f"hello {i}").status_code == 200
    assert dashboard.chat(MASTER, "openai/slow-300", "slow").status_code == 200
    assert dashboard.chat(MASTER, "openai/fail-400", "bad").status_code == 400
    dashboard.wait_for_usage(10)

    doc = overview(dashboard, frontier="gpt-4o")
    totals = doc["totals"]
    assert totals["requests"] == 10 and totals["errors"] == 1 and totals["error_rate"] == 0.1
    assert totals["p50_ms"] < 150 <= 300 <= totals["p99_ms"]  # nearest rank: the 10th of 10 is the slow one
    usage = dashboard.admin("GET", "/admin/usage", params={"since": time.time() - 3600}).json()["totals"]
    assert round(totals["cost_usd"], 12) == round(usage["cost_usd"], 12)

    auto = doc["auto"]
    gpt4o = next(m for m in dashboard.admin("GET", "/admin/models").json()["data"] if m["id"] == "gpt-4o")
    per_request = (
        (PROMPT - CACHED) * gpt4o["input_per_mtok"]
        + CACHED * gpt4o["cached_input_per_mtok"]
        + COMPLETION * gpt4o["output_per_mtok"]
    ) / 1e6
    assert auto["requests"] == 4 and auto["frontier_model"] == "gpt-4o"
    assert abs(auto["frontier_cost_usd"] - 4 * per_request) < 1e-12
    assert abs(auto["saved_usd"] - (4 * per_request - auto["cost_usd"])) < 1e-12
    assert 0 < auto["cost_usd"] < auto["frontier_cost_usd"]

    models = {(r["model"], r["provider"]): r for r in doc["by_model"]}
    assert models[("gpt-4o-mini", "openai")]["requests"] == 4
    assert sum(b["requests"] for b in doc["series"]) == 10
    assert doc["bucket_s"] == 60 and len(doc["series"]) in (60, 61)

    # By default the frontier is the best model the gateway can reach: at least as dear as what auto chose.
    default = overview(dashboard)["auto"]
    assert default["frontier_model"] and default["saved_usd"] >= 0


def test_a_user_sees_only_their_own_traffic(dashboard: Dashboard) -> None:
    assert (
        dashboard.admin("POST", "/admin/users", json={"name": "eve", "password": "eve's long password"}).status_code
        == 201
    )
    key = dashboard.admin("POST", "/admin/keys", json={"name": "eve-key", "owner": "eve"}).json()["key"]
    assert dashboard.chat(key, "gpt-4o-mini", "mine").status_code == 200
    for i in range(3):
        assert dashboard.chat(MASTER, "gpt-4o-mini", f"not eve's {i}").status_code == 200
    dashboard.wait_for_usage(4)
    token = httpx.post(
        dashboard.url + "/admin/login", json={"username": "eve", "password": "eve's long password"}
    ).json()["access_token"]
    assert overview(dashboard, token=token)["totals"]["requests"] == 1
    assert overview(dashboard)["totals"]["requests"] == 4
    assert dashboard.admin("GET", "/admin/models", token=token).status_code == 200
    assert dashboard.admin("GET", "/admin/overview", token="sk-wrong-key-0123456789").status_code == 401
    bad = dashboard.admin("GET", "/admin/overview", params={"bucket_s": "5"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "bucket_s"


def test_the_dashboard_files_are_served_with_a_strict_policy(dashboard: Dashboard) -> None:
    moved = httpx.get(dashboard.url + "/ui")
    assert moved.status_code == 308 and moved.headers["location"] == "/ui/"
    page = httpx.get(dashboard.url + "/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace('content="width=device-width', "")  # nothing from elsewhere
    assert httpx.get(dashboard.url + "/ui/vendor/uplot-1.6.32.min.js").status_code == 200
    hidden = httpx.get(dashboard.url + "/ui/__init__.py")
    assert hidden.status_code == 404 and hidden.json()["error"]["type"] == "invalid_request_error"
