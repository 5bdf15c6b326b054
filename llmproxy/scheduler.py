"""Registry updates: the cron loop inside the gateway, and the refresh it (and the admin API and the
CLI) runs: scrapers -> registry.merge -> registry.versions -> a new Registry swapped in.

One writer at a time: a refresh holds an flock on <data_dir>/registry.lock, so of several workers
or instances sharing the data directory only one scrapes; the others skip that tick and pick up
the new models.json through the file watch (`reload_if_changed`), as they do after a CLI write.
With a shared database (store.protocols.RegistryHistory, PostgreSQL), the writer also holds the
deployment's lock there and publishes each version it writes; every other gateway copies a newer
published version into its own registry directory, under the same number, and swaps it in (at
once on the database's notification, else at the next watch). Without a shared database but with
Redis, a lock there (`deployment_lock`) keeps the deployment's writers apart, and each version
written here is announced (`published`) so the other processes look at once (`wake`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
from croniter import croniter

from llmproxy_scrapers import SCRAPERS

from .config import Settings
from .registry import (
    Document,
    Registry,
    RegistryError,
    load_document,
    load_registry,
    parse_document,
    registry_from_document,
    warn_unpriced,
)
from .registry.merge import MergePolicy, OverridesError, ScrapeResult, merge, parse_overrides
from .registry.versions import (
    atomic_write,
    diff_documents,
    dumps,
    exclusive,
    now_iso,
    rollback,
    version_path,
    write_document,
)
from .store.protocols import RegistryHistory

log = logging.getLogger("llmproxy.scheduler")
OVERRIDES_FILE = "overrides.json"
LOCK_FILE = "registry.lock"


class RegistryBusy(RuntimeError):
    """Another refresh or rollback (in this process or another) holds the registry lock."""


@dataclass(slots=True)
class RefreshReport:
    """What one refresh did: the new version, the diff, and each provider's outcome."""

    version: int
    previous_version: int
    diff: dict[str, Any]
    providers: dict[str, dict[str, Any]]
    drift: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why a scheduled run did nothing (another worker already ran it)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous_version": self.previous_version,
            "diff": self.diff,
            "providers": self.providers,
            "drift": self.drift,
            "skipped": self.skipped,
        }


