"""After a full scenario (keys, vault credentials, logins, requests, rotations, refusals, errors), no
secret value appears in any log line, and none in any response but the one that hands it out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import httpx

from llmproxy.config import Settings
from tests.auth.conftest import MASTER, Gw
from tests.fakes.openai_server import API_KEY


def test_no_secret_in_logs_or_responses(launch: Callable[..., Gw], settings: Callable[..., Settings]) -> None:
    config = settings(log_level="debug")
    providers = tuple(replace(p, api_key=None) if p.name == "openai" else p for p in config.providers)
    gw = launch(replace(config, providers=providers), capture_logs=True)
    responses: list[tuple[str, httpx.Response]] = []  # (what it is, response)

    def keep(label: str, r: httpx.Response) -> httpx.Response:
        responses.append((label, r))
        return r

    vault_secret = API_KEY
    other_secret = "sk-ant-never-shown-0123456789abcdef"
    password = "a-very-secret-password-42"
    keep("provider", gw.admin("PUT", "/admin/providers/openai", json={"api_key": vault_secret}))
    keep("provider", gw.admin("PUT", "/admin/providers/anthropic", json={"api_key": other_secret}))
    keep("user", gw.admin("POST", "/admin/users", json={"name": "ann", "password": password, "role": "admin"}))
    created = keep(
        "issue:key1", gw.admin("POST", "/admin/keys", json={"name": "k1", "rpm": 3, "models": ["gpt-4o-mini"]})
    ).json()
    key1 = created["key"]
    login = keep(
        "issue:token", gw.admin("POST", "/admin/login", token=None, json={"username": "ann", "password": password})
    )
    token = login.json()["access_token"]
    keep(
        "bad-login", gw.admin("POST", "/admin/login", token=None, json={"username": "ann", "password": password + "x"})
    )
    for _ in range(4):  # the 4th is rate limited
        keep("chat", gw.chat(key1))
    keep(
        "chat-stream",
        httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key1}"},
            json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "s"}]},
        ),
    )
    keep("not-allowed", gw.chat(token, model="openai/fail-401"))  # the provider refuses: an upstream auth error
    keep("chat-token", gw.chat(token))
    keep("wrong-key", gw.chat(key1[:-2] + "zz"))
    keep("wrong-master", gw.chat(MASTER + "x"))
    rotated = keep("issue:key2", gw.admin("POST", f"/admin/keys/{created['id']}/rotate", json={"grace_s": 0}))
    key2 = rotated.json()["key"]
    keep("old-key", gw.chat(key1))
    keep("new-key-other-model", gw.chat(key2, model="gpt-4o"))
    keep("revoke", gw.admin("DELETE", f"/admin/keys/{created['id']}"))
    keep("revoked", gw.chat(key2))
    for path in ("/admin/keys", "/admin/users", "/admin/providers", "/admin/audit", "/admin/info", "/admin/whoami"):
        keep("read", gw.admin("GET", path))
    keep(
        "bad-json", httpx.post(gw.url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}, content=b"{oops")
    )
    vault_key_text = (gw.settings.data_dir / "secret.key").read_text().strip()
    gw.stop()  # flushes the log writer

    assert {r.status_code for label, r in responses if label == "chat"} == {200, 429}
    logs = gw.logs.getvalue().decode()
    assert logs.count("\n") > 10 and '"request"' in logs
    secrets = {
        "master": MASTER,
        "vault": vault_secret,
        "other": other_secret,
        "password": password,
        "key1": key1,
        "key2": key2,
        "token": token,
        "vault_key": vault_key_text,
        "token_signature": token.rsplit(".", 1)[1],
    }
    for name, value in secrets.items():
        assert value not in logs, f"{name} appears in the logs"
        for label, r in responses:
            if label == f"issue:{name}" or (name == "token_signature" and label == "issue:token"):
                assert value in r.text
                continue
            assert value not in r.text, f"{name} appears in the response to {label}"
            assert all(value not in v for v in r.headers.values()), f"{name} in a header of {label}"
