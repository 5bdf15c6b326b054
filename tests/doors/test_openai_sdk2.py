"""The same embeddings and completions calls from the openai SDK's 2.x line (the test extra pins
3.x): pip puts openai 2.x alone (its dependencies are the 3.x ones, already installed) in a
temporary folder, and a child process that imports it from there drives the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.doors.test_embeddings import MASTER, start  # noqa: F401 - the fixture, by name
from tests.integration._providers import fake_anthropic, fake_gemini, upstreams  # noqa: F401 - fixtures by name

CLIENT = r"""
import math, sys
import openai
assert openai.__version__.startswith("2."), openai.__version__
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2], max_retries=0)
for model in ("text-embedding-3-small", "gemini-embedding-001", "nomic-embed-text"):
    dims = None if model == "nomic-embed-text" else 64
    floats = client.embeddings.create(model=model, input=["a", "b"], encoding_format="float", dimensions=dims)
    packed = client.embeddings.create(model=model, input=["a", "b"], dimensions=dims)   # base64 by default
    assert [d.index for d in floats.data] == [0, 1] and floats.usage.prompt_tokens > 0
    assert len(floats.data[0].embedding) == (dims or 768)
    assert all(abs(x - y) < 1e-5 for x, y in zip(floats.data[1].embedding, packed.data[1].embedding))
for model in ("gpt-3.5-turbo-instruct", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"):
    text = client.completions.create(model=model, prompt="Say hi", max_tokens=20).choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="Say hi",
                                                                          max_tokens=20, stream=True) if c.choices)
    assert text and streamed == text, (model, text, streamed)
print("ok", openai.__version__)
"""


@pytest.fixture(scope="module")
def openai2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("openai2")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), "openai>=2,<3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if pip.returncode != 0:
        pytest.skip(f"could not install openai 2.x from the package index: {pip.stderr[-300:]}")
    return target


def test_openai_sdk_2_embeddings_and_completions(openai2: Path, start: Callable[..., str]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", CLIENT, start(), MASTER],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(openai2)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ok 2.")
