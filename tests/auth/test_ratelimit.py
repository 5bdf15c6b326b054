"""Rate limits and budgets: RPM and TPM per key and by default, exact under concurrency, OpenAI's
x-ratelimit-* headers, retry-after, the token estimate corrected by real usage, and budgets from the
usage log (kept across a restart)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import openai
import pytest

from llmproxy.config import LimitSettings
from llmproxy.context import Principal, RequestContext
from llmproxy.errors import QuotaExceeded, RateLimited
from llmproxy.ratelimit import Limiter, _duration
from tests.auth.conftest import MASTER, Gw


def make_key(gw: Gw, **fields: object) -> dict:
    r = gw.admin("POST", "/admin/keys", json={"name": "limited", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def test_200_concurrent_requests_against_50_per_minute_exactly_50_pass(launch: Callable[..., Gw]) -> None:
    gw = launch()
    key = make_key(gw, rpm=50)["key"]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(
            base_url=gw.url, limits=limits, timeout=60, headers={"authorization": f"Bearer {key}"}
        ) as client:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(200)))

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    for r in responses:
        assert r.headers["x-ratelimit-limit-requests"] == "50"
        if r.status_code == 429:
            err = r.json()["error"]
            assert err["code"] == "rate_limit_exceeded" and err["type"] == "rate_limit_error"
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200)
    assert remaining == list(range(50))


def test_headers_on_every_response_and_the_sdk_sees_a_rate_limit_error(launch: Callable[..., Gw]) -> None:
    gw = launch()
    key = make_key(gw, rpm=2, tpm=10_000)["key"]
    raw = gw.client(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    h = raw.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert h["x-ratelimit-limit-tokens"] == "10000" and int(h["x-ratelimit-remaining-tokens"]) < 10_000
    assert h["x-ratelimit-reset-requests"].endswith("s") and h["x-ratelimit-reset-tokens"].endswith("s")
    gw.chat(key)
    with pytest.raises(openai.RateLimitError) as err:
        gw.client(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.response.headers["retry-after"]
    # another key has its own window
    assert gw.chat(make_key(gw, rpm=2)["key"]).status_code == 200


def test_tpm_counts_the_estimate_first_and_the_real_usage_after(launch: Callable[..., Gw]) -> None:
    gw = launch()
    key = make_key(gw, tpm=2000)["key"]
    big = "word " * 2000  # ~10 KB: an estimate of ~2,500 tokens, over the limit alone
    r = gw.chat(key, content=big)
    assert r.status_code == 429 and "larger than the key's limit" in r.json()["error"]["message"]
    # a small request is estimated up front, then corrected to the fake's real usage (19 tokens)
    first = gw.chat(key, content="x " * 400)
    assert first.status_code == 200
    second = gw.chat(key, content="hi")
    assert int(second.headers["x-ratelimit-remaining-tokens"]) > 2000 - 19 - 19 - 60
    assert (
        int(first.headers["x-ratelimit-remaining-tokens"]) < int(second.headers["x-ratelimit-remaining-tokens"]) + 150
    )


def test_default_limits_apply_to_keys_without_their_own(launch: Callable[..., Gw]) -> None:
    gw = launch(limits=LimitSettings(rpm=1))
    default = make_key(gw)["key"]
    own = make_key(gw, rpm=5)["key"]
    assert gw.chat(default).status_code == 200 and gw.chat(default).status_code == 429
    assert gw.chat(own).headers["x-ratelimit-limit-requests"] == "5"
    # the master key is the operator's and is never limited
    assert "x-ratelimit-limit-requests" not in gw.chat(gw.settings.master_key.value).headers


def test_budget_over_is_insufficient_quota_and_survives_a_restart(launch: Callable[..., Gw]) -> None:
    gw = launch()
    created = make_key(gw, budget_usd=0.0000001, budget_period="day")
    key = created["key"]
    assert gw.chat(key).status_code == 200  # spend 0 so far; this request costs more than the budget
    with pytest.raises(openai.RateLimitError) as err:
        gw.client(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "insufficient_quota" and err.value.type == "insufficient_quota"
    gw.stop()
    again = launch(gw.settings)  # spend is read back from the usage log
    r = again.chat(key)
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
    # raising the budget lets it through again, at once
    again.admin("PATCH", f"/admin/keys/{created['id']}", json={"budget_usd": 10.0})
    assert again.chat(key).status_code == 200


def test_stored_responses_and_token_counts_count_against_the_keys_requests_per_minute(
    launch: Callable[..., Gw],
) -> None:
    """Every request a key sends counts against its rpm, not only completions: a stored response read
    or deleted, a Messages request's tokens counted (which may reach Anthropic on the gateway's key).
    Past the limit each one is refused with the same 429 and headers as a completion."""
    gw = launch()
    key = make_key(gw, rpm=3)["key"]
    auth = {"authorization": f"Bearer {key}"}
    counting = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert gw.chat(key).status_code == 200
    counted = httpx.post(gw.url + "/v1/messages/count_tokens", headers=auth, json=counting, timeout=30)
    assert counted.status_code == 200 and counted.json()["input_tokens"] >= 1
    assert counted.headers["x-ratelimit-remaining-requests"] == "1"
    missing = httpx.get(gw.url + "/v1/responses/resp_none", headers={**auth, "x-request-id": "probe-1"}, timeout=30)
    assert missing.status_code == 404  # an id that is not there counts too: probing is not free
    assert missing.headers["x-ratelimit-remaining-requests"] == "0" and missing.headers["x-request-id"] == "probe-1"
    refused = [
        httpx.get(gw.url + "/v1/responses/resp_none", headers=auth, timeout=30),
        httpx.get(gw.url + "/v1/responses/resp_none/input_items", headers=auth, timeout=30),
        httpx.delete(gw.url + "/v1/responses/resp_none", headers=auth, timeout=30),
        httpx.post(gw.url + "/v1/messages/count_tokens", headers=auth, json=counting, timeout=30),
    ]
    for r in refused:
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["x-ratelimit-limit-requests"] == "3" and r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.headers["x-request-id"]
    assert [r.json()["error"]["code"] for r in refused[:3]] == ["rate_limit_exceeded"] * 3  # OpenAI's shape
    assert refused[3].json()["error"]["type"] == "rate_limit_error"  # Anthropic's shape on its door
    assert gw.chat(key).status_code == 429  # the reads used the key's minute
    # the operator's key is never limited
    master = {"authorization": f"Bearer {MASTER}"}
    assert httpx.get(gw.url + "/v1/responses/resp_none", headers=master, timeout=30).status_code == 404


def test_a_token_count_refused_after_admission_still_says_where_the_key_stands(launch: Callable[..., Gw]) -> None:
    """A count_tokens request that passes the limits and then fails (here: a model the gateway does
    not serve) carries the x-ratelimit-* headers its answer would have, as a failed completion does."""
    gw = launch()
    key = make_key(gw, rpm=5)["key"]
    auth = {"authorization": f"Bearer {key}"}
    unknown = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    failed = httpx.post(gw.url + "/v1/messages/count_tokens", headers=auth, json=unknown, timeout=30)
    assert failed.status_code == 404 and failed.json()["type"] == "error", failed.text
    assert failed.headers["x-ratelimit-limit-requests"] == "5"
    assert failed.headers["x-ratelimit-remaining-requests"] == "4"
    assert failed.headers["x-request-id"]


def test_limiter_window_slides_and_budget_periods_roll(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(mono=1000.0, wall=1_800_000_000.0)
    monkeypatch.setattr("llmproxy.ratelimit.time.monotonic", lambda: clock.mono)
    monkeypatch.setattr("llmproxy.ratelimit.time.time", lambda: clock.wall)
    limiter = Limiter()
    p = Principal(kind="key", key_id="k", role="user", rpm=2, budget_usd=1.0, budget_period="day")

    def admit() -> RequestContext:
        ctx = RequestContext("r", {})
        ctx.principal = p
        limiter.admit(ctx, 100)
        return ctx

    admit()
    clock.mono += 30
    admit()
    with pytest.raises(RateLimited) as err:
        admit()
    assert err.value.headers["retry-after"] == "30"
    clock.mono += 30.5  # the first request left the window
    ctx = admit()
    ctx.cost_usd, ctx.usage = 1.5, {"total_tokens": 10}
    limiter.settle(ctx)
    clock.mono += 61
    with pytest.raises(QuotaExceeded):
        admit()
    clock.wall += 86400  # a new UTC day: a daily budget starts over
    admit()
    assert limiter.spend.spent("k", "total", clock.wall) == 1.5


def test_duration_format() -> None:
    assert [_duration(s) for s in (0.02, 1.5, 59.25, 360.0)] == ["20ms", "1.5s", "59.25s", "6m0s"]


def test_windows_of_callers_gone_quiet_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(mono=1000.0)
    monkeypatch.setattr("llmproxy.ratelimit.time.monotonic", lambda: clock.mono)
    limiter = Limiter()
    for i in range(500):  # one window pair per JWT subject seen
        ctx = RequestContext("r", {})
        ctx.principal = Principal(kind="jwt", user=f"sub-{i}", role="user", rpm=10, tpm=1000)
        limiter.admit(ctx, 40)
    assert len(limiter._requests) == len(limiter._tokens) == 500
    clock.mono += 61  # all of them out of the window
    ctx = RequestContext("r", {})
    ctx.principal = Principal(kind="jwt", user="sub-new", role="user", rpm=10, tpm=1000)
    limiter.admit(ctx, 40)
    assert set(limiter._requests) == set(limiter._tokens) == {"jwt:sub-new"}
    assert ctx.response_headers["x-ratelimit-remaining-requests"] == "9"
