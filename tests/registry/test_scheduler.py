"""scheduler.RegistryUpdater: refresh from a fake pricing site on loopback, the lock, the cron loop,
and picking up a models.json written by another process."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmproxy.registry import Registry, RegistryError, load_registry
from llmproxy.registry.merge import OverridesError
from llmproxy.registry.versions import exclusive
from llmproxy.scheduler import LOCK_FILE, RegistryBusy, RegistryUpdater

from .conftest import PricingSite, page_text, updater_settings


def prices(path: Path) -> dict[str, tuple[float | None, float | None, float | None]]:
    return {m.id: (m.input_per_mtok, m.output_per_mtok, m.cached_input_per_mtok) for m in load_registry(path).models}


async def test_refresh_scrapes_merges_writes_and_swaps(
    registry_file: Path, pricing_site: PricingSite, caplog: pytest.LogCaptureFixture
) -> None:
    pricing_site.set("openai", page_text("openai").replace("| gpt-4o | $2.50 |", "| gpt-4o | $3.00 |"))
    swapped: list[Registry] = []
    updater = RegistryUpdater(updater_settings(registry_file, pricing_site), on_change=swapped.append)
    with caplog.at_level(logging.INFO, logger="llmproxy.scheduler"):
        report = await updater.refresh()
    assert (report.previous_version, report.version) == (1, 2)
    assert {p: o["status"] for p, o in report.providers.items()} == {
        "openai": "ok",
        "anthropic": "ok",
        "gemini": "held",
    }
    assert {"id": "gpt-4o", "field": "input_per_mtok", "old": 2.5, "new": 3.0} in report.diff["changed"]
    assert "o1-pro" in report.diff["added"]
    assert [r.version for r in swapped] == [2] and swapped[0].lookup("gpt-4o").input_per_mtok == 3.0
    assert load_registry(registry_file).version == 2
    source = load_registry(registry_file).lookup("gpt-4o").source
    assert source == f"{pricing_site.url}/openai"  # each price says where it came from
    # One line per provider with its outcome.
    lines = [
        r for r in caplog.records if r.name == "llmproxy.scheduler" and r.getMessage().startswith("registry scrape")
    ]
    assert sorted(r.provider for r in lines) == ["anthropic", "gemini", "openai"]
    assert next(r for r in lines if r.provider == "gemini").levelno == logging.WARNING


@pytest.mark.parametrize(
    ("status", "body"), [(500, "upstream broke"), (200, ""), (200, "<html><body>We moved things around</body></html>")]
)
async def test_a_broken_or_empty_page_leaves_the_registry_unchanged_and_says_so(
    registry_file: Path, pricing_site: PricingSite, status: int, body: str
) -> None:
    before = prices(registry_file)
    pricing_site.set("openai", body, status)
    updater = RegistryUpdater(updater_settings(registry_file, pricing_site))
    report = await updater.refresh(providers=["openai"])
    openai = report.providers["openai"]
    assert openai["status"] == "stale"
    assert "scrape failed" in openai["message"] and "kept the last good prices" in openai["message"]
    assert report.diff["added"] == [] and report.diff["removed"] == [] and report.diff["changed"] == []
    assert prices(registry_file) == before
    registry = load_registry(registry_file)
    assert registry.providers["openai"]["status"] == "stale"
    assert all(m.stale for m in registry.models if m.provider == "openai")
    assert not any(m.stale for m in registry.models if m.provider != "openai")


async def test_a_provider_that_hangs_times_out_alone(registry_file: Path, pricing_site: PricingSite) -> None:
    pricing_site.delays["/anthropic"] = 1.0
    updater = RegistryUpdater(updater_settings(registry_file, pricing_site, scrape_timeout_s=0.3))
    report = await updater.refresh(providers=["openai", "anthropic"])
    assert report.providers["anthropic"]["status"] == "stale"
    assert "no answer within 0.3s" in report.providers["anthropic"]["message"]
    assert report.providers["openai"]["status"] == "ok"


async def test_a_refresh_while_another_holds_the_lock_is_refused(
    registry_file: Path, pricing_site: PricingSite
) -> None:
    settings = updater_settings(registry_file, pricing_site)
    with exclusive(settings.data_dir / LOCK_FILE) as got:
        assert got
        with pytest.raises(RegistryBusy):
            await RegistryUpdater(settings).refresh()
        with pytest.raises(RegistryBusy):
            await RegistryUpdater(settings).rollback(1)
    assert load_registry(registry_file).version == 1 and pricing_site.hits == 0


async def test_a_scheduled_tick_another_worker_already_ran_is_skipped(
    registry_file: Path, pricing_site: PricingSite
) -> None:
    settings = updater_settings(registry_file, pricing_site)
    tick = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    first = await RegistryUpdater(settings).refresh(due=tick)
    hits = pricing_site.hits
    second = await RegistryUpdater(settings).refresh(due=tick)
    assert first.skipped is None and first.version == 2
    assert second.skipped and "already ran" in second.skipped and second.version == 2
    assert pricing_site.hits == hits and load_registry(registry_file).version == 2


async def test_the_cron_loop_refreshes_on_its_schedule(registry_file: Path, pricing_site: PricingSite) -> None:
    current: list[Registry] = [load_registry(registry_file)]
    settings = updater_settings(
        registry_file, pricing_site, auto_update=True, cron="* * * * * *", watch_interval_s=0.05
    )
    updater = RegistryUpdater(settings, current=lambda: current[-1], on_change=current.append)
    task = asyncio.create_task(updater.run())
    try:
        for _ in range(100):
            if current[-1].version >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert current[-1].version >= 2
    assert current[-1].providers["openai"]["status"] == "ok"


async def test_a_file_written_by_another_process_is_swapped_in(registry_file: Path, pricing_site: PricingSite) -> None:
    current: list[Registry] = [load_registry(registry_file)]
    settings = updater_settings(registry_file, pricing_site)
    watcher = RegistryUpdater(settings, current=lambda: current[-1], on_change=current.append)
    assert await watcher.reload_if_changed() is None
    await RegistryUpdater(settings).refresh(providers=["openai"])  # another worker, or the CLI
    swapped = await watcher.reload_if_changed()
    assert swapped is not None and swapped.version == 2 and current[-1] is swapped
    assert await watcher.reload_if_changed() is None


async def test_a_bad_overrides_file_stops_the_refresh_before_anything_is_written(
    registry_file: Path, pricing_site: PricingSite
) -> None:
    (registry_file.parent / "overrides.json").write_text(json.dumps({"models": {"gpt-4o": {"colour": "red"}}}))
    with pytest.raises(OverridesError, match="'colour' cannot be overridden"):
        await RegistryUpdater(updater_settings(registry_file, pricing_site)).refresh()
    assert load_registry(registry_file).version == 1 and pricing_site.hits == 0


async def test_overrides_from_the_registry_directory_are_applied(
    registry_file: Path, pricing_site: PricingSite
) -> None:
    (registry_file.parent / "overrides.json").write_text(
        json.dumps({"comment": "negotiated", "models": {"gpt-4o": {"input_per_mtok": 1.9}}})
    )
    await RegistryUpdater(updater_settings(registry_file, pricing_site)).refresh(providers=["openai"])
    assert load_registry(registry_file).lookup("gpt-4o").input_per_mtok == 1.9


async def test_an_unknown_provider_is_refused(registry_file: Path) -> None:
    with pytest.raises(RegistryError, match="no scraper for provider 'mistral'"):
        await RegistryUpdater(updater_settings(registry_file)).refresh(providers=["mistral"])
