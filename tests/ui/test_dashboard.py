"""The dashboard in a real headless Chromium against a real gateway: log in, the overview's figures
against the usage API, keys created and revoked, the registry refreshed from fake pricing pages,
a streamed playground answer. Each page is photographed (desktop and 375 px) into artifacts/ui/."""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Any
from collections.abc import Callable

import openai

from tests.registry.conftest import page_text

from .conftest import ADMIN, MASTER, PHONE, REPO, Dashboard, log_in, shoot

GPT4O_ROW = "| gpt-4o | $2.50 | $1.25 | - | $10.00 |"


def usd(value: float) -> str:
    """The dashboard's money format (dom.js fmt.usd)."""
    digits = 2 if value == 0 else 6 if abs(value) < 0.01 else 4 if abs(value) < 1 else 2
    return f"${value:.{digits}f}"


def tile(page: Any, name: str) -> str:
    return page.get_by_test_id(f"tile-{name}").locator(".tile-value").inner_text()


def test_login_refuses_a_wrong_password_and_logs_out(page_factory: Callable[..., Any], dashboard: Dashboard) -> None:
    page = page_factory()
    page.goto(dashboard.url + "/ui")  # the redirect to /ui/
    assert page.url == dashboard.url + "/ui/"
    # A quick-start user with no user yet learns from the page itself how to make one.
    assert "llmproxy users create-admin" in page.get_by_test_id("first-user").inner_text()
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert "wrong user name or password" in page.get_by_role("alert").first.inner_text()
    shoot(page, "login")
    log_in(page, dashboard)
    assert page.get_by_test_id("who").inner_text() == f"{ADMIN} (admin)"
    token = page.evaluate("sessionStorage.getItem('llmproxy.token')")
    assert token and token.startswith("eyJ")
    page.get_by_role("button", name="Log out").click()
    assert page.get_by_label("User name").is_visible()
    assert page.evaluate("sessionStorage.getItem('llmproxy.token')") is None


def test_overview_figures_match_the_usage_api(page_factory: Callable[..., Any], dashboard: Dashboard) -> None:
    client = openai.OpenAI(base_url=dashboard.url + "/v1", api_key=MASTER, max_retries=0)
    for i in range(6):  # auto picks a cheap model; gpt-4o is the explicit, dearer one
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"say hi {i}"}])
    for i in range(3):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hello {i}"}])
    failed = dashboard.chat(MASTER, "openai/fail-500", "boom")
    assert failed.status_code >= 500
    totals = dashboard.wait_for_usage(10)
    assert totals["requests"] == 10 and totals["errors"] == 1

    page = page_factory()
    log_in(page, dashboard, route="#/overview")
    page.get_by_test_id("tile-requests").wait_for()
    assert tile(page, "requests") == str(totals["requests"])
    assert tile(page, "spend") == usd(totals["cost_usd"])
    assert tile(page, "tokens") == f"{totals['prompt_tokens'] + totals['completion_tokens']:,}"
    assert tile(page, "error-rate") == f"{totals['errors'] / totals['requests'] * 100:.1f}%"
    assert re.fullmatch(r"[\d.]+ (ms|s)", tile(page, "p99"))
    overview = dashboard.admin("GET", "/admin/overview", params={"since": time.time() - 86_400}).json()
    assert overview["auto"]["requests"] == 6 and overview["auto"]["saved_usd"] > 0
    assert tile(page, "auto-saved") == usd(overview["auto"]["saved_usd"])
    by_model = page.get_by_test_id("by-model")
    assert by_model.get_by_role("row", name=re.compile("gpt-4o")).first.is_visible()
    assert page.locator("#chart-requests canvas").count() == 1
    assert page.locator("#chart-latency canvas").count() == 1
    path = shoot(page, "overview-desktop")
    if os.environ.get("LLMPROXY_UPDATE_SCREENSHOT"):  # refresh the README's picture on request only
        shutil.copy(path, REPO / "docs" / "img" / "dashboard-overview.png")
    page.set_viewport_size(PHONE)
    page.get_by_role("button", name="Refresh").click()
    page.get_by_test_id("tile-requests").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "overview-phone")


