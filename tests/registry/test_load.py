"""Loading models.json: the strict format check, its messages, and the fallbacks (.bak, then shipped)."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from llmproxy.registry import RegistryError, load_registry, parse_registry, shipped_registry

from .conftest import REPO


def seed() -> dict[str, Any]:
    return json.loads((REPO / "registry" / "models.json").read_text())


def refuse(doc: Any) -> str:
    with pytest.raises(RegistryError) as caught:
        parse_registry(json.dumps(doc).encode())
    return str(caught.value)


def test_the_shipped_registry_passes_the_strict_check() -> None:
    registry = parse_registry(shipped_registry().read_bytes())
    assert len(registry.models) == 52 and registry.version >= 1
    assert registry.unpriced == ()
    assert registry.lookup("claude-sonnet-4-5").id == "claude-sonnet-4-5-20250929"
    assert set(registry.providers) == {"openai", "anthropic", "gemini"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["models"][0].update(input_per_mtok=-1), "input_per_mtok must be a non-negative number"),
        (lambda d: d["models"][0].update(input_per_mtok="3.0"), "input_per_mtok must be a non-negative number"),
        (lambda d: d["models"][0].update(inptu_per_mtok=3.0), "inptu_per_mtok is not a known field"),
        (lambda d: d["models"][0].update(context_window=0), "context_window must be a positive integer"),
        (lambda d: d["models"][0]["capabilities"].update(telepathy=True), "unknown capability 'telepathy'"),
        (lambda d: d["models"][0].update(quality=50), "quality must be null or"),
        (lambda d: d["models"][0].update(aliases="gpt"), "aliases must be a list of names"),
        (lambda d: d["models"][0].pop("provider"), "provider is missing"),
        (lambda d: d["models"][0].update(long_context={"input_per_mtok": 1.0}), "threshold must be a positive integer"),
        (lambda d: d["providers"]["openai"].update(status="fine"), "providers.openai.status must be one of"),
        (lambda d: d.update(version="7"), "version must be a non-negative integer"),
        (lambda d: d.update(extra=1), "extra is not a known field"),
    ],
)
def test_a_bad_file_is_refused_with_the_place_and_the_problem(change: Any, message: str) -> None:
    doc = seed()
    change(doc)
    text = refuse(doc)
    assert message in text
    if "models" in message or text.startswith("models["):
        assert "models[0] 'claude-3-5-haiku-20241022'" in text


def test_two_models_claiming_one_name_are_refused() -> None:
    doc = seed()
    doc["models"][1]["aliases"].append(doc["models"][0]["id"])
    assert "is used twice" in refuse(doc)


def test_not_json_is_refused() -> None:
    with pytest.raises(RegistryError, match="not valid JSON"):
        parse_registry(b'{"version": 1, "models": [')


def test_a_model_without_a_price_is_loud(caplog: pytest.LogCaptureFixture) -> None:
    doc = seed()
    doc["models"][0]["input_per_mtok"] = None
    with caplog.at_level(logging.WARNING, logger="llmproxy.registry"):
        registry = parse_registry(json.dumps(doc).encode())
    assert registry.unpriced == ("claude-3-5-haiku-20241022",)
    assert not registry.lookup("claude-3-5-haiku-20241022").priced
    assert "without a known price" in caplog.text and "claude-3-5-haiku-20241022" in caplog.text


def test_a_corrupt_models_json_falls_back_to_the_backup(registry_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    backup = seed()
    backup["version"] = 7
    registry_file.with_name("models.json.bak").write_text(json.dumps(backup))
    registry_file.write_text('{"version": 8, "models": [{"id": ')  # a write cut in half
    with caplog.at_level(logging.ERROR, logger="llmproxy.registry"):
        registry = load_registry(registry_file)
    assert registry.version == 7
    assert registry.path == str(registry_file.with_name("models.json.bak"))
    assert "refused" in caplog.text and "fell back" in caplog.text


def test_a_file_failing_the_check_falls_back_to_the_backup(registry_file: Path) -> None:
    shutil.copy(registry_file, registry_file.with_name("models.json.bak"))
    bad = seed()
    bad["models"][3]["output_per_mtok"] = -5
    bad["version"] = 99
    registry_file.write_text(json.dumps(bad))
    assert load_registry(registry_file).version == 1


def test_with_file_and_backup_both_bad_the_shipped_copy_is_used(registry_file: Path) -> None:
    registry_file.write_text("garbage")
    registry_file.with_name("models.json.bak").write_text("{}")
    registry = load_registry(registry_file)
    assert registry.path == str(shipped_registry())
    assert len(registry.models) == 52


def test_a_missing_file_uses_the_shipped_copy(tmp_path: Path) -> None:
    registry = load_registry(tmp_path / "nowhere" / "models.json")
    assert registry.path == str(shipped_registry())


def test_the_checked_document_is_not_changed_by_loading() -> None:
    doc = seed()
    before = copy.deepcopy(doc)
    parse_registry(json.dumps(doc).encode())
    assert doc == before
