"""The same embeddings, completions and Responses calls from the openai SDK's 2.x line (the test
extra pins 3.x): pip puts openai 2.x alone (its dependencies are the 3.x ones, already installed) in
a temporary folder, and a child process that imports it from there drives the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.doors.conftest import CLAUDE, GEMINI, GPT
from tests.doors.conftest import MASTER as DOORS_MASTER
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

# Responses on each provider: create, responses.stream(), a function tool round trip, parse with a
# pydantic model, previous_response_id across two providers, retrieve and delete.
RESPONSES_CLIENT = r"""
import json, sys
import openai
from pydantic import BaseModel
assert openai.__version__.startswith("2."), openai.__version__
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2], max_retries=0)
models = sys.argv[3:]
class City(BaseModel):
    name: str
    population: int
    coastal: bool
weather = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}}
for model in models:
    made = client.responses.create(model=model, input="hello there")
    assert made.status == "completed" and made.output_text.endswith("hello there"), made
    with client.responses.stream(model=model, input="one two three") as stream:
        numbers = [event.sequence_number for event in stream]
        final = stream.get_final_response()
    assert numbers == list(range(len(numbers))) and final.output_text.endswith("one two three")
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[weather])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"], first.output
    history = [{"role": "user", "content": "Weather in Paris?"}, *[c.model_dump(exclude_none=True) for c in calls],
               *[{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls]]
    second = client.responses.create(model=model, input=history, tools=[weather])
    assert second.output_text and not [i for i in second.output if i.type == "function_call"]
    city = client.responses.parse(model=model, input="A coastal city?", text_format=City).output_parsed
    assert isinstance(city, City) and city.name, city
    got = client.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    client.responses.delete(made.id)
    try:
        client.responses.retrieve(made.id)
        raise AssertionError("a deleted response was retrieved")
    except openai.NotFoundError:
        pass
for a, b in zip(models, models[1:] + models[:1]):   # two turns, each on another provider
    one = client.responses.create(model=a, input="My name is Ada.")
    two = client.responses.create(model=b, input="What is my name?", previous_response_id=one.id)
    assert two.previous_response_id == one.id and two.output_text.endswith("What is my name?")
    texts = [i.content[0].text for i in client.responses.input_items.list(two.id, order="asc").data
             if i.type == "message"]
    assert texts == ["My name is Ada.", one.output_text, "What is my name?"], texts
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


def test_openai_sdk_2_responses_on_every_provider(openai2: Path, gateway_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", RESPONSES_CLIENT, gateway_url, DOORS_MASTER, GPT, CLAUDE, GEMINI],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(openai2)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ok 2.")
