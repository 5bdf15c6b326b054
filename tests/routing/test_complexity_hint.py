"""The explicit complexity hint: the x-llmproxy-complexity request header and a key's own default
override the classifier for "auto" requests; a bad value is a 400 in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.auth.conftest import Gw, launch, settings  # noqa: F401 - fixtures used by name
from tests.fakes.openai_server import FakeState

HARD = [
    {
        "role": "user",
        "content": "Prove that every finite group of order p^2 is abelian, rigorously, and "
        "classify such groups up to isomorphism.",
    }
]
EASY = [{"role": "user", "content": "hi! thanks a lot"}]


def test_header_overrides_the_classifier(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="x", max_retries=0)
    classified = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert classified.headers["x-llmproxy-complexity"] == "complex"
    hinted = client.chat.completions.with_raw_response.create(
        model="auto", messages=HARD, extra_headers={"x-llmproxy-complexity": "simple"}
    )
    assert hinted.headers["x-llmproxy-complexity"] == "simple"
    assert hinted.headers["x-llmproxy-model"] != classified.headers["x-llmproxy-model"]
    up = client.chat.completions.with_raw_response.create(
        model="auto", messages=EASY, extra_headers={"x-llmproxy-complexity": "Complex"}
    )
    assert up.headers["x-llmproxy-complexity"] == "complex"
    explicit = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=EASY, extra_headers={"x-llmproxy-complexity": "complex"}
    )
    assert explicit.headers["x-llmproxy-model"] == "gpt-4o-mini"  # an explicit model is never re-routed


def test_bad_header_is_a_clear_400(gateway: str, openai_upstream: tuple[str, FakeState]) -> None:
    r = httpx.post(
        gateway + "/v1/chat/completions",
        headers={"x-llmproxy-complexity": "hard"},
        timeout=30,
        json={"model": "auto", "messages": EASY},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "x-llmproxy-complexity" and error["code"] == "invalid_complexity"
    assert "simple, medium, complex" in error["message"] and error["type"] == "invalid_request_error"
    assert openai_upstream[1].requests == []


def test_a_key_default_complexity_routes_its_auto_requests(launch: Callable[..., Gw]) -> None:
    gw = launch()
    r = gw.admin("POST", "/admin/keys", json={"name": "batch-jobs", "complexity": "simple"})
    assert r.status_code == 201, r.text
    key = r.json()
    assert key["complexity"] == "simple"
    client = gw.client(key["key"])
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert raw.headers["x-llmproxy-complexity"] == "simple"
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=HARD, extra_headers={"x-llmproxy-complexity": "medium"}
    )
    assert raw.headers["x-llmproxy-complexity"] == "medium"  # the header wins over the key
    bad = gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"complexity": "hard"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "complexity"
    cleared = gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"complexity": None})
    assert cleared.status_code == 200 and cleared.json()["complexity"] is None
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert raw.headers["x-llmproxy-complexity"] == "complex"  # the classifier again
    # like the strategy, only an admin sets it, even on a user's own key
    r = gw.admin("PATCH", f"/admin/keys/{key['id']}", token=key["key"], json={"complexity": "simple"})
    assert r.status_code == 403


@pytest.mark.parametrize("label", ["simple", "medium", "complex"])
def test_hint_is_recorded_like_a_classification(gateway: str, label: str) -> None:
    r = httpx.post(
        gateway + "/v1/chat/completions",
        headers={"x-llmproxy-complexity": label},
        timeout=30,
        json={"model": "auto", "messages": EASY},
    )
    assert r.status_code == 200 and r.headers["x-llmproxy-complexity"] == label
