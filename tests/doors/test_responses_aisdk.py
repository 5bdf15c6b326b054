"""The Vercel AI SDK's OpenAI provider (`ai` and `@ai-sdk/openai`, run by node) against the
Responses door, with its default model (`openai(model)`: the Responses API, not `.chat()`).

The SDK is installed from the npm registry at test time (`npm install --no-save`) into a
gitignored folder and reused by later runs. Without node or npm, or without the registry, the test
is skipped and says why; in CI (env CI set) it must run. (ai 6 and @ai-sdk/openai 3: the last
majors that run on Node 18 and 20; later ones need Node 22.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.doors.conftest import CLAUDE, GEMINI, GPT, MASTER, MODELS

PACKAGES = {"ai": "6.0.333", "@ai-sdk/openai": "3.0.141"}
HERE = Path(__file__).resolve().parent
SDK_DIR = HERE / ".node" / "ai-sdk"  # gitignored
ECHO = {GPT: "echo: ", CLAUDE: "You said: ", GEMINI: "You said: "}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the AI SDK test must run in CI: {reason}")
    pytest.skip(reason)


def _installed() -> bool:
    for name, version in PACKAGES.items():
        package = SDK_DIR / "node_modules" / name / "package.json"
        if not package.exists() or orjson.loads(package.read_bytes()).get("version") != version:
            return False
    return True


def _install() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed to run the AI SDK")
    if _installed():
        return SDK_DIR
    SDK_DIR.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    try:
        done = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(SDK_DIR), *specs],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        _unavailable("npm install of the AI SDK took over 120 s (no registry?)")
    if done.returncode != 0 or not _installed():
        _unavailable(f"npm install of the AI SDK failed: {done.stderr.strip()[-300:]}")
    return SDK_DIR


def test_ai_sdk_openai_provider_against_openai_claude_and_gemini(gateway_url: str, upstreams: dict[str, Any]) -> None:
    sdk = _install()
    env = {**os.environ, "SDK_DIR": str(sdk), "BASE_URL": gateway_url, "API_KEY": MASTER, "MODELS": ",".join(MODELS)}
    done = subprocess.run(["node", str(HERE / "aisdk_check.cjs")], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    for model in MODELS:
        seen = result["models"][model]
        assert seen["create"]["text"] == ECHO[model] + "hello there" and seen["create"]["finish"] == "stop"
        assert seen["create"]["output"] > 0 and seen["create"]["input"] > 0
        assert seen["create"]["id"].startswith("resp_")
        assert (
            seen["stream"]
            == {"text": ECHO[model] + "one two three", "finish": "stop", "output": seen["stream"]["output"]}
            and seen["stream"]["output"] > 0
        )
        tools = seen["tools"]
        assert tools["calls"] == [["get_weather", {"city": "Paris", "days": 3}]]
        assert tools["results"] == ["sunny in Paris for 3 days"] and tools["steps"] == 2 and tools["text"]
