"""The gateway with a master key in front of fake Anthropic, Gemini and OpenAI servers, for the
Anthropic Messages front door driven by the official anthropic SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from llmproxy.config import ProviderSettings, Secret
from tests.conftest import base_settings
from tests.fakes import anthropic_server, gemini_server
from tests.integration._providers import fake_anthropic, fake_gemini, upstreams  # noqa: F401 - fixtures requested by name

MASTER = "sk-master-doors-0123456789"
CLAUDE, GPT, GEMINI = "claude-sonnet-4-5-20250929", "gpt-5-mini", "gemini-3-flash-preview"
MODELS = (CLAUDE, GPT, GEMINI)


@pytest.fixture
def door_gateway(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: Any, upstreams: dict[str, Any]
) -> Callable[..., str]:
    """Start a gateway (settings changes as keywords) whose providers are the fakes; its base URL."""

    def start(**changes: Any) -> str:
        settings = base_settings(tmp_path, openai_upstream[0], master_key=Secret(MASTER), **changes)
        others = tuple(p for p in settings.providers if p.name not in ("anthropic", "gemini"))
        providers = others + (
            ProviderSettings(
                name="anthropic",
                kind="anthropic",
                base_url=upstreams["anthropic"][0].url,
                api_key=Secret(anthropic_server.API_KEY),
            ),
            ProviderSettings(
                name="gemini", kind="gemini", base_url=upstreams["gemini"][0].url, api_key=Secret(gemini_server.API_KEY)
            ),
        )
        return gateway_factory(settings=replace(settings, providers=providers))

    return start


@pytest.fixture
def gateway_url(door_gateway: Callable[..., str]) -> str:
    return door_gateway()


@pytest.fixture
def client(gateway_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway_url, api_key=MASTER, max_retries=0)


@pytest.fixture
def raw(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway_url, headers={"x-api-key": MASTER, "anthropic-version": "2023-06-01"}, timeout=10
    ) as c:
        yield c
