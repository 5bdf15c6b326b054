"""Bad input and upstream failures become OpenAI-shaped errors with the right status, never a trace."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from llmproxy.config import ProviderSettings, Secret
from tests.fakes.openai_server import FakeState


def post(base: str, body: object = None, content: bytes | None = None, **kw: object) -> httpx.Response:
    if content is None:
        return httpx.post(base + "/v1/chat/completions", json=body, **kw)
    return httpx.post(
        base + "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **kw.pop("headers", {})},
        **kw,
    )


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code
    assert r.headers["x-request-id"]
    return err


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "content, param",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        (b'{"model": "gpt-4o-mini"}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', "messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "hi"}]}', "model"),
        ('{"model": "openai/\u6a21\u578b", "messages": [{"role": "user", "content": "hi"}]}'.encode(), "model"),
        (b'{"model": "gpt-4o-mini\\n", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "hi"}]}', "messages[0].role"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 3}]}', "messages[0].content"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "temperature",
        ),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stop": [1]}', "stop"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
            "tools[0].function.name",
        ),
    ],
)
def test_malformed_requests_get_400(gateway: str, content: bytes, param: str | None) -> None:
    err = assert_openai_error(post(gateway, content=content), 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_unknown_model_is_404_with_suggestion(gateway: str) -> None:
    err = assert_openai_error(post(gateway, {"model": "gpt-4o-mimi", "messages": MSG}), 404, "model_not_found")
    assert "gpt-4o-mini" in err["message"]
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=gateway + "/v1", api_key="x", max_retries=0).chat.completions.create(
            model="nope-model", messages=MSG
        )


def test_body_over_limit_is_413(gateway_factory: Callable[..., str]) -> None:
    base = gateway_factory(max_body_bytes=2000)
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_openai_error(post(base, big), 413)

    # without a content-length (chunked upload) the limit holds too
    def chunks():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    r = httpx.post(base + "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert_openai_error(r, 413)


def test_upstream_401_becomes_502_naming_provider_not_key(
    gateway_factory: Callable[..., str], openai_upstream: tuple[str, FakeState], tmp_path
) -> None:
    from tests.conftest import base_settings

    settings = base_settings(tmp_path, openai_upstream[0])
    wrong = "sk-wrong-secret-value-123456"
    providers = tuple(
        ProviderSettings(name=p.name, kind=p.kind, base_url=p.base_url, api_key=Secret(wrong))
        if p.name == "openai"
        else p
        for p in settings.providers
    )
    from dataclasses import replace

    base = gateway_factory(settings=replace(settings, providers=providers))
    r = post(base, {"model": "gpt-4o-mini", "messages": MSG})
    err = assert_openai_error(r, 502, "upstream_auth_error")
    assert "openai" in err["message"]
    assert wrong not in r.text and wrong[:10] not in r.text


def test_upstream_429_stays_429_with_retry_after(gateway: str) -> None:
    r = post(gateway, {"model": "openai/fail-429", "messages": MSG})
    assert_openai_error(r, 429, "rate_limit_exceeded")
    assert r.headers["retry-after"] == "1"


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_5xx_is_a_gateway_error(gateway: str, status: int) -> None:
    err = assert_openai_error(post(gateway, {"model": f"openai/fail-{status}", "messages": MSG}), 503)
    assert "openai" in err["message"]


def test_upstream_400_keeps_provider_message(gateway: str) -> None:
    err = assert_openai_error(post(gateway, {"model": "openai/fail-400", "messages": MSG}), 400)
    assert "fake failure 400" in err["message"]


def test_refused_connection_is_502_naming_provider(gateway_factory: Callable[..., str], tmp_path) -> None:
    from tests.conftest import base_settings
    from tests.fakes.serve import free_port

    base = gateway_factory(settings=base_settings(tmp_path, f"http://127.0.0.1:{free_port()}/v1"))
    err = assert_openai_error(post(base, {"model": "gpt-4o-mini", "messages": MSG}), 502, "upstream_connection_error")
    assert "openai" in err["message"]


def test_upstream_timeout_is_504(
    gateway_factory: Callable[..., str], openai_upstream: tuple[str, FakeState], tmp_path
) -> None:
    from dataclasses import replace

    from tests.conftest import base_settings

    settings = base_settings(tmp_path, openai_upstream[0])
    providers = tuple(replace(p, timeout_s=0.3) if p.name == "openai" else p for p in settings.providers)
    base = gateway_factory(settings=replace(settings, providers=providers))
    err = assert_openai_error(post(base, {"model": "openai/slow-2000", "messages": MSG}), 504, "upstream_timeout")
    assert "openai" in err["message"]


def test_unknown_route_and_method_are_openai_shaped(gateway: str) -> None:
    assert_openai_error(httpx.get(gateway + "/v1/nothing-here"), 404)
    assert_openai_error(httpx.get(gateway + "/v1/chat/completions"), 405)


def test_provider_without_key_is_a_clear_400(gateway: str) -> None:
    err = assert_openai_error(
        post(gateway, {"model": "claude-sonnet-4-5", "messages": MSG}), 400, "provider_not_configured"
    )
    assert "ANTHROPIC_API_KEY" in err["message"]


def test_master_key_required_when_set(gateway_factory: Callable[..., str]) -> None:
    from llmproxy.config import Secret as S

    base = gateway_factory(master_key=S("sk-master-test-0123456789"))
    assert_openai_error(post(base, {"model": "gpt-4o-mini", "messages": MSG}), 401, "invalid_api_key")
    r = post(base, {"model": "gpt-4o-mini", "messages": MSG}, headers={"authorization": "Bearer sk-wrong-000000000"})
    assert_openai_error(r, 401)
    assert "sk-wrong-000000000" not in r.text
    ok = post(
        base, {"model": "gpt-4o-mini", "messages": MSG}, headers={"authorization": "Bearer sk-master-test-0123456789"}
    )
    assert ok.status_code == 200
    assert httpx.get(base + "/v1/models").status_code == 401
    assert httpx.get(base + "/healthz").status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/gpt-4o-mini"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/admin/whoami"),
        ("GET", "/no/such/path"),
        ("GET", "/v1/chat/completions"),
    ],
)
def test_every_response_carries_request_id_and_overhead(gateway: str, method: str, path: str) -> None:
    r = httpx.request(method, gateway + path, headers={"x-request-id": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    assert float(r.headers["x-llmproxy-overhead-ms"]) >= 0
    assert r.headers.get_list("x-request-id") == ["trace-123"]
    r = httpx.request(method, gateway + path)
    assert len(r.headers["x-request-id"]) >= 16


def test_authentication_comes_before_reading_the_body(gateway_factory: Callable[..., str]) -> None:
    from llmproxy.config import Secret as S

    base = gateway_factory(master_key=S("sk-master-test-0123456789"), max_body_bytes=1000)
    r = post(base, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 5000}]})
    assert_openai_error(r, 401)  # not 413: an anonymous caller gets nothing buffered


def test_redirects_are_not_followed_with_the_provider_key(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    r = post(gateway, {"model": "openai/redirect", "messages": MSG})
    assert r.status_code >= 500
    assert openai_upstream[1].redirected == 0


def test_a_stream_cut_before_its_usage_is_still_charged(gateway: str, tmp_path) -> None:
    import sqlite3
    import time as _time

    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "please cut"}]},
    ) as r:
        body = r.read()
    assert b'"error"' in body
    deadline = _time.monotonic() + 5
    row = None
    while row is None and _time.monotonic() < deadline:
        row = (
            sqlite3.connect(tmp_path / "data" / "llmproxy.db")
            .execute("SELECT status, cost_usd, completion_tokens FROM usage WHERE status = 502")
            .fetchone()
        )
        _time.sleep(0.05)
    assert row is not None and row[1] > 0 and row[2] >= 1
