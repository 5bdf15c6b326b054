"""Fixtures for the dashboard tests: Debian's Chromium driven by Playwright, and a gateway with a
master key, an admin user, a copy of the registry and a fake pricing site to refresh it from.

Chromium comes from the system (`apt-get install -y chromium`), never from `playwright install`.
Screenshots go to artifacts/ui/ at the repository root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmproxy.config import RegistryUpdateSettings, Secret
from tests.registry.conftest import PricingSite, pricing_site, registry_file  # noqa: F401 - fixtures reused

REPO = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = REPO / "artifacts" / "ui"
CHROMIUM = os.environ.get("LLMPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
MASTER = "sk-master-ui-tests-0123456789abcdef"
ADMIN, ADMIN_PASSWORD = "ada", "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


@dataclass
class Dashboard:
    """A running gateway and what the tests need around it."""

    url: str
    site: PricingSite
    requests_seen: list[str] = field(default_factory=list)

    def admin(self, method: str, path: str, token: str = MASTER, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={"authorization": f"Bearer {token}"}, timeout=30, **kwargs
        )

    def chat(self, key: str, model: str, content: str) -> httpx.Response:
        return httpx.post(
            self.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
            json={"model": model, "messages": [{"role": "user", "content": content}]},
        )

    def wait_for_usage(self, requests: int) -> dict[str, Any]:
        """The usage API's totals once `requests` rows are written (the log writes in batches)."""
        deadline = time.monotonic() + 10
        while True:
            totals = self.admin("GET", "/admin/usage", params={"since": time.time() - 86_400}).json()["totals"]
            if totals["requests"] >= requests or time.monotonic() > deadline:
                return totals
            time.sleep(0.05)


# Module scope: the sync API runs its own event loop, which must be gone before other modules' async tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        why = f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (Debian's package) runs these tests"
        if os.environ.get("CI"):
            pytest.fail(why)  # .ci/run installs it: a missing browser in CI is a broken CI, not a skip
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def dashboard(gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite) -> Dashboard:
    update = RegistryUpdateSettings(
        auto_update=False, pages=pricing_site.pages(), scrape_timeout_s=5.0, max_model_loss=1.0
    )
    url = gateway_factory(master_key=Secret(MASTER), registry_path=registry_file, registry_update=update)
    dash = Dashboard(url, pricing_site)
    created = dash.admin("POST", "/admin/users", json={"name": ADMIN, "password": ADMIN_PASSWORD, "role": "admin"})
    assert created.status_code == 201, created.text
    return dash


@pytest.fixture
def page_factory(browser: Any, dashboard: Dashboard) -> Iterator[Callable[..., Any]]:
    """New pages (each in its own context: its own sessionStorage) that fail the test on a script
    error, and that record every URL they request."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(viewport: dict[str, int] = DESKTOP, color_scheme: str = "light") -> Any:
        context = browser.new_context(
            viewport=viewport,
            device_scale_factor=1,
            color_scheme=color_scheme,
            permissions=["clipboard-read", "clipboard-write"],
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and "401" not in msg.text
                else None
            ),
        )
        page.on("request", lambda request: dashboard.requests_seen.append(request.url))
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == []
    outside = [
        u for u in dashboard.requests_seen if not u.startswith(dashboard.url + "/") and not u.startswith("data:")
    ]
    assert outside == [], "the dashboard must not request anything outside the gateway"


def log_in(page: Any, dash: Dashboard, user: str = ADMIN, password: str = ADMIN_PASSWORD, route: str = "") -> None:
    page.goto(f"{dash.url}/ui/{route}")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for()


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header otherwise lands mid-page in a full-page shot
    page.screenshot(path=str(path), full_page=True)
    return path
