"""A web page must not drive the gateway: no form or simple cross-site request, no cross-site Origin,
and in open mode (no master key) no Host but loopback names and no peer but loopback, whatever
server runs the app."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from llmproxy.app import create_app
from llmproxy.config import Secret
from tests.conftest import base_settings
from tests.fakes import openai_server
from tests.fakes.serve import ServerThread, free_port

MASTER = "sk-master-open-mode-0123456789"


def keys(url: str, **headers: str) -> list[dict]:
    return httpx.get(url + "/admin/keys", headers=headers).json()["data"]


def test_a_form_post_cannot_mint_a_key_or_spend_the_provider_key(gateway: str, openai_upstream) -> None:
    # what <form enctype="text/plain"> sends: a JSON-looking body, a non-JSON media type
    form = {"content-type": "text/plain", "origin": "null"}
    r = httpx.post(gateway + "/admin/keys", content=b'{"name": "pwned"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = httpx.post(gateway + "/admin/keys", content=b'{"name": "pwned"}', headers=form)
    assert r.status_code in (403, 415)
    for media in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = httpx.post(
            gateway + "/v1/chat/completions",
            headers={"content-type": media},
            content=b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
        )
        assert r.status_code == 415
    assert keys(gateway) == [] and openai_upstream[1].requests == []
    # JSON (what every OpenAI client and the dashboard send) works, with parameters too
    r = httpx.post(
        gateway + "/admin/keys", json={"name": "mine"}, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 201


def test_a_cross_site_origin_is_refused_and_the_same_origin_is_not(gateway: str) -> None:
    host = gateway.removeprefix("http://")
    for origin in ("http://evil.example", "null", f"https://{host}.evil.example", "http://localhost:1"):
        r = httpx.post(gateway + "/admin/keys", json={"name": "x"}, headers={"origin": origin})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin", origin
        r = httpx.get(gateway + "/admin/keys", headers={"origin": origin})
        assert r.status_code == 403
    assert keys(gateway) == []
    r = httpx.post(gateway + "/admin/keys", json={"name": "x"}, headers={"origin": f"http://{host}"})
    assert r.status_code == 201


def test_open_mode_answers_only_loopback_host_names(gateway: str) -> None:
    port = gateway.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"10.0.0.5:{port}", f"localhost.evil.example:{port}"):
        r = httpx.get(gateway + "/admin/keys", headers={"host": host})
        assert r.status_code == 403 and r.json()["error"]["code"] == "loopback_only", host
        r = httpx.post(
            gateway + "/v1/chat/completions",
            headers={"host": host},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST", "127.0.0.2"):
        assert httpx.get(gateway + "/admin/keys", headers={"host": host}).status_code == 200, host


def test_with_a_master_key_any_host_name_is_served(gateway_factory: Callable[..., str]) -> None:
    url = gateway_factory(master_key=Secret(MASTER))
    r = httpx.get(url + "/admin/keys", headers={"host": "gateway.internal", "authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200
    assert httpx.get(url + "/admin/keys", headers={"host": "gateway.internal"}).status_code == 401


def _call(app, scope_client: tuple[str, int] | None, host: bytes = b"127.0.0.1") -> tuple[int, dict]:
    """One GET /admin/keys through the app's ASGI interface, as any ASGI server would call it."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/admin/keys",
        "raw_path": b"/admin/keys",
        "query_string": b"",
        "headers": [(b"host", host)],
        "client": scope_client,
        "server": ("0.0.0.0", 8080),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], orjson.loads(body)


def test_the_app_refuses_non_loopback_peers_in_open_mode_under_any_server(tmp_path: Path) -> None:
    """The refusal needs no lifespan, no serve command: it is the app's first step."""
    app = create_app(base_settings(tmp_path, "http://127.0.0.1:9/v1"), configure_logs=False)
    status, body = _call(app, ("192.0.2.10", 40000))
    assert status == 403 and body["error"]["code"] == "loopback_only"
    status, body = _call(app, ("::ffff:198.51.100.7", 40000))
    assert status == 403
    keyed = create_app(
        base_settings(tmp_path, "http://127.0.0.1:9/v1", master_key=Secret(MASTER)), configure_logs=False
    )

    async def routes(scope, receive, send) -> None:  # stands in for the routes: the guard let it through
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    keyed.app = routes
    assert _call(keyed, ("192.0.2.10", 40000))[0] == 200  # with a master key, callers need a key instead


def _outside_address() -> str | None:
    """A non-loopback address of this machine, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_create_app_on_0_0_0_0_does_not_expose_an_open_admin_api(
    tmp_path: Path, openai_upstream: tuple[str, openai_server.FakeState]
) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback address to call from")
    port = free_port()
    server = ServerThread(create_app(base_settings(tmp_path, openai_upstream[0]), configure_logs=False), port=port)
    server.server.config = uvicorn.Config(
        server.server.config.app, host="0.0.0.0", port=port, log_level="warning", lifespan="on"
    )
    with server:
        r = httpx.get(f"http://{outside}:{port}/admin/keys", headers={"host": f"127.0.0.1:{port}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "loopback_only"
        r = httpx.post(f"http://{outside}:{port}/admin/keys", json={"name": "x"}, headers={"host": f"127.0.0.1:{port}"})
        assert r.status_code == 403
        assert httpx.get(f"http://127.0.0.1:{port}/admin/keys").status_code == 200
