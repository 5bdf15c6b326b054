"""Every adapter turns a provider's "come back later" into retry-after in whole seconds: the
Retry-After header as seconds or as an HTTP-date, OpenAI's retry-after-ms, Gemini's RetryInfo."""

from __future__ import annotations

import email.utils
import time

import orjson
import pytest

from llmproxy.errors import UpstreamRateLimited
from llmproxy.providers import ADAPTERS
from llmproxy.providers.retry_after import duration_s, retry_after
from tests.fakes import anthropic_server, gemini_server


def quota_body(retry_delay: str | None) -> bytes:
    """Gemini's 429 as the API sends it: QuotaFailure, Help and RetryInfo among the details."""
    details: list[dict] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaValue": "10",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return orjson.dumps(
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota.",
                "status": "RESOURCE_EXHAUSTED",
                "details": details,
            }
        }
    )


@pytest.mark.parametrize("delay, expected", [("12s", "12"), ("0.5s", "1"), ("13.372691658s", "14"), ("0s", "0")])
def test_gemini_retry_info_becomes_retry_after(delay: str, expected: str) -> None:
    # fails on the adapter that read only the Retry-After header, which Gemini does not send
    err = ADAPTERS["gemini"].map_error(429, quota_body(delay), {})
    assert isinstance(err, UpstreamRateLimited) and err.status == 429
    assert err.headers.get("retry-after") == expected


def test_gemini_retry_info_inside_the_list_of_an_unsse_stream() -> None:
    err = ADAPTERS["gemini"].map_error(429, b"[" + quota_body("7s") + b"]", {})
    assert err.headers.get("retry-after") == "7"


def test_gemini_header_wins_over_body_and_no_delay_means_none() -> None:
    assert ADAPTERS["gemini"].map_error(429, quota_body("30s"), {"retry-after": "5"}).headers["retry-after"] == "5"
    assert "retry-after" not in ADAPTERS["gemini"].map_error(429, quota_body(None), {}).headers


def _error_body(provider: str) -> bytes:
    if provider == "anthropic":
        return anthropic_server.error(429, "slow down").body
    if provider == "gemini":
        return gemini_server.error(429, "RESOURCE_EXHAUSTED", "slow down").body
    return orjson.dumps(
        {"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    )


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_http_date_retry_after_becomes_seconds(provider: str) -> None:
    # fails on the adapters that passed an HTTP-date on as it came (the gateway promises seconds)
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    err = ADAPTERS[provider].map_error(429, _error_body(provider), {"retry-after": date})
    assert isinstance(err, UpstreamRateLimited)
    assert 28 <= int(err.headers["retry-after"]) <= 31


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"retry-after": "3"}, "3"),
        ({"retry-after": "2.5"}, "3"),
        ({"Retry-After": "4"}, "4"),
        ({"retry-after-ms": "1500", "retry-after": "9"}, "2"),
        ({"retry-after": email.utils.formatdate(time.time() - 60, usegmt=True)}, "0"),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "1e400"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: str | None) -> None:
    assert retry_after(headers) == expected


def test_duration_forms() -> None:
    assert duration_s("12s") == 12.0 and duration_s("1.5s") == 1.5
    assert duration_s("12") is None and duration_s(12) is None and duration_s("s") is None
