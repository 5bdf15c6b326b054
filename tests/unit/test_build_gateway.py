"""app.build_gateway: every service built first, the Gateway once (frozen, nothing left to fill in),
the values that change at run time swapped in their holders by their owners, and everything closed
in reverse order on exit, also when start-up fails half-way."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from llmproxy import app as app_module
from llmproxy.access import Access
from llmproxy.app import build_gateway
from llmproxy.config import Settings
from llmproxy.store.backends import Stores
from llmproxy.usage import UsageRecorder
from tests.conftest import base_settings


def settings(tmp_path: Path) -> Settings:
    return base_settings(tmp_path, "http://127.0.0.1:9/v1")


async def test_the_gateway_is_built_whole_and_never_rebound(tmp_path: Path) -> None:
    async with build_gateway(settings(tmp_path)) as gw:
        # `shared` alone is None here: without Redis one process shares nothing (shared/deployment.py).
        assert all(getattr(gw, f.name) is not None for f in dataclasses.fields(gw) if f.name != "shared")
        with pytest.raises(dataclasses.FrozenInstanceError):
            gw.cache = gw.cache  # type: ignore[misc]  # the point: a frozen dataclass refuses it
        # The registry's one owner swaps it in its holder; every reader sees the new one at once.
        newer = dataclasses.replace(gw.registry, version=gw.registry.version + 1)
        gw.registry_updater._swap(newer)
        assert gw.registry is newer and gw.registry_ref.current is newer
        # Access owns the settings: a reload sets the vault's provider keys in a new Settings.
        await gw.access.vault.put(gw.access.db, "test", "anthropic", "sk-ant-from-the-vault")
        before = gw.settings
        await gw.access.reload()
        after = gw.settings.provider("anthropic")
        assert gw.settings is not before and after is not None and after.api_key is not None
        assert after.api_key.value == "sk-ant-from-the-vault"


async def test_a_start_that_fails_half_way_closes_what_was_built_last_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def track(cls: type, name: str, label: str) -> None:
        real = getattr(cls, name)

        async def wrapped(self: object, *args: object, **kwargs: object) -> None:
            closed.append(label)
            await real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapped)

    track(Stores, "close", "stores")
    track(UsageRecorder, "stop", "usage recorder")

    async def refuse(*args: object) -> Access:
        raise RuntimeError("the vault key does not open these credentials")

    monkeypatch.setattr(app_module.Access, "open", refuse)
    with pytest.raises(RuntimeError, match="vault key"):
        async with build_gateway(settings(tmp_path)):
            pass
    assert closed == ["usage recorder", "stores"]
