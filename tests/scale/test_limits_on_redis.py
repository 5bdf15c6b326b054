"""The rate-limit and budget tests of tests/auth, run again with the limits in Redis: the same
answers, headers and errors whichever backend decides (no stage knows which it talks to)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmproxy.config import RedisSettings, Secret, Settings
from tests.auth.conftest import MASTER, launch  # noqa: F401 - the fixture, over this module's `settings`
from tests.auth.test_key_chain import (  # noqa: F401 - collected again here, on Redis
    test_a_childs_spend_counts_against_its_ancestors_also_after_a_restart,
    test_a_key_over_budget_cannot_mint_a_child_that_spends_again,
)
from tests.auth.test_ratelimit import (  # noqa: F401 - collected again here, on Redis
    test_200_concurrent_requests_against_50_per_minute_exactly_50_pass,
    test_budget_over_is_insufficient_quota_and_survives_a_restart,
    test_default_limits_apply_to_keys_without_their_own,
    test_headers_on_every_response_and_the_sdk_sees_a_rate_limit_error,
    test_stored_responses_and_token_counts_count_against_the_keys_requests_per_minute,
    test_tpm_counts_the_estimate_first_and_the_real_usage_after,
)
from tests.conftest import base_settings
from tests.fakes import openai_server
from tests.scale.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def settings(
    tmp_path: Path, openai_upstream: tuple[str, openai_server.FakeState], redis_url: str
) -> Callable[..., Settings]:
    """tests/auth's settings, with Redis."""

    def make(**changes: Any) -> Settings:
        changes.setdefault("master_key", Secret(MASTER))
        changes.setdefault("redis", RedisSettings(url=Secret(redis_url)))
        return base_settings(tmp_path, openai_upstream[0], **changes)

    return make


def test_these_gateways_decide_their_limits_in_redis(launch: Callable[..., Any]) -> None:
    gw = launch()
    assert gw.chat(gw.admin("POST", "/admin/keys", json={"name": "r", "rpm": 5}).json()["key"]).status_code == 200
    ready = httpx.get(gw.url + "/readyz", timeout=10).json()
    assert ready["redis"] == {"up": True, "live_processes": 1, "limits": "shared"}
    metrics = httpx.get(gw.url + "/metrics", timeout=10).text
    assert "llmproxy_redis_up 1.0" in metrics and "llmproxy_redis_fallbacks_total 0.0" in metrics
