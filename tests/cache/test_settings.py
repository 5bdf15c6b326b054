"""The [cache] section of llmproxy.toml and LLMPROXY_CACHE."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmproxy.config import CacheKeySettings, CacheSettings, ConfigError, load_settings
from llmproxy.cache_tiers import disk_tier


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> CacheSettings:
    path = tmp_path / "llmproxy.toml"
    path.write_text(text)
    return load_settings(path, env or {}).cache


def test_defaults_when_the_file_says_nothing(tmp_path: Path) -> None:
    cache = load(tmp_path, "")
    assert cache == CacheSettings()
    assert cache.enabled and not cache.temperature_above_zero and cache.scope == "key"
    assert cache.persist is None  # on, unless Redis holds the shared tier (cache.disk_tier)


def test_file_values_and_per_key_tables(tmp_path: Path) -> None:
    cache = load(
        tmp_path,
        '[cache]\nttl_s = 60\nmax_memory_bytes = 1000\nscope = "shared"\n'
        "temperature_above_zero = true\nmax_write_queue_bytes = 2048\n[cache.keys.k_123]\nenabled = false\n"
        '[cache.keys."team key"]\nttl_s = 5.5\ntemperature_above_zero = true\n',
    )
    assert (cache.ttl_s, cache.max_memory_bytes, cache.scope, cache.temperature_above_zero) == (
        60,
        1000,
        "shared",
        True,
    )
    assert cache.max_write_queue_bytes == 2048
    assert cache.keys == {
        "k_123": CacheKeySettings(enabled=False),
        "team key": CacheKeySettings(ttl_s=5.5, temperature_above_zero=True),
    }


def test_environment_switch_wins(tmp_path: Path) -> None:
    assert load(tmp_path, "[cache]\nenabled = true\n", {"LLMPROXY_CACHE": "off"}).enabled is False
    assert load(tmp_path, "[cache]\nenabled = false\n", {"LLMPROXY_CACHE": "on"}).enabled is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[cache]\nttl = 5\n", "unknown setting cache.ttl"),
        ('[cache]\nscope = "team"\n', "cache.scope"),
        ("[cache]\nttl_s = -1\n", "cache.ttl_s"),
        ('[cache]\nenabled = "yes"\n', "cache.enabled must be a bool"),
        ("[cache.keys.k1]\nttl = 5\n", "unknown setting cache.keys.k1.ttl"),
    ],
)
def test_mistakes_stop_the_start_naming_the_setting(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_the_disk_tier_is_off_by_default_only_when_redis_holds_a_shared_tier() -> None:
    shared = object()  # any shared tier
    assert disk_tier(CacheSettings(), None) and not disk_tier(CacheSettings(), shared)
    assert disk_tier(CacheSettings(persist=True), shared)  # asked for: both
    assert not disk_tier(CacheSettings(persist=False), None)
