"""JSON the parser accepts but the gateway must not: nesting past what it can write back, and a key
given twice (the gateway would act on one value, an upstream may act on the other)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from llmproxy.config import CacheSettings

MAX_DEPTH = 128  # the documented limit (validation.MAX_DEPTH)

MSG = '[{"role": "user", "content": "hi"}]'


def post(url: str, body: bytes, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=30)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [300, 254, MAX_DEPTH])
def test_deep_json_is_a_clear_400_not_a_500(gateway_factory: Callable[..., str], openai_upstream, depth: int) -> None:
    url = gateway_factory(cache=CacheSettings(enabled=True, persist=False))
    # in a tool's parameters, which the cache key serialises (before: a 500 past orjson's 254 levels)
    body = (
        b'{"model": "gpt-4o-mini", "messages": %s, "tools": [{"type": "function", "function": '
        b'{"name": "f", "parameters": {"x": %s}}}]}' % (MSG.encode(), nested(depth))
    )
    r = post(url, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "json_too_deep" and "nested more than" in error["message"]
    assert openai_upstream[1].requests == []


def test_json_just_within_the_depth_limit_is_served(gateway_factory: Callable[..., str]) -> None:
    url = gateway_factory(cache=CacheSettings(enabled=True, persist=False))
    body = (
        b'{"model": "gpt-4o-mini", "messages": %s, "tools": [{"type": "function", "function": '
        b'{"name": "f", "parameters": {"x": %s}}}]}' % (MSG.encode(), nested(MAX_DEPTH - 6))
    )
    assert post(url, body).status_code == 200


def test_deep_json_on_an_admin_route_is_a_400(gateway: str) -> None:
    r = post(gateway, b'{"name": "k", "metadata": {"a": %s}}' % nested(300), "/admin/keys")
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_deep"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o-mini", "messages": %s, "model": "gpt-4o"}',
        b'{"model": "gpt-4o", "messages": %s, "\\u006dodel": "gpt-4o-mini"}',
        b'{"model" : "gpt-4o", "messages": %s, "model": "gpt-4o-mini"}',
        b'{"model": "gpt-4o-mini", "messages": %s, "stream": true, "stream": false}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a", "content": "b"}], "x": %s}',
    ],
)
def test_a_key_given_twice_is_refused_before_anything_goes_upstream(gateway: str, openai_upstream, body: bytes) -> None:
    r = post(gateway, body % MSG.encode())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "duplicate_key" and "more than once" in error["message"]
    assert openai_upstream[1].requests == []


def test_a_repeated_name_in_different_objects_is_fine(gateway: str) -> None:
    body = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say \\"model\\": x"}], '
        b'"response_format": {"type": "json_schema", "json_schema": {"name": "m", "schema": '
        b'{"type": "object", "properties": {"model": {"type": "string"}}}}}}'
    )
    assert post(gateway, body).status_code == 200


def test_a_key_given_twice_in_an_admin_body_is_refused(gateway: str) -> None:
    r = post(gateway, b'{"name": "a", "role": "user", "role": "admin"}', "/admin/keys")
    assert r.status_code == 400 and r.json()["error"]["param"] == "role"
    assert httpx.get(gateway + "/admin/keys").json()["data"] == []
