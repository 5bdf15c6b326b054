"""Writing models.json: atomically, with a backup, a copy of every version, and the diff between versions.

Layout, next to models.json (the "registry directory"):

    models.json         the current version
    models.json.bak     the version before it (the loader's first fallback)
    versions/000042.json  every version written, by number (the history that `diff` and `rollback` read)

Every write bumps `version`, stamps `generated_at` and records in `changes` what moved since the
previous version. A rollback writes the old models as a new version: numbers only ever go up, so
a gateway watching the file knows a newer one when it sees it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .load import Document, RegistryError, backup_path, parse_document, registry_from_document
from .schema import PRICE_FIELDS

log = logging.getLogger("llmproxy.registry")
VERSIONS_DIR = "versions"
DIFF_FIELDS = (*PRICE_FIELDS, "long_context")
_TOP_ORDER = ("version", "generated_at", "providers", "changes", "models")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    generated_at: str
    models: int
    reason: str | None
    added: int
    removed: int
    changed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "generated_at": self.generated_at,
            "models": self.models,
            "reason": self.reason,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
        }


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_path(path: Path, version: int) -> Path:
    return path.parent / VERSIONS_DIR / f"{version:06d}.json"


def diff_documents(old: Document, new: Document) -> dict[str, Any]:
    """Models added and removed (by id) and price fields changed, from `old` to `new`."""
    before = {m["id"]: m for m in old.get("models", [])}
    after = {m["id"]: m for m in new.get("models", [])}
    changed = []
    for model_id in sorted(before.keys() & after.keys()):
        for key in DIFF_FIELDS:
            was, now = before[model_id].get(key), after[model_id].get(key)
            if was != now:
                changed.append({"id": model_id, "field": key, "old": was, "new": now})
    return {
        "from_version": old.get("version"),
        "to_version": new.get("version"),
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": changed,
    }


def dumps(doc: Document) -> bytes:
    """The file's bytes: the top-level keys in a fixed order, two-space indent, a final newline."""
    ordered = {key: doc[key] for key in _TOP_ORDER if key in doc}
    ordered.update((key, value) for key, value in doc.items() if key not in ordered)
    return orjson.dumps(ordered, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def write_document(path: Path, doc: Document, *, previous: Document, reason: str, keep_versions: int = 0) -> Document:
    """Write `doc` as the next version after `previous` (what the caller read and changed).

    The new bytes are checked with the loader's own check before anything is touched, so a write
    can never leave a file the gateway would refuse. Returns the document as written.
    """
    latest = max(int(previous.get("version", 0)), _latest_version(path))
    new = {**doc, "version": latest + 1, "generated_at": now_iso()}
    delta = diff_documents(previous, new)
    new["changes"] = {
        "from_version": previous.get("version"),
        "reason": reason,
        "added": delta["added"],
        "removed": delta["removed"],
        "changed": delta["changed"],
    }
    data = dumps(new)
    registry_from_document(parse_document(data))  # RegistryError here leaves every file as it was
    (path.parent / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
    # The backup is the version this one replaces: the current file when it is good, else the
    # document the caller started from (its .bak, or the shipped copy on a first start), so a
    # corrupt models.json never overwrites a good .bak.
    before = _good_bytes(path) or dumps(previous)
    before_version = orjson.loads(before).get("version")
    if isinstance(before_version, int) and not version_path(path, before_version).exists():
        atomic_write(version_path(path, before_version), before)  # the seed joins the history
    atomic_write(backup_path(path), before)
    atomic_write(version_path(path, new["version"]), data)
    atomic_write(path, data)
    _prune(path, keep_versions)
    log.info(
        "registry written",
        extra={
            "registry_version": new["version"],
            "reason": reason,
            "added": len(delta["added"]),
            "removed": len(delta["removed"]),
            "changed": len(delta["changed"]),
        },
    )
    return new


def read_version(path: Path, version: int) -> Document:
    """Version `version` from the history (or the current file, if that is the one asked for)."""
    stored = version_path(path, version)
    for candidate in (stored, path):
        try:
            doc = parse_document(candidate.read_bytes())
        except FileNotFoundError:
            continue
        if doc["version"] == version:
            return doc
    raise RegistryError(f"registry version {version} is not in {stored.parent}")


def rollback(path: Path, version: int, *, current: Document, keep_versions: int = 0) -> Document:
    """Make version `version`'s models current again, as a new version. The providers' scrape
    status stays as it is now: the rollback changes prices, not what the last scrape saw."""
    target = read_version(path, version)
    providers = current["providers"] if "providers" in current else target.get("providers", {})
    # A provider whose last scrape failed still cannot vouch for the old prices either.
    unsure = {name for name, status in providers.items() if status.get("status") in ("stale", "held")}
    models = [
        {**m, "stale": True} if m["provider"] in unsure else {k: v for k, v in m.items() if k != "stale"}
        for m in target["models"]
    ]
    doc = {**target, "providers": providers, "models": models}
    return write_document(
        path, doc, previous=current, reason=f"rollback to version {version}", keep_versions=keep_versions
    )


def list_versions(path: Path) -> list[VersionInfo]:
    """The versions in the history, oldest first (unreadable files are skipped)."""
    found: dict[int, VersionInfo] = {}
    for file in sorted((path.parent / VERSIONS_DIR).glob("*.json")):
        try:
            doc = orjson.loads(file.read_bytes())
            found[doc["version"]] = _info(doc)
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("unreadable registry version file %s skipped", file)
    current = _good_bytes(path)
    if current is not None:
        doc = orjson.loads(current)
        found.setdefault(doc["version"], _info(doc))
    return [found[v] for v in sorted(found)]


def atomic_write(target: Path, data: bytes) -> None:
    """Write through a temporary file in the same directory and rename it over `target`, so a
    reader sees the old bytes or the new ones, never a part."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[bool]:
    """Try to take the registry writers' lock (flock on `lock_path`) without waiting; yields whether
    it was taken. flock holds across processes and across separate opens in one process."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _info(doc: Document) -> VersionInfo:
    changes = doc.get("changes") or {}
    return VersionInfo(
        version=doc["version"],
        generated_at=str(doc.get("generated_at") or ""),
        models=len(doc.get("models") or ()),
        reason=changes.get("reason"),
        added=len(changes.get("added") or ()),
        removed=len(changes.get("removed") or ()),
        changed=len(changes.get("changed") or ()),
    )


def _good_bytes(path: Path) -> bytes | None:
    """The current file's bytes if it passes the check; None if missing or bad."""
    try:
        data = path.read_bytes()
        registry_from_document(parse_document(data))
    except (OSError, RegistryError):
        return None
    return data


def _latest_version(path: Path) -> int:
    numbers = [int(f.stem) for f in (path.parent / VERSIONS_DIR).glob("*.json") if f.stem.isdigit()]
    return max(numbers, default=0)


def _prune(path: Path, keep: int) -> None:
    """Drop the oldest version copies beyond `keep` (0 keeps them all)."""
    if keep <= 0:
        return
    files = sorted(f for f in (path.parent / VERSIONS_DIR).glob("*.json") if f.stem.isdigit())
    for old in files[:-keep]:
        old.unlink(missing_ok=True)
