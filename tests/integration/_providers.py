"""Fixtures shared by the Anthropic and Gemini integration tests: their fake servers on loopback and a
gateway whose anthropic / gemini providers point at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest

from llmproxy.config import ProviderSettings, Secret
from tests.conftest import base_settings
from tests.fakes import anthropic_server, gemini_server
from tests.fakes.serve import ServerThread


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[tuple[ServerThread, anthropic_server.FakeState]]:
    state = anthropic_server.FakeState()
    with ServerThread(anthropic_server.create_app(state)) as server:
        yield server, state


@pytest.fixture(scope="session")
def fake_gemini() -> Iterator[tuple[ServerThread, gemini_server.FakeState]]:
    state = gemini_server.FakeState()
    with ServerThread(gemini_server.create_app(state)) as server:
        yield server, state


@pytest.fixture
def upstreams(fake_anthropic: Any, fake_gemini: Any) -> dict[str, Any]:
    for _, state in (fake_anthropic, fake_gemini):
        for name in ("requests", "headers", "rejected"):
            getattr(state, name).clear()
    return {"anthropic": fake_anthropic, "gemini": fake_gemini}


@pytest.fixture
def provider_gateway(
    gateway_factory: Callable[..., str], tmp_path: Path, openai_upstream: Any, upstreams: dict[str, Any]
) -> Callable[..., openai.OpenAI]:
    """An openai SDK client talking to a gateway in front of the fake Anthropic and Gemini servers."""

    def start(anthropic_key: str = anthropic_server.API_KEY, gemini_key: str = gemini_server.API_KEY) -> openai.OpenAI:
        settings = base_settings(tmp_path, openai_upstream[0])
        others = tuple(p for p in settings.providers if p.name not in ("anthropic", "gemini"))
        providers = others + (
            ProviderSettings(
                name="anthropic",
                kind="anthropic",
                base_url=upstreams["anthropic"][0].url,
                api_key=Secret(anthropic_key),
            ),
            ProviderSettings(
                name="gemini", kind="gemini", base_url=upstreams["gemini"][0].url, api_key=Secret(gemini_key)
            ),
        )
        url = gateway_factory(settings=replace(settings, providers=providers))
        return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)

    return start


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
