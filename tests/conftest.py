"""Shared fixtures: fake providers and the gateway, each a real server on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from llmproxy.app import create_app
from llmproxy.config import CacheSettings, ProviderSettings, RegistryUpdateSettings, Secret, Settings
from tests.fakes import openai_server
from tests.fakes.serve import ServerThread

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[tuple[ServerThread, openai_server.FakeState]]:
    state = openai_server.FakeState()
    with ServerThread(openai_server.create_app(state)) as server:
        yield server, state


@pytest.fixture
def openai_upstream(fake_openai: tuple[ServerThread, openai_server.FakeState]) -> tuple[str, openai_server.FakeState]:
    """The fake OpenAI server's base URL (ending in /v1) and its state, reset for this test."""
    server, state = fake_openai
    state.requests.clear()
    state.headers.clear()
    state.disconnects = 0
    state.chunk_delay_s = 0.0
    return server.url + "/v1", state


def base_settings(tmp_path: Path, openai_base: str, **changes: object) -> Settings:
    providers = (
        ProviderSettings(name="openai", kind="openai", base_url=openai_base, api_key=Secret(openai_server.API_KEY)),
        ProviderSettings(name="anthropic", kind="anthropic", base_url="https://api.anthropic.com"),
        ProviderSettings(name="gemini", kind="gemini", base_url="https://generativelanguage.googleapis.com"),
        ProviderSettings(
            name="ollama",
            kind="openai-compatible",
            base_url=openai_base,
            api_key=Secret(openai_server.API_KEY),
            models=("llama3.3",),
        ),
    )
    # auto_update off: a test must never scrape the internet or write into the repo's registry/.
    # The response cache off: most tests count what reaches the upstream; tests/cache turns it on.
    settings = Settings(
        data_dir=tmp_path / "data",
        registry_path=REPO / "registry" / "models.json",
        registry_update=RegistryUpdateSettings(auto_update=False),
        cache=CacheSettings(enabled=False),
        providers=providers,
        usage_flush_interval_s=0.05,
        log_level="warning",
    )
    return replace(settings, **changes)


@pytest.fixture
def gateway_factory(
    tmp_path: Path, openai_upstream: tuple[str, openai_server.FakeState]
) -> Iterator[Callable[..., str]]:
    """Start a gateway with the test settings (changes as keyword arguments); returns its base URL."""
    started: list[ServerThread] = []

    def start(**changes: object) -> str:
        settings = changes.pop("settings", None) or base_settings(tmp_path, openai_upstream[0], **changes)
        server = ServerThread(create_app(settings, configure_logs=False)).start()
        started.append(server)
        return server.url

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(gateway_factory: Callable[..., str]) -> str:
    """A gateway on default test settings, in front of the fake OpenAI upstream."""
    return gateway_factory()
