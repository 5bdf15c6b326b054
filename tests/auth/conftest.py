"""Auth tests: gateways started and stopped at will (restarts on one data directory), an admin
API client, and an OpenAI SDK client."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmproxy.app import create_app
from llmproxy.config import Secret, Settings
from tests.conftest import base_settings
from tests.fakes import openai_server
from tests.fakes.serve import ServerThread

MASTER = "sk-master-auth-tests-0123456789abcdef"


@dataclass
class Gw:
    url: str
    settings: Settings
    server: ServerThread
    logs: io.BytesIO | None = None
    stopped: bool = field(default=False)

    def stop(self) -> None:
        if not self.stopped:
            self.server.stop()
            self.stopped = True

    def admin(self, method: str, path: str, token: str | None = MASTER, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=30)

    def chat(
        self, key: str | None, model: str = "gpt-4o-mini", content: str | None = None, **fields: Any
    ) -> httpx.Response:
        """One chat completion; a unique prompt by default, so the response cache never answers."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        content = content or f"hello {uuid.uuid4().hex}"
        return httpx.post(
            self.url + "/v1/chat/completions",
            headers=headers,
            timeout=30,
            json={"model": model, "messages": [{"role": "user", "content": content}], **fields},
        )


@pytest.fixture
def settings(tmp_path: Path, openai_upstream: tuple[str, openai_server.FakeState]) -> Callable[..., Settings]:
    """Test settings with a master key unless told otherwise."""

    def make(**changes: Any) -> Settings:
        changes.setdefault("master_key", Secret(MASTER))
        return base_settings(tmp_path, openai_upstream[0], **changes)

    return make


@pytest.fixture
def launch(settings: Callable[..., Settings]) -> Iterator[Callable[..., Gw]]:
    started: list[Gw] = []

    def start(config: Settings | None = None, *, capture_logs: bool = False, **changes: Any) -> Gw:
        config = config or settings(**changes)
        logs = io.BytesIO() if capture_logs else None
        server = ServerThread(create_app(config, configure_logs=False, log_stream=logs)).start()
        gw = Gw(server.url, config, server, logs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()