class RegistryUpdater:
    """Refreshes, rollbacks and the file watch for one registry path. `on_change` receives each new
    Registry (in the app: the registry holder's `set`, this updater being its one owner); `current`
    returns the one in use."""

    def __init__(
        self,
        settings: Settings,
        *,
        current: Callable[[], Registry | None] = lambda: None,
        on_change: Callable[[Registry], None] | None = None,
        scrapers: Mapping[str, ModuleType] = SCRAPERS,
        history: RegistryHistory | None = None,
    ) -> None:
        self.settings = settings
        self.options = settings.registry_update
        self.path = Path(settings.registry_path)
        self.lock_path = Path(settings.data_dir) / LOCK_FILE
        self.scrapers = scrapers
        self._current = current
        self._on_change = on_change
        self._seen = self._stamp()
        self._history = history
        self._published = asyncio.Event()  # set by the database's notification of a new version
        self._history_failing = False
        # Set by the app when Redis is configured (shared/deployment.py).
        self.deployment_lock: Callable[[], contextlib.AbstractAsyncContextManager[bool]] = _no_lock
        self.published: Callable[[int], None] | None = None

    def wake(self) -> None:
        """Another gateway published a version: look at once instead of at the next watch."""
        self._published.set()

    async def refresh(
        self, *, force: bool = False, providers: Iterable[str] | None = None, due: datetime | None = None
    ) -> RefreshReport:
        """Scrape (all providers, or `providers`), merge, write a new version, swap it in.
        RegistryBusy when another writer holds the lock; RegistryError (OverridesError) when the
        files cannot be read or the result would not load. `due`: a scheduled tick, skipped when
        another worker has already run it."""
        names = list(providers) if providers is not None else list(self.scrapers)
        unknown = [n for n in names if n not in self.scrapers]
        if unknown:
            raise RegistryError(f"no scraper for provider {unknown[0]!r} (known: {', '.join(self.scrapers)})")
        async with self._deployment_lock(), self._local_lock():
            await self.catch_up()  # refresh from the deployment's newest version, never an older one
            doc, overrides = await asyncio.to_thread(self._read_inputs)
            if due is not None and _already_ran(doc, names, due):
                return RefreshReport(
                    doc["version"],
                    doc["version"],
                    diff_documents(doc, doc),
                    {},
                    skipped=f"another worker already ran the {due.isoformat()} refresh",
                )
            scraped = await self.scrape(names)
            policy = MergePolicy(
                max_model_loss=self.options.max_model_loss, max_price_factor=self.options.max_price_factor, force=force
            )
            result = merge(doc, scraped, overrides, policy, now=now_iso())
            reason = "scheduled refresh" if due else ("forced refresh" if force else "refresh")
            written = await asyncio.to_thread(
                write_document,
                self.path,
                result.document,
                previous=doc,
                reason=reason,
                keep_versions=self.options.keep_versions,
            )
            await self._publish(written, previous=doc)
        registry = warn_unpriced(registry_from_document(written, path=str(self.path)))
        self._swap(registry, announce=True)
        report = RefreshReport(
            written["version"],
            doc["version"],
            diff_documents(doc, written),
            {name: o.as_dict() for name, o in result.outcomes.items()},
            result.drift,
        )
        _log_run(report)
        return report

    async def scrape(self, names: Iterable[str]) -> dict[str, ScrapeResult]:
        """Every provider's entries, fetched concurrently; a failing provider gives its exception."""
        names = list(names)
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.options.scrape_timeout_s)) as client:
            results = await asyncio.gather(*(self._scrape_one(client, name) for name in names))
        return dict(zip(names, results, strict=True))

    async def rollback(self, version: int) -> tuple[Document, dict[str, Any]]:
        """Make `version`'s models current again (as a new version); returns it and the diff."""
        async with self._deployment_lock(), self._local_lock():
            await self.catch_up()
            await self._fetch_version(version)

            def work() -> tuple[Document, Document]:
                current, _ = load_document(self.path)
                return current, rollback(self.path, version, current=current, keep_versions=self.options.keep_versions)

            current, written = await asyncio.to_thread(work)
            await self._publish(written, previous=current)
        self._swap(warn_unpriced(registry_from_document(written, path=str(self.path))), announce=True)
        log.info("registry rolled back", extra={"registry_version": written["version"], "to_version": version})
        return written, diff_documents(current, written)

    async def run(self) -> None:
        """The loop the app runs as a task: refresh at each cron tick (when auto_update is on) and,
        between ticks, swap in a models.json that another process wrote. Never raises but on cancel."""
        ticks = croniter(self.options.cron, datetime.now(UTC)) if self.options.auto_update else None
        while True:
            due = ticks.get_next(datetime) if ticks else None
            while due is None or (wait := (due - datetime.now(UTC)).total_seconds()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._published.wait(),
                        self.options.watch_interval_s if due is None else min(wait, self.options.watch_interval_s),
                    )
                self._published.clear()
                await self._watch_once()
            try:
                await self.refresh(due=due)
            except RegistryBusy:
                log.info("scheduled registry refresh skipped: another worker is running it")
            except Exception:  # the loop must survive a bad run; the next tick retries
                log.exception("scheduled registry refresh failed")

    async def reload_if_changed(self) -> Registry | None:
        """Swap in models.json if it changed on disk to another version; returns the new Registry."""
        stamp = self._stamp()
        if stamp == self._seen:
            return None
        self._seen = stamp
        registry = await asyncio.to_thread(load_registry, self.path)
        current = self._current()
        if current is not None and current.version == registry.version and current.path == registry.path:
            return None
        self._swap(registry)
        log.info("registry reloaded from disk", extra={"registry_version": registry.version, "path": registry.path})
        return registry

    def _read_inputs(self) -> tuple[Document, dict[str, Any]]:
        doc, used = load_document(self.path)
        if used != self.path:
            log.warning("refreshing from %s because %s could not be used", used, self.path)
        overrides_path = self.path.parent / OVERRIDES_FILE
        try:
            raw = orjson.loads(overrides_path.read_bytes())
        except FileNotFoundError:
            return doc, {}
        except orjson.JSONDecodeError as exc:
            raise OverridesError(f"{overrides_path} is not valid JSON: {exc}") from None
        return doc, parse_overrides(raw)

    async def _scrape_one(self, client: httpx.AsyncClient, name: str) -> ScrapeResult:
        module = self.scrapers[name]
        urls = self.options.pages.get(name) or (None,)
        try:
            entries: dict[str, Any] = {}
            for url in urls:
                found = await asyncio.wait_for(module.fetch(client, url), self.options.scrape_timeout_s)
                for entry in found:
                    entries.setdefault(entry.model, entry)
            return list(entries.values())
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return TimeoutError(f"{name}: no answer within {self.options.scrape_timeout_s:g}s")
        except Exception as exc:  # noqa: BLE001 - one provider's failure, of any kind, is its own
            return exc

    async def _watch_once(self) -> None:
        try:
            await self.reload_if_changed()
            await self.catch_up()
        except RegistryError as exc:
            log.error("registry on disk could not be loaded; keeping the one in use: %s", exc)

    async def catch_up(self) -> Registry | None:
        """Copy the deployment's newest published version into this registry directory (same
        number) and swap it in, when it is newer than the one here; returns the new Registry.
        A database that cannot be reached is said once; the registry in use stays."""
        if self._history is None:
            return None
        try:
            latest = await self._history.latest()
            here = await asyncio.to_thread(_local_version, self.path)
            if latest <= here:
                self._history_failing = False
                return None
            data = await self._history.read(latest)
        except Exception as exc:  # noqa: BLE001 - the database away: keep the registry in use, look again later
            if not self._history_failing:
                log.warning("could not read the published registry versions: %s", exc)
            self._history_failing = True
            return None
        self._history_failing = False
        if data is None:
            return None
        registry = warn_unpriced(registry_from_document(parse_document(data), path=str(self.path)))
        await asyncio.to_thread(_install, self.path, latest, data)
        self._swap(registry)
        log.info("registry version published by another gateway swapped in", extra={"registry_version": latest})
        return registry

    async def _fetch_version(self, version: int) -> None:
        """A version another gateway wrote, into this directory's history (for a rollback to it)."""
        if self._history is None or version_path(self.path, version).exists():
            return
        data = await self._history.read(version)
        if data is not None:
            await asyncio.to_thread(_save_version, self.path, version, data)

    async def _publish(self, written: Document, *, previous: Document) -> None:
        """`written` to the deployment's history, and the version it replaced when that is not
        there yet (the shipped seed, before the first write), so any gateway can roll back to it."""
        if self._history is not None:
            if isinstance(previous.get("version"), int):
                await self._history.publish(previous["version"], dumps(previous))  # a no-op when known
            if not await self._history.publish(written["version"], dumps(written)):
                log.warning("registry version %s was already published by another gateway", written["version"])

    @contextlib.asynccontextmanager
    async def _deployment_lock(self) -> AsyncIterator[None]:
        """The shared database's writer lock, when there is one (RegistryBusy when another holds it)."""
        if self._history is None:
            async with self.deployment_lock() as ours:  # Redis's, or none
                if not ours:
                    raise RegistryBusy("another gateway of this deployment is refreshing the registry")
                yield
            return
        async with self._history.exclusive() as locked:
            if not locked:
                raise RegistryBusy("another gateway is refreshing or rolling back the registry (lock held)")
            yield

    @contextlib.asynccontextmanager
    async def _local_lock(self) -> AsyncIterator[None]:
        """This registry directory's writer lock (flock; RegistryBusy when another holds it)."""
        with exclusive(self.lock_path) as locked:
            if not locked:
                raise RegistryBusy("another registry refresh or rollback is running (lock held)")
            yield

    def _swap(self, registry: Registry, *, announce: bool = False) -> None:
        self._seen = self._stamp()
        if self._on_change is not None:
            self._on_change(registry)
        if announce and self.published is not None:
            self.published(registry.version)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


