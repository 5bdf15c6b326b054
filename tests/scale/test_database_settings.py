"""Choosing the backend by configuration: LLMPROXY_DATABASE_URL or [database] url; unset is SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmproxy.config import ConfigError, load_settings


def test_no_url_means_the_embedded_sqlite_file(tmp_path: Path) -> None:
    settings = load_settings(None, {})
    assert settings.database.url is None and settings.database.pool_size == 10


def test_the_environment_wins_over_the_file_and_the_url_stays_secret(tmp_path: Path) -> None:
    file = tmp_path / "llmproxy.toml"
    file.write_text('[database]\nurl = "postgresql://file@db/x"\npool_size = 4\n')
    from_file = load_settings(file, {})
    assert from_file.database.url is not None and from_file.database.url.value == "postgresql://file@db/x"
    assert from_file.database.pool_size == 4
    env = load_settings(file, {"LLMPROXY_DATABASE_URL": "postgres://gw:s3cret@db:5432/llmproxy"})
    assert env.database.url is not None and env.database.url.value.startswith("postgres://gw:")
    assert "s3cret" not in repr(env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('url = "mysql://db/x"', "must be a postgresql:// URL"),
        ("pool_size = 0", "pool_size must be 1 or more"),
        ('host = "db"', "unknown setting database.host"),
    ],
)
def test_a_wrong_database_setting_stops_the_start(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "llmproxy.toml"
    file.write_text(f"[database]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(file, {})


async def test_an_unreachable_database_stops_the_start_naming_where_but_not_the_password(tmp_path: Path) -> None:
    from llmproxy.config import DatabaseSettings, Secret, Settings
    from llmproxy.store.backends import open_stores
    from llmproxy.store.postgres import DatabaseUnavailable
    from tests.fakes.serve import free_port

    port = free_port()  # nothing listens there
    url = f"postgresql://gw:hunter2-secret@127.0.0.1:{port}/llmproxy"
    with pytest.raises(DatabaseUnavailable) as caught:
        await open_stores(Settings(data_dir=tmp_path, database=DatabaseSettings(url=Secret(url))))
    assert f"127.0.0.1:{port}/llmproxy" in str(caught.value) and "hunter2" not in str(caught.value)
