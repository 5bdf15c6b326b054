"""The upstream timeouts are settings of each provider, read from llmproxy.toml and checked there."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmproxy.config import ConfigError, load_settings
from llmproxy.providers.base import first_byte_s


def provider(tmp_path: Path, table: str) -> object:
    path = tmp_path / "llmproxy.toml"
    path.write_text(f'[providers.local]\nbase_url = "http://127.0.0.1:9/v1"\n{table}\n')
    return next(p for p in load_settings(path, {}).providers if p.name == "local")


def test_stream_timeouts_are_read_and_default_to_timeout_s(tmp_path: Path) -> None:
    tuned = provider(
        tmp_path, "timeout_s = 30\nfirst_byte_timeout_s = 5\nstream_idle_timeout_s = 20\nstream_timeout_s = 900"
    )
    assert (tuned.first_byte_timeout_s, tuned.stream_idle_timeout_s, tuned.stream_timeout_s) == (5.0, 20.0, 900.0)
    plain = provider(tmp_path, "timeout_s = 30")
    assert plain.stream_timeout_s is None and first_byte_s(plain) == 30.0


@pytest.mark.parametrize(
    "table", ["first_byte_timeout_s = 0", "stream_idle_timeout_s = -1", "timeout_s = 0", 'stream_timeout_s = "long"']
)
def test_a_timeout_that_could_never_be_met_is_refused_at_startup(tmp_path: Path, table: str) -> None:
    with pytest.raises(ConfigError, match="providers.local"):
        provider(tmp_path, table)