@contextlib.asynccontextmanager
async def _no_lock() -> AsyncIterator[bool]:
    yield True


def _local_version(path: Path) -> int:
    try:
        doc, _ = load_document(path)
    except RegistryError:
        return 0
    return int(doc.get("version", 0))


def _save_version(path: Path, version: int, data: bytes) -> None:
    version_path(path, version).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(version_path(path, version), data)


def _install(path: Path, version: int, data: bytes) -> None:
    """A published version becomes this directory's current one: its history copy, then the file."""
    _save_version(path, version, data)
    atomic_write(path, data)


def _already_ran(doc: Document, names: Iterable[str], due: datetime) -> bool:
    """Did another worker refresh every one of `names` at or after this tick?"""
    providers = doc.get("providers") or {}
    tick = due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return all((providers.get(n) or {}).get("last_attempt") and providers[n]["last_attempt"] >= tick for n in names)


def _log_run(report: RefreshReport) -> None:
    for name, outcome in report.providers.items():
        level = logging.INFO if outcome["status"] == "ok" else logging.WARNING
        log.log(
            level,
            "registry scrape %s: %s",
            name,
            outcome["message"],
            extra={
                "provider": name,
                "status": outcome["status"],
                "problems": outcome["problems"] or None,
                "registry_version": report.version,
            },
        )
    for drift in report.drift:
        log.warning("price drift under an override", extra=drift)
    diff = report.diff
    log.info(
        "registry refresh done",
        extra={
            "registry_version": report.version,
            "previous_version": report.previous_version,
            "added": len(diff["added"]),
            "removed": len(diff["removed"]),
            "changed": len(diff["changed"]),
        },
    )


def start_updater(updater: RegistryUpdater) -> asyncio.Task[None]:
    """Start the updater's loop as a task; called by the app's lifespan."""
    return asyncio.create_task(updater.run(), name="llmproxy-registry-updater")


async def stop_updater(task: asyncio.Task[None]) -> None:
    """Cancel the loop (a refresh in flight stops at its next await; files are only ever renamed
    into place, so nothing is left half-written) and wait for it."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
