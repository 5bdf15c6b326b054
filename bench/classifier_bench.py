"""Classifier latency: p50 / p99 microseconds per classify() for short, 2k-token chat, tools and 100 kB requests,
and the CPU cost of auto:cascade's answer checks (a JSON answer, and a held 2k-token stream rebuilt and checked).

    python bench/classifier_bench.py [--n 2000]

Wall-clock percentiles include time the OS gave to other processes; the CPU-time columns
(CLOCK_THREAD_CPUTIME_ID) do not, so they stay meaningful on a busy shared machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import Any

import orjson

from llmproxy.answer_checks import failure, stream_message
from llmproxy.classifier import Classifier

WORDS = (
    "the quarterly report shows revenue grew while support tickets fell after the new onboarding "
    "flow; customers asked for dark mode, faster search and better exports "
).split()


def _text(n_chars: int) -> str:
    out: list[str] = []
    size = i = 0
    while size < n_chars:
        w = WORDS[i % len(WORDS)]
        out.append(w)
        size += len(w) + 1
        i += 1
    return " ".join(out)[:n_chars]


def cases() -> dict[str, dict[str, Any]]:
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "Look something up in the system.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
        for i in range(8)
    ]
    chat = [{"role": "system", "content": "You are a helpful assistant for an online store."}]
    for _ in range(6):
        chat += [{"role": "user", "content": _text(700)}, {"role": "assistant", "content": _text(700)}]
    chat.append({"role": "user", "content": "Can you summarise what we agreed so far?"})
    return {
        "short": {"model": "auto", "messages": [{"role": "user", "content": "hi! what's the capital of Peru?"}]},
        "chat 2k tokens": {"model": "auto", "messages": chat},
        "tools": {
            "model": "auto",
            "tools": tools,
            "messages": [
                {"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": "Where is my order 1234? It was due yesterday."},
            ],
        },
        "100 kB prompt": {
            "model": "auto",
            "messages": [{"role": "user", "content": _text(100_000) + "\n\nFix the typo in the second paragraph."}],
        },
        "100 kB parts+image": {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": _text(100_000)},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "text", "text": "Prove that the algorithm above terminates."},
                    ],
                }
            ],
        },
    }


def _pcts(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]


def measure(clf: Classifier, request: dict[str, Any], n: int) -> tuple[float, float, float, float]:
    """(wall p50, wall p99, cpu p50, cpu p99) in microseconds."""
    for _ in range(50):
        clf.classify(request)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(n):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        clf.classify(request)
        wall.append((time.perf_counter_ns() - t0) / 1000)
        cpu.append((time.thread_time_ns() - c0) / 1000)
    return (*_pcts(wall), *_pcts(cpu))


def check_cases() -> dict[str, Any]:
    """Callables doing what the cascade does after a cheaper answer: check it (and, for a stream, rebuild it)."""
    schema = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "qty"],
                    "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
                },
            }
        },
    }
    body = {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    answer = {
        "role": "assistant",
        "content": orjson.dumps({"items": [{"name": f"item {i}", "qty": i} for i in range(50)]}).decode(),
    }
    words = _text(8000).split(" ")
    pieces = [
        b"data: "
        + orjson.dumps({"choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]})
        + b"\n\n"
        for w in words
    ]

    def stream_check(whole: bool) -> None:
        got = stream_message(pieces, whole)
        failure({}, got.message, got.finish_reason, got.partial)

    return {
        "check JSON answer": lambda: failure(body, answer, "stop"),
        "check 2k-token stream": lambda: stream_check(False),
        "  same, read whole": lambda: stream_check(True),
    }


def measure_call(fn: Any, n: int) -> tuple[float, float, float, float]:
    for _ in range(20):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(n):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        fn()
        wall.append((time.perf_counter_ns() - t0) / 1000)
        cpu.append((time.thread_time_ns() - c0) / 1000)
    return (*_pcts(wall), *_pcts(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    clf = Classifier.load()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {n} runs per case")
    print(f"{'case':<20} {'p50 us':>8} {'p99 us':>8} {'cpu p50':>8} {'cpu p99':>8}  label")
    gc.collect()
    for name, request in cases().items():
        p50, p99, c50, c99 = measure(clf, request, n)
        print(f"{name:<20} {p50:8.0f} {p99:8.0f} {c50:8.0f} {c99:8.0f}  {clf.classify(request)}")
    for name, fn in check_cases().items():
        p50, p99, c50, c99 = measure_call(fn, n // 4)
        print(f"{name:<20} {p50:8.0f} {p99:8.0f} {c50:8.0f} {c99:8.0f}  (cascade)")


if __name__ == "__main__":
    main()
