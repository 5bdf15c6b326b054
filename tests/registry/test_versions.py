"""Writing models.json: version bump, backup, history copy, recorded diff, rollback, lock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmproxy.registry import RegistryError, load_document, load_registry
from llmproxy.registry.versions import (
    diff_documents,
    exclusive,
    list_versions,
    read_version,
    rollback,
    version_path,
    write_document,
)


def with_price(doc: dict[str, Any], model_id: str, **prices: float) -> dict[str, Any]:
    models = [{**m, **prices} if m["id"] == model_id else m for m in doc["models"]]
    return {**doc, "models": models}


def test_a_write_bumps_the_version_keeps_the_backup_and_a_copy(registry_file: Path) -> None:
    before_bytes = registry_file.read_bytes()
    doc, _ = load_document(registry_file)
    changed = with_price(doc, "gpt-4o", input_per_mtok=3.0)
    written = write_document(registry_file, changed, previous=doc, reason="test")
    assert written["version"] == 2
    assert registry_file.with_name("models.json.bak").read_bytes() == before_bytes
    assert version_path(registry_file, 1).read_bytes() == before_bytes  # the seed joins the history
    assert version_path(registry_file, 2).read_bytes() == registry_file.read_bytes()
    assert written["changes"] == {
        "from_version": 1,
        "reason": "test",
        "added": [],
        "removed": [],
        "changed": [{"id": "gpt-4o", "field": "input_per_mtok", "old": 2.5, "new": 3.0}],
    }
    assert load_registry(registry_file).lookup("gpt-4o").input_per_mtok == 3.0
    assert not list(registry_file.parent.glob(".*.tmp"))  # no temporary file left behind


def test_a_document_that_would_not_load_is_not_written(registry_file: Path) -> None:
    before = registry_file.read_bytes()
    doc, _ = load_document(registry_file)
    bad = with_price(doc, "gpt-4o", input_per_mtok=-1.0)
    with pytest.raises(RegistryError, match="input_per_mtok"):
        write_document(registry_file, bad, previous=doc, reason="test")
    assert registry_file.read_bytes() == before
    assert not registry_file.with_name("models.json.bak").exists()
    assert not (registry_file.parent / "versions").exists()


def test_a_corrupt_current_file_never_overwrites_a_good_backup(registry_file: Path) -> None:
    doc, _ = load_document(registry_file)
    write_document(registry_file, with_price(doc, "gpt-4o", input_per_mtok=3.0), previous=doc, reason="one")
    good_backup = registry_file.with_name("models.json.bak").read_bytes()
    registry_file.write_text("{ truncated")
    doc, used = load_document(registry_file)  # falls back to the .bak (version 1)
    assert used.name == "models.json.bak"
    written = write_document(registry_file, doc, previous=doc, reason="two")
    assert written["version"] == 3  # above every version in the history, not 2 again
    assert registry_file.with_name("models.json.bak").read_bytes() == good_backup


def test_diff_lists_added_removed_and_price_changes(registry_file: Path) -> None:
    doc, _ = load_document(registry_file)
    new = with_price(doc, "o3", output_per_mtok=9.0, cached_input_per_mtok=0.4)
    new["models"] = [m for m in new["models"] if m["id"] != "gpt-4o"] + [
        {
            "id": "my-model",
            "provider": "openai",
            "provider_model": "my-model",
            "input_per_mtok": 1.0,
            "output_per_mtok": 2.0,
        }
    ]
    diff = diff_documents(doc, {**new, "version": 2})
    assert diff["added"] == ["my-model"] and diff["removed"] == ["gpt-4o"]
    assert {(c["id"], c["field"], c["old"], c["new"]) for c in diff["changed"]} == {
        ("o3", "output_per_mtok", 8.0, 9.0),
        ("o3", "cached_input_per_mtok", 0.5, 0.4),
    }
    assert (diff["from_version"], diff["to_version"]) == (1, 2)


def test_rollback_writes_the_old_models_as_a_new_version(registry_file: Path) -> None:
    doc, _ = load_document(registry_file)
    v2 = write_document(registry_file, with_price(doc, "gpt-4o", input_per_mtok=3.0), previous=doc, reason="a")
    v3 = write_document(registry_file, with_price(v2, "gpt-4o", input_per_mtok=4.0), previous=v2, reason="b")
    v4 = rollback(registry_file, 2, current=v3)
    assert v4["version"] == 4 and v4["changes"]["reason"] == "rollback to version 2"
    assert load_registry(registry_file).lookup("gpt-4o").input_per_mtok == 3.0
    assert [v.version for v in list_versions(registry_file)] == [1, 2, 3, 4]
    assert read_version(registry_file, 3)["models"] == v3["models"]
    with pytest.raises(RegistryError, match="version 17 is not in"):
        read_version(registry_file, 17)


def test_old_versions_beyond_keep_versions_are_pruned(registry_file: Path) -> None:
    doc, _ = load_document(registry_file)
    for price in (3.0, 4.0, 5.0, 6.0):
        doc = write_document(
            registry_file, with_price(doc, "gpt-4o", input_per_mtok=price), previous=doc, reason="p", keep_versions=3
        )
    assert sorted(p.name for p in (registry_file.parent / "versions").iterdir()) == [
        "000003.json",
        "000004.json",
        "000005.json",
    ]


def test_the_lock_is_exclusive_within_and_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / "data" / "registry.lock"
    with exclusive(lock) as first:
        assert first
        with exclusive(lock) as second:
            assert not second
        code = (
            "import sys; from pathlib import Path; from llmproxy.registry.versions import exclusive\n"
            f"with exclusive(Path({str(lock)!r})) as got: sys.exit(0 if got else 3)"
        )
        assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 3
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


def test_versions_of_a_hand_written_file_list_it(registry_file: Path) -> None:
    infos = list_versions(registry_file)
    assert [(v.version, v.models) for v in infos] == [(1, 52)]
    assert json.loads(registry_file.read_text())["version"] == 1


def test_a_first_write_without_a_file_keeps_the_shipped_copy_as_version_and_backup(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "models.json"  # a new container's empty /data/registry
    doc, used = load_document(path)
    assert used != path
    write_document(path, with_price(doc, "gpt-4o", input_per_mtok=3.0), previous=doc, reason="first")
    assert [v.version for v in list_versions(path)] == [1, 2]
    assert load_registry(path.with_name("models.json.bak")).version == 1
    assert rollback(path, 1, current=load_document(path)[0])["version"] == 3
