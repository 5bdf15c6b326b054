"""The running gateway: POST /admin/registry/refresh (and rollback) swap the registry while requests
flow through it, with no failed request; the admin endpoints; a CLI write picked up by the watch."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import openai

from llmproxy.cli import main
from llmproxy.config import RegistryUpdateSettings, Secret
from llmproxy.registry import load_registry
from llmproxy.registry.versions import exclusive

from .conftest import PricingSite, page_text

GPT4O_ROW = "| gpt-4o | $2.50 | $1.25 | - | $10.00 |"


def gpt4o_page(input_price: float) -> str:
    return page_text("openai").replace(GPT4O_ROW, f"| gpt-4o | ${input_price:.2f} | $1.25 | - | $10.00 |")


def start(gateway_factory: Callable[..., str], registry_file: Path, site: PricingSite, **options: object) -> str:
    update = replace(
        RegistryUpdateSettings(auto_update=False, pages=site.pages(), scrape_timeout_s=5.0, max_model_loss=1.0),
        **options,
    )
    return gateway_factory(registry_path=registry_file, registry_update=update)


def cost_of_fake_usage(input_price: float, cached: float = 1.25, output: float = 10.0) -> float:
    # The fake upstream reports 12 prompt tokens (2 of them cached) and 7 completion tokens.
    return (10 * input_price + 2 * cached + 7 * output) / 1e6


async def test_refresh_under_load_swaps_the_registry_with_no_failed_request(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite
) -> None:
    base = start(gateway_factory, registry_file, pricing_site)
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    stop = asyncio.Event()
    ids = itertools.count()
    results: list[tuple[int, float]] = []
    failures: list[BaseException] = []

    async def worker() -> None:
        while not stop.is_set():
            try:  # a new prompt each time, so no response cache answers in the gateway's place
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"hello {next(ids)}"}]
                )
                results.append((raw.http_response.status_code, float(raw.headers["x-llmproxy-cost-usd"])))
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(exc)
                return

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    reports = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as admin:
        await asyncio.sleep(0.2)
        for price in (3.0, 3.5, 4.0):
            pricing_site.set("openai", gpt4o_page(price))
            response = await admin.post("/admin/registry/refresh", json={"providers": ["openai"]})
            assert response.status_code == 200, response.text
            reports.append(response.json())
            await asyncio.sleep(0.15)
        stop.set()
        await asyncio.gather(*workers)
        status = (await admin.get("/admin/registry")).json()
    await client.close()

    assert failures == []
    assert len(results) > 50 and {code for code, _ in results} == {200}
    # Every response was priced by one whole registry: the old price or a new one, nothing between.
    allowed = {round(cost_of_fake_usage(p), 12) for p in (2.5, 3.0, 3.5, 4.0)}
    assert {round(cost, 12) for _, cost in results} <= allowed
    assert round(results[-1][1], 12) == round(cost_of_fake_usage(4.0), 12)
    assert [r["version"] for r in reports] == [2, 3, 4]
    assert reports[0]["diff"]["changed"] == [{"id": "gpt-4o", "field": "input_per_mtok", "old": 2.5, "new": 3.0}]
    assert status["version"] == 4 and status["providers"]["openai"]["status"] == "ok"


def test_admin_versions_diff_and_rollback(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite
) -> None:
    base = start(gateway_factory, registry_file, pricing_site)
    with httpx.Client(base_url=base, timeout=30) as admin:
        pricing_site.set("openai", gpt4o_page(3.0))
        assert admin.post("/admin/registry/refresh", json={"providers": ["openai"]}).status_code == 200
        versions = admin.get("/admin/registry/versions").json()
        assert versions["current"] == 2 and [v["version"] for v in versions["versions"]] == [1, 2]
        diff = admin.get("/admin/registry/diff", params={"a": 1, "b": 2}).json()
        assert {"id": "gpt-4o", "field": "input_per_mtok", "old": 2.5, "new": 3.0} in diff["changed"]
        assert "o1-pro" in diff["added"]
        assert admin.get("/admin/registry/diff", params={"a": 2}).json()["added"] == []  # b: the current one

        back = admin.post("/admin/registry/rollback", json={"version": 1})
        assert back.status_code == 200 and back.json()["version"] == 3
        assert "o1-pro" in back.json()["diff"]["removed"]
        models = {m["id"] for m in admin.get("/v1/models").json()["data"]}
        assert "o1-pro" not in models and "gpt-4o" in models
        assert load_registry(registry_file).lookup("gpt-4o").input_per_mtok == 2.5

        missing = admin.get("/admin/registry/diff", params={"a": 1, "b": 42})
        assert missing.status_code == 404 and "version 42" in missing.json()["error"]["message"]
        bad = admin.get("/admin/registry/diff", params={"a": "one"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "a"
        wrong = admin.post("/admin/registry/rollback", json={"version": "2"})
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "version"
        unknown = admin.post("/admin/registry/refresh", json={"provider": "openai"})
        assert unknown.status_code == 400 and "unknown field 'provider'" in unknown.json()["error"]["message"]


def test_refresh_while_another_writer_holds_the_lock_is_a_409(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite, tmp_path: Path
) -> None:
    base = start(gateway_factory, registry_file, pricing_site)
    with exclusive(tmp_path / "data" / "registry.lock") as got, httpx.Client(base_url=base, timeout=30) as admin:
        assert got
        busy = admin.post("/admin/registry/refresh", json={})
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "registry_busy" and "lock held" in busy.json()["error"]["message"]


def test_a_broken_page_through_the_endpoint_changes_no_price(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite
) -> None:
    base = start(gateway_factory, registry_file, pricing_site)
    pricing_site.set("anthropic", "Service Unavailable", 503)
    with httpx.Client(base_url=base, timeout=30) as admin:
        report = admin.post("/admin/registry/refresh", json={"providers": ["anthropic"]}).json()
        status = admin.get("/admin/registry").json()
    assert report["providers"]["anthropic"]["status"] == "stale"
    assert "HTTP 503" in report["providers"]["anthropic"]["message"]
    assert report["diff"]["changed"] == [] and report["diff"]["added"] == [] and report["diff"]["removed"] == []
    assert status["providers"]["anthropic"]["status"] == "stale"
    assert "claude-opus-4-7" in status["stale"] and "gpt-4o" not in status["stale"]


def test_a_cli_rollback_is_picked_up_by_the_running_gateway(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite, tmp_path: Path
) -> None:
    base = start(gateway_factory, registry_file, pricing_site, watch_interval_s=0.05)
    with httpx.Client(base_url=base, timeout=30) as admin:
        pricing_site.set("openai", gpt4o_page(3.0))
        assert admin.post("/admin/registry/refresh", json={"providers": ["openai"]}).json()["version"] == 2
        config = tmp_path / "llmproxy.toml"
        config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[registry]\npath = "{registry_file}"\n')
        assert main(["--config", str(config), "registry", "rollback", "1"]) == 0
        deadline = time.monotonic() + 5
        while admin.get("/admin/registry").json()["version"] != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.get("/admin/registry").json()["version"] == 3
        models = {m["id"] for m in admin.get("/v1/models").json()["data"]}
    assert "o1-pro" not in models


def test_the_registry_endpoints_need_an_admin(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite
) -> None:
    update = RegistryUpdateSettings(auto_update=False, pages=pricing_site.pages())
    base = gateway_factory(
        registry_path=registry_file, registry_update=update, master_key=Secret("sk-admin-0123456789")
    )
    with httpx.Client(base_url=base, timeout=30) as admin:
        refused = admin.post("/admin/registry/refresh", json={})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert admin.get("/admin/registry/versions").status_code == 401
        ok = admin.get("/admin/registry", headers={"authorization": "Bearer sk-admin-0123456789"})
        assert ok.status_code == 200 and ok.json()["version"] == 1 and ok.json()["unpriced"] == []
    assert pricing_site.hits == 0


def test_a_bad_overrides_file_makes_the_refresh_a_409_that_names_it(
    gateway_factory: Callable[..., str], registry_file: Path, pricing_site: PricingSite
) -> None:
    (registry_file.parent / "overrides.json").write_text('{"models": {"gpt-4o": {"input_per_mtok": "cheap"}}}')
    base = start(gateway_factory, registry_file, pricing_site)
    with httpx.Client(base_url=base, timeout=30) as admin:
        response = admin.post("/admin/registry/refresh", json={})
    assert response.status_code == 409 and response.json()["error"]["code"] == "registry_error"
    assert "overrides.json models.gpt-4o.input_per_mtok" in response.json()["error"]["message"]
    assert load_registry(registry_file).version == 1
