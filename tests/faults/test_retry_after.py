"""A provider's "come back later" reaches the client as retry-after in seconds, whatever form the
provider used: Gemini's RetryInfo in the error body, or an HTTP-date Retry-After header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.faults.conftest import FaultGateway
from tests.integration._providers import fake_anthropic, fake_gemini, provider_gateway, upstreams  # noqa: F401 - fixtures requested by name


def test_gemini_retry_info_becomes_the_gateways_retry_after(provider_gateway: Any) -> None:
    # fails on the adapter that only read a Retry-After header, which Gemini does not send
    with pytest.raises(openai.RateLimitError) as info:
        provider_gateway().chat.completions.create(
            model="gemini/fail-429", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.response.headers["retry-after"] == "13"  # retryDelay "12.5s", rounded up
    assert info.value.code == "rate_limit_exceeded"


def test_http_date_retry_after_becomes_seconds(fault_gateway: Callable[..., FaultGateway]) -> None:
    # fails on the adapters that passed the date on as it came
    gw = fault_gateway()
    r = gw.post("faulty/busy-until", request_id="busy-1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 28 <= int(r.headers["retry-after"]) <= 31
    assert gw.row("busy-1")["status"] == 429