def test_keys_create_edit_revoke_and_a_user_sees_only_their_own(
    page_factory: Callable[..., Any], dashboard: Dashboard
) -> None:
    page = page_factory()
    log_in(page, dashboard, route="#/keys")
    form = page.get_by_role("form", name="Create a key")
    form.get_by_label("Name", exact=True).fill("ci-bot")
    form.get_by_label("Budget (USD)").fill("5")
    form.get_by_role("button", name="Create key").click()
    value = page.get_by_test_id("new-key-value").input_value()
    assert value.startswith("sk-")
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("status").filter(has_text="Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == value
    shoot(page, "keys-created")
    assert dashboard.chat(value, "gpt-4o-mini", "hi").status_code == 200

    row = page.get_by_test_id("keys-table").get_by_role("row", name=re.compile("ci-bot"))
    assert "$5.00 / month" in row.inner_text()
    row.get_by_role("button", name="Edit ci-bot").click()
    editor = page.get_by_role("form", name="Edit ci-bot")
    editor.get_by_label("Requests per minute").fill("7")
    editor.get_by_role("button", name="Save").click()
    page.get_by_test_id("keys-table").get_by_role("row", name=re.compile("ci-bot")).filter(has_text="7 rpm").wait_for()
    key_id = page.get_by_test_id("keys-table").locator("tr[data-key-id]").first.get_attribute("data-key-id")
    assert dashboard.admin("GET", f"/admin/keys/{key_id}").json()["rpm"] == 7

    page.get_by_role("button", name="Revoke ci-bot").click()  # the confirm() is accepted
    page.get_by_test_id("keys-table").get_by_text("No keys yet.").wait_for()
    assert dashboard.admin("GET", f"/admin/keys/{key_id}").json()["revoked_at"] is not None
    assert dashboard.chat(value, "gpt-4o-mini", "hi").status_code == 401
    page.get_by_label("Show revoked").check()
    page.get_by_test_id("keys-table").get_by_text("revoked").wait_for()
    shoot(page, "keys-desktop")

    # A user logs in and sees only their own keys, and no limit fields (an admin's to set).
    assert (
        dashboard.admin("POST", "/admin/users", json={"name": "bob", "password": "bob's long password"}).status_code
        == 201
    )
    assert dashboard.admin("POST", "/admin/keys", json={"name": "bob-key", "owner": "bob"}).status_code == 201
    assert dashboard.admin("POST", "/admin/keys", json={"name": "someone-else"}).status_code == 201
    phone = page_factory(PHONE, color_scheme="dark")
    log_in(phone, dashboard, user="bob", password="bob's long password", route="#/keys")
    table = phone.get_by_test_id("keys-table")
    table.get_by_text("bob-key").wait_for()
    assert table.get_by_text("someone-else").count() == 0
    assert phone.get_by_label("Requests per minute").count() == 0
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(phone, "keys-phone-dark")


def test_models_table_sorts_and_refresh_runs_the_scrapers(
    page_factory: Callable[..., Any], dashboard: Dashboard
) -> None:
    page = page_factory()
    log_in(page, dashboard, route="#/models")
    table = page.get_by_test_id("models-table")
    table.locator("tbody tr").first.wait_for()
    table.locator("th[data-sort='input_per_mtok']").get_by_role("button").click()  # numbers sort dearest first
    assert table.locator("th[data-sort='input_per_mtok']").get_attribute("aria-sort") == "descending"
    prices = [
        float(t.strip("$")) for t in table.locator("tbody tr td:nth-child(3)").all_inner_texts() if t != "unknown"
    ]
    assert prices == sorted(prices, reverse=True) and len(prices) > 10
    page.get_by_label("Filter").fill("gpt-4o")
    assert table.locator("tbody tr[data-model='gpt-4o'] td:nth-child(3)").inner_text() == "$2.50"

    dashboard.site.set("openai", page_text("openai").replace(GPT4O_ROW, "| gpt-4o | $3.00 | $1.25 | - | $10.00 |"))
    page.get_by_role("button", name="Refresh prices now").click()
    report = page.get_by_test_id("refresh-report")
    report.wait_for()
    assert "version 1 → 2" in report.get_by_role("heading").inner_text()
    change = report.get_by_test_id("changes").get_by_role("row", name=re.compile("gpt-4o"))
    assert change.filter(has_text="input_per_mtok").first.inner_text().split("\t")[-2:] == ["$2.50", "$3.00"]
    assert report.locator("li[data-provider='openai'] .badge").inner_text() == "ok"
    assert table.locator("tbody tr[data-model='gpt-4o'] td:nth-child(3)").inner_text() == "$3.00"
    assert dashboard.admin("GET", "/admin/registry").json()["version"] == 2

    versions = page.get_by_role("region", name="Registry versions")
    versions.get_by_text("v2").first.wait_for()
    page.get_by_label("From").select_option("1")
    page.get_by_label("To").select_option("2")
    page.get_by_role("button", name="Show diff").click()
    assert "v1 → v2" in page.get_by_test_id("diff-summary").inner_text()
    page.get_by_label("Filter").fill("")
    shoot(page, "models-desktop")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "models-phone")


def test_playground_streams_an_answer_and_shows_the_route(
    page_factory: Callable[..., Any], dashboard: Dashboard, openai_upstream: tuple[str, Any]
) -> None:
    openai_upstream[1].chunk_delay_s = 0.15  # slow enough to see the answer grow
    page = page_factory()
    log_in(page, dashboard, route="#/playground")
    page.get_by_label("Model").select_option("auto")
    page.get_by_label("Message").fill("one two three four five")
    page.get_by_role("button", name="Send").click()
    answer = page.get_by_test_id("answer")
    answer.filter(has_text="echo:").wait_for()
    partial = answer.inner_text()
    decision = page.get_by_test_id("decision")
    decision.get_by_text("Routing decision").wait_for()
    assert answer.inner_text() == "echo: one two three four five"
    assert partial != answer.inner_text(), "the answer should appear word by word, not at once"
    fields = {
        name: decision.locator(f"[data-field='{name}'] dd").inner_text()
        for name in ("model", "provider", "strategy", "cost", "tokens", "gateway-overhead")
    }
    assert fields["provider"] == "openai" and fields["strategy"] == "cost"
    assert fields["model"] != "–" and fields["cost"].startswith("≈ $")
    assert fields["tokens"] == "12 in · 6 out"
    assert re.fullmatch(r"[\d.]+ ms", fields["gateway-overhead"])
    sent = openai_upstream[1].requests[-1]
    assert sent["stream"] is True and sent["messages"][-1]["content"] == "one two three four five"
    shoot(page, "playground-desktop")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "playground-phone")
