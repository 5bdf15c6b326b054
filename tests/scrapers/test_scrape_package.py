"""The package surface the scheduler relies on, and its independence from llmproxy."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import tomllib
from pathlib import Path

import pytest

import llmproxy_scrapers
from llmproxy_scrapers import SCRAPERS, FetchError, ParseError, PriceEntry


def test_scrapers_registry_lists_the_three_providers() -> None:
    assert set(SCRAPERS) == {"openai", "anthropic", "gemini"}
    for name, module in SCRAPERS.items():
        assert module.NAME == name
        assert isinstance(module.PAGE_URLS, tuple) and module.PAGE_URLS
        assert all(url.startswith("https://") for url in module.PAGE_URLS)
        assert callable(module.parse)
        assert inspect.iscoroutinefunction(module.fetch)
        assert list(inspect.signature(module.fetch).parameters) == ["client", "url"]


def test_errors_are_what_callers_catch() -> None:
    assert issubclass(ParseError, ValueError)
    assert not issubclass(FetchError, ParseError)


def test_price_entry_is_frozen_with_defaults() -> None:
    entry = PriceEntry(provider="openai", model="gpt-5.1", input_per_mtok=1.25, output_per_mtok=10.0)
    assert entry.aliases == () and entry.source_url == "" and entry.cached_input_per_mtok is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.model = "x"  # type: ignore[misc]  # the very assignment a frozen dataclass refuses
    assert not hasattr(entry, "__dict__")  # slots
    assert hash(entry) == hash(dataclasses.replace(entry))


def test_package_imports_nothing_from_llmproxy() -> None:
    for path in Path(llmproxy_scrapers.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "llmproxy" or n.startswith("llmproxy.") for n in names), path


def test_installed_under_a_name_of_its_own() -> None:
    """The repository keeps its scrapers/ folder, but a wheel installs the package as
    llmproxy_scrapers (hatch names a package after the last part of its path), never as a
    generic top-level `scrapers` that another distribution could also claim."""
    repo = Path(__file__).resolve().parents[2]
    hatch = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["hatch"]
    packages = hatch["build"]["targets"]["wheel"]["packages"]
    assert sorted(Path(p).name for p in packages) == ["llmproxy", "llmproxy_scrapers"]
    assert "scrapers/llmproxy_scrapers" in packages
    assert Path(llmproxy_scrapers.__file__).parent == repo / "scrapers" / "llmproxy_scrapers"
    assert not (repo / "scrapers" / "__init__.py").exists()
