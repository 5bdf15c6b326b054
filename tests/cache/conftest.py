"""The cache's integration tests run on a gateway with the response cache on (the shared fixtures
turn it off, so that other tests see every request reach the upstream)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmproxy.config import CacheSettings


@pytest.fixture
def gateway(gateway_factory: Callable[..., str]) -> str:
    """A gateway on the test settings with the default cache settings."""
    return gateway_factory(cache=CacheSettings())
