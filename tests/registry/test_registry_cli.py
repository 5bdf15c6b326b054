"""`llmproxy registry status | versions | diff | rollback | update` on a copy of the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmproxy.cli import main
from llmproxy.registry import load_registry

from .conftest import PricingSite, page_text


@pytest.fixture
def config(tmp_path: Path, registry_file: Path, pricing_site: PricingSite) -> Path:
    pages = "\n".join(f'{p} = "{urls[0]}"' for p, urls in pricing_site.pages().items())
    path = tmp_path / "llmproxy.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[registry]\npath = "{registry_file}"\nauto_update = false\nmax_model_loss = 1.0\n'
        f"[registry.pages]\n{pages}\n"
    )
    return path


def run(config: Path, *args: str) -> None:
    assert main(["--config", str(config), "registry", *args]) == 0


def test_update_then_versions_diff_and_rollback(
    config: Path, registry_file: Path, pricing_site: PricingSite, capsys: pytest.CaptureFixture[str]
) -> None:
    pricing_site.set(
        "anthropic",
        page_text("anthropic").replace("| $3 / MTok         | $3.75 / MTok", "| $3.50 / MTok      | $3.75 / MTok", 1),
    )
    run(config, "update", "--provider", "anthropic")
    out = capsys.readouterr().out
    assert "version 1 -> 2" in out and "anthropic  ok" in out
    assert "~ claude-sonnet-4-6.input_per_mtok: 3.0 -> 3.5" in out
    assert load_registry(registry_file).lookup("claude-sonnet-4-6").input_per_mtok == 3.5

    run(config, "versions")
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[0] == "1" and out[2].split()[0] == "2*"

    run(config, "--json", "diff", "1", "2")
    diff = json.loads(capsys.readouterr().out)
    assert diff["changed"] == [{"id": "claude-sonnet-4-6", "field": "input_per_mtok", "old": 3.0, "new": 3.5}]

    run(config, "rollback", "1")
    assert "rolled back to version 1: now version 3" in capsys.readouterr().out
    assert load_registry(registry_file).lookup("claude-sonnet-4-6").input_per_mtok == 3.0

    run(config, "status")
    out = capsys.readouterr().out
    assert out.startswith("version 3") and "anthropic  ok" in out


def test_a_held_back_update_is_reported_and_force_applies_it(
    config: Path, registry_file: Path, pricing_site: PricingSite, capsys: pytest.CaptureFixture[str]
) -> None:
    pricing_site.set("openai", page_text("openai").replace("| gpt-4o | $2.50 |", "| gpt-4o | $25.00 |"))
    run(config, "update", "--provider", "openai")
    out = capsys.readouterr().out
    assert "openai     held" in out and "gpt-4o.input_per_mtok: $2.5 -> $25" in out
    assert load_registry(registry_file).lookup("gpt-4o").input_per_mtok == 2.5
    run(config, "update", "--provider", "openai", "--force")
    assert load_registry(registry_file).lookup("gpt-4o").input_per_mtok == 25.0


def test_errors_are_one_line_and_a_nonzero_exit(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "registry", "diff", "1", "9"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"llmproxy registry: registry version 9 is not in {config.parent / 'registry' / 'versions'}"
    )
    assert main(["--config", str(config), "registry", "update", "--provider", "mistral"]) == 2
    assert "no scraper for provider 'mistral'" in capsys.readouterr().err
