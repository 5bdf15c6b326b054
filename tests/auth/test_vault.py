"""Provider credentials at rest: authenticated encryption bound to the provider, the key file, the
admin API and CLI, configured keys winning over the vault's, and key rotation while serving (no
credential lost, a restart with the new key reads everything)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from llmproxy import cli
from llmproxy.config import Secret, Settings
from llmproxy.vault import VaultError, VaultKey, load_key
from tests.auth.conftest import Gw
from tests.fakes.openai_server import API_KEY

OTHER_SECRETS = {"anthropic": "sk-ant-vault-test-0123456789abcdef", "gemini": "AIza-vault-test-0123456789abcdef"}


def keyless(settings: Settings) -> Settings:
    """The test settings with no key configured for the openai provider (the fake requires one)."""
    providers = tuple(replace(p, api_key=None) if p.name == "openai" else p for p in settings.providers)
    return replace(settings, providers=providers)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> object:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("LLMPROXY_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_")):
            monkeypatch.delenv(name)


def test_encryption_is_authenticated_and_bound_to_the_provider() -> None:
    key = VaultKey.from_text("a test vault key with enough entropy 123")
    blob = key.encrypt("openai", "sk-secret-value")
    assert b"sk-secret-value" not in blob
    assert key.decrypt("openai", blob) == "sk-secret-value"
    with pytest.raises(VaultError):
        key.decrypt("anthropic", blob)  # a row moved to another provider
    with pytest.raises(VaultError):
        key.decrypt("openai", blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(VaultError):
        VaultKey.from_text("another key entirely 456").decrypt("openai", blob)
    assert "secret" not in repr(key) and key.key_id in repr(key)


def test_key_file_is_created_once_with_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    first = load_key(settings)
    path = tmp_path / "d" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(settings).key_id == first.key_id
    from_env = load_key(replace(settings, auth=replace(settings.auth, secret_key=Secret("env-key-0123456789abcdef"))))
    assert from_env.key_id != first.key_id


def test_credential_from_the_admin_api_is_used_and_never_shown(
    launch: Callable[..., Gw], settings: Callable[..., Settings]
) -> None:
    gw = launch(keyless(settings()))
    assert gw.chat(gw.settings.master_key.value).status_code == 502  # the fake refuses a keyless call
    r = gw.admin("PUT", "/admin/providers/openai", json={"api_key": API_KEY})
    assert r.status_code == 200 and API_KEY not in r.text
    assert r.json()["source"] == "vault" and r.json()["vault"]["hint"] == "…" + API_KEY[-4:]
    assert gw.chat(gw.settings.master_key.value).status_code == 200
    listing = gw.admin("GET", "/admin/providers")
    assert API_KEY not in listing.text
    db = (gw.settings.data_dir / "llmproxy.db").read_bytes()
    assert API_KEY.encode() not in db
    assert gw.admin("PUT", "/admin/providers/nope", json={"api_key": "x" * 20}).status_code == 404
    assert gw.admin("DELETE", "/admin/providers/openai").status_code == 200
    assert gw.chat(gw.settings.master_key.value).status_code == 502


def test_configured_key_wins_over_the_vault(launch: Callable[..., Gw], settings: Callable[..., Settings]) -> None:
    config = settings()
    wrong = tuple(
        replace(p, api_key=Secret("sk-from-the-environment-wrong-000")) if p.name == "openai" else p
        for p in config.providers
    )
    gw = launch(replace(config, providers=wrong))
    r = gw.admin("PUT", "/admin/providers/openai", json={"api_key": API_KEY})
    assert r.json()["source"] == "config" and r.json()["shadowed"] is True
    assert gw.chat(gw.settings.master_key.value).status_code == 502  # the environment's (wrong) key is used


def test_cli_secrets_and_rotation_while_serving_lose_nothing(
    launch: Callable[..., Gw],
    settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = keyless(settings())
    data = str(config.data_dir)
    run_cli(monkeypatch, capsys, "secrets", "add", "openai", "--data-dir", data, stdin=API_KEY + "\n")
    for name, value in OTHER_SECRETS.items():
        run_cli(monkeypatch, capsys, "secrets", "add", name, "--data-dir", data, stdin=value)
    listed = run_cli(monkeypatch, capsys, "secrets", "list", "--data-dir", data)
    assert [r["provider"] for r in listed] == ["anthropic", "gemini", "openai"]
    assert API_KEY not in json.dumps(listed)
    key_file = config.data_dir / "secret.key"
    before = key_file.read_text()

    gw = launch(config)
    master = config.master_key.value
    assert gw.chat(master).status_code == 200
    rotated = run_cli(monkeypatch, capsys, "secrets", "rotate", "--data-dir", data)
    assert rotated["credentials"] == 3 and rotated["from_key_id"] != rotated["to_key_id"]
    assert key_file.read_text() != before and not key_file.with_name("secret.key.new").exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    rows = (
        sqlite3.connect(config.data_dir / "llmproxy.db")
        .execute("SELECT DISTINCT vault_key_id FROM provider_credentials")
        .fetchall()
    )
    assert rows == [(rotated["to_key_id"],)]
    # the gateway keeps serving through the rotation, picks up the new key file, and can store again
    for _ in range(5):
        assert gw.chat(master).status_code == 200
        time.sleep(0.3)
    assert gw.admin("PUT", "/admin/providers/ollama", json={"api_key": API_KEY}).status_code == 200
    gw.stop()

    again = launch(config)  # a restart reads every credential under the new key
    status = {p["name"]: p for p in again.admin("GET", "/admin/providers").json()["data"]}
    assert all(status[name]["source"] == "vault" for name in ("openai", "anthropic", "gemini"))
    assert again.chat(master).status_code == 200


def test_rotation_with_an_env_key_keeps_serving_and_a_restart_needs_the_new_key(
    launch: Callable[..., Gw],
    settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old_key, new_key = "old-vault-key-0123456789abcdef-xyz", "new-vault-key-0123456789abcdef-xyz"
    config = keyless(settings())
    config = replace(config, auth=replace(config.auth, secret_key=Secret(old_key)))
    data = str(config.data_dir)
    monkeypatch.setenv("LLMPROXY_SECRET_KEY", old_key)
    run_cli(monkeypatch, capsys, "secrets", "add", "openai", "--data-dir", data, stdin=API_KEY)
    gw = launch(config)
    master = config.master_key.value
    assert gw.chat(master).status_code == 200
    out = run_cli(monkeypatch, capsys, "secrets", "rotate", "--new-key-stdin", "--data-dir", data, stdin=new_key)
    assert out["credentials"] == 1 and "new_secret_key" not in out
    time.sleep(1.5)
    assert gw.chat(master).status_code == 200  # the value it holds stays in use
    refused = gw.admin("PUT", "/admin/providers/gemini", json={"api_key": "AIza-0123456789abcdef"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "vault_key_rotated"
    gw.stop()
    stale = launch(config)  # the old key opens nothing now
    assert stale.chat(master).status_code == 502
    stale.stop()
    fresh = launch(replace(config, auth=replace(config.auth, secret_key=Secret(new_key))))
    assert fresh.chat(master).status_code == 200
