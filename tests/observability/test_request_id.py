"""x-request-id: accepted or generated, returned, and sent upstream where the provider takes one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from llmproxy.config import ProviderSettings
from llmproxy.providers.base import UpstreamRequest, _tag
from tests.conftest import base_settings
from tests.fakes.openai_server import FakeState

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_given_id_is_returned_and_sent_to_openai(
    gateway_factory: Callable[..., str], openai_upstream: tuple[str, FakeState]
) -> None:
    url = gateway_factory()
    r = httpx.post(
        url + "/v1/chat/completions", json={"model": "gpt-4o-mini", **BODY}, headers={"x-request-id": "client-trace-42"}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "client-trace-42"
    assert openai_upstream[1].headers[-1]["x-client-request-id"] == "client-trace-42"


def test_generated_id_is_unique_returned_and_sent_to_a_compatible_server(
    gateway_factory: Callable[..., str], openai_upstream: tuple[str, FakeState]
) -> None:
    url = gateway_factory()
    ids = []
    for i in range(3):
        r = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "llama3.3", "messages": [{"role": "user", "content": f"hi {i}"}]},
        )
        assert r.status_code == 200 and r.headers["x-llmproxy-provider"] == "ollama"
        ids.append(r.headers["x-request-id"])
        assert openai_upstream[1].headers[-1]["x-request-id"] == ids[-1]
    assert len(set(ids)) == 3 and all(ids)


def test_provider_cookies_are_never_sent_back(
    gateway_factory: Callable[..., str], openai_upstream: tuple[str, FakeState], tmp_path: Path
) -> None:
    """A provider's Set-Cookie (Cloudflare's, on the real API) is not kept: one caller's request
    must not carry what the provider told another's, and no jar grows with every answer. The
    provider is named by host name: a cookie jar ignores cookies from an IP address."""
    url = gateway_factory(settings=base_settings(tmp_path, openai_upstream[0].replace("127.0.0.1", "localhost")))
    for stream in (False, True, False):
        r = httpx.post(url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": stream, **BODY})
        assert r.status_code == 200 and "set-cookie" not in r.headers
    seen = openai_upstream[1].headers[-3:]
    assert len(seen) == 3 and not any("cookie" in headers for headers in seen)


def test_errors_carry_the_id_too(gateway_factory: Callable[..., str]) -> None:
    url = gateway_factory()
    r = httpx.post(
        url + "/v1/chat/completions", json={"model": "no-such-model", **BODY}, headers={"x-request-id": "err-id-7"}
    )
    assert r.status_code == 404 and r.headers["x-request-id"] == "err-id-7"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_providers_without_a_documented_header_get_none() -> None:
    for kind, header in (
        ("openai", "x-client-request-id"),
        ("openai-compatible", "x-request-id"),
        ("anthropic", None),
        ("gemini", None),
    ):
        up = UpstreamRequest("http://x", {"content-type": "application/json"}, b"{}")
        _tag(up, ProviderSettings(name=kind, kind=kind, base_url="http://x"), "rid-1")
        extra = set(up.headers) - {"content-type"}
        assert extra == ({header} if header else set())
    up = UpstreamRequest("http://x", {}, b"{}")
    _tag(up, ProviderSettings(name="openai", kind="openai", base_url="http://x"), "não-ascii")
    assert up.headers == {}
