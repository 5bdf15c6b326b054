"""`llmproxy keys create/update --complexity` sets and clears a key's default complexity."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmproxy.config import Settings
from tests.auth.conftest import settings  # noqa: F401 - fixture used by name
from tests.auth.test_cli import run_cli


def test_cli_sets_and_clears_a_key_complexity(
    settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(settings().data_dir)
    key = run_cli(
        monkeypatch, capsys, "keys", "create", "--name", "batch", "--complexity", "simple", "--data-dir", data
    )
    assert key["complexity"] == "simple"
    updated = run_cli(monkeypatch, capsys, "keys", "update", key["id"], "--complexity", "complex", "--data-dir", data)
    assert updated["complexity"] == "complex"
    cleared = run_cli(monkeypatch, capsys, "keys", "update", key["id"], "--complexity", "default", "--data-dir", data)
    assert cleared["complexity"] is None
