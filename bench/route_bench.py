"""classify + route, the decision "auto" makes on every request: p50/p99 in microseconds.

    .venv/bin/python bench/route_bench.py

Runs the shipped classifier and the router over the real registry (every provider configured)
for a short question, a 2k-token chat with tools, and a 100 kB pasted document.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from llmproxy.classifier import Classifier
from llmproxy.classifier.stage import classify
from llmproxy.config import ProviderSettings, Secret, Settings
from llmproxy.context import Principal, RequestContext
from llmproxy.breakers import Health
from llmproxy.registry import load_registry
from llmproxy.router import route

REPO = Path(__file__).resolve().parent.parent
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    for i in range(6)
]
CASES = {
    "short question": {"messages": [{"role": "user", "content": "What is the capital of Australia?"}]},
    "2k-token chat + tools": {
        "messages": [{"role": "system", "content": "You are a support agent. " * 40}]
        + [
            {
                "role": "user" if i % 2 else "assistant",
                "content": "Let me check the order status and the refund policy for this case. " * 12,
            }
            for i in range(12)
        ],
        "tools": TOOLS,
    },
    "100 kB document": {
        "messages": [
            {
                "role": "user",
                "content": "Summarise the key risks in this contract:\n"
                + "The supplier shall deliver the goods on time. " * 2200,
            }
        ]
    },
}


def main() -> None:
    registry = load_registry(REPO / "registry" / "models.json")
    providers = tuple(
        ProviderSettings(name=n, kind=n, base_url=u, api_key=Secret("k"))
        for n, u in (
            ("openai", "https://api.openai.com/v1"),
            ("anthropic", "https://api.anthropic.com"),
            ("gemini", "https://generativelanguage.googleapis.com"),
        )
    )
    settings = Settings(providers=providers)
    classifier, health = Classifier.load(), Health()
    print(f"{'case':24} {'p50 us':>8} {'p99 us':>8}  first candidate")
    for name, body in CASES.items():
        body = {"model": "auto", **body}
        times = []
        for _ in range(2000):
            ctx = RequestContext("bench", body, requested_model="auto", principal=Principal("master"))
            t = time.perf_counter()
            classify(ctx, classifier)
            route(ctx, registry, settings, health)
            times.append((time.perf_counter() - t) * 1e6)
        times.sort()
        print(
            f"{name:24} {statistics.median(times):8.0f} {times[int(len(times) * 0.99)]:8.0f}  "
            f"{ctx.candidates[0][1].id} ({ctx.complexity}, {ctx.strategy})"
        )


if __name__ == "__main__":
    main()
