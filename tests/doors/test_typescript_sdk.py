"""The official TypeScript SDK (@anthropic-ai/sdk) against the Messages door, run by node.

The SDK is installed from the npm registry at test time (`npm install --no-save`) into a
gitignored folder and reused by later runs. Without node or npm, or without the registry, the test
is skipped and says why; in CI (env CI set) it must run.
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

SDK_VERSION = "1.17.0"
HERE = Path(__file__).resolve().parent
SDK_DIR = HERE / ".node"  # gitignored


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the TypeScript SDK test must run in CI: {reason}")
    pytest.skip(reason)


def _install() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed to run the TypeScript SDK")
    package = SDK_DIR / "node_modules" / "@anthropic-ai" / "sdk" / "package.json"
    if package.exists() and orjson.loads(package.read_bytes()).get("version") == SDK_VERSION:
        return SDK_DIR
    SDK_DIR.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(SDK_DIR),
                f"@anthropic-ai/sdk@{SDK_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        _unavailable("npm install of @anthropic-ai/sdk took over 120 s (no registry?)")
    if done.returncode != 0 or not package.exists():
        _unavailable(f"npm install of @anthropic-ai/sdk failed: {done.stderr.strip()[-300:]}")
    return SDK_DIR


def test_typescript_sdk_against_claude_openai_and_gemini(gateway_url: str, upstreams: dict[str, Any]) -> None:
    sdk = _install()
    env = {**os.environ, "SDK_DIR": str(sdk), "BASE_URL": gateway_url, "API_KEY": MASTER, "MODELS": ",".join(MODELS)}
    done = subprocess.run(["node", str(HERE / "sdk_check.cjs")], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    from tests.fakes.anthropic_server import sample

    for model in MODELS:
        seen = result["models"][model]
        echo = "You said: " if model != GPT else "echo: "
        assert seen["create"] == {"text": echo + "hello there", "stop": "end_turn", "output": seen["create"]["output"]}
        assert seen["create"]["output"] > 0
        assert seen["stream"] == {"text": echo + "one two three", "final": echo + "one two three", "stop": "end_turn"}
        tools = seen["tools"]
        assert tools["stop"] == "tool_use" and [u["name"] for u in tools["uses"]] == ["get_weather", "get_time"]
        expected = [
            sample({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}),
            sample(
                {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "format": {"type": "string", "enum": ["24h", "12h"]}},
                }
            ),
        ]
        assert [u["input"] for u in tools["uses"]] == expected
        assert [j for j in tools["joined"]] == expected  # the raw input_json_delta pieces, joined
        assert len({u["id"] for u in tools["uses"]}) == 2
        assert seen["count"] > 0
    assert result["models"][CLAUDE]["count"] != result["models"][GEMINI]["count"]  # Anthropic counted Claude's
    assert result["errors"] == {
        "auth": "AuthenticationError:401",
        "notFound": "NotFoundError:404",
        "rateLimit": "RateLimitError:429",
    }
