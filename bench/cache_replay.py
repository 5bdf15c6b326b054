"""Replay a realistic trace with repeats through a real gateway and report what the cache does.

The trace: N requests (default 1,000) of which a share (default 40%) repeat an earlier one, popular
requests being repeated more often (each repeat picks an earlier request with a weight that grows
with how often it was asked). The requests vary in size (a one-line question to a ~6 KB chat with
tools), model, temperature and delivery (a quarter streamed, half of those asking for usage).

The gateway runs as its own process (`python -m llmproxy serve`, default settings: cache on) on
loopback, in front of the tests' fake OpenAI server in another process; the client sends the trace
one request at a time over a kept-alive aiohttp connection. Reported: hit rate, and for hits the
median / p99 of the time inside the gateway (its x-llmproxy-overhead-ms header) and end to end
(request sent to last byte read), misses alongside for contrast. First, an in-process measurement
of the cache stage alone (10,000 calls each).

    .venv/bin/python bench/cache_replay.py [--requests 1000] [--repeat 0.4] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llmproxy.cache import ResponseCache  # noqa: E402 - after the sys.path line above
from llmproxy.config import CacheSettings  # noqa: E402 - after the sys.path line above
from llmproxy.context import Principal, RequestContext  # noqa: E402 - after the sys.path line above
from tests.fakes import openai_server  # noqa: E402 - after the sys.path line above
from tests.fakes.serve import free_port  # noqa: E402 - after the sys.path line above

FAKE_UPSTREAM = """
import sys, uvicorn
from tests.fakes import openai_server
uvicorn.run(openai_server.create_app(openai_server.FakeState()), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""
SENTENCE = "The quick brown fox jumps over the lazy dog while the gateway answers from its cache. "
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Look something up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
    for i in range(4)
]
MODELS = ("gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o")


def make_request(rng: random.Random, n: int) -> dict[str, Any]:
    """One distinct request (n makes it unique)."""
    size = rng.choice(("short", "short", "medium", "long"))
    if size == "short":
        messages = [{"role": "user", "content": f"Question {n}: what is {rng.randint(2, 99)} squared?"}]
    else:
        turns = 2 if size == "medium" else 8
        messages = [{"role": "system", "content": SENTENCE * 3}]
        for t in range(turns):
            messages.append({"role": "user", "content": f"({n}.{t}) " + SENTENCE * rng.randint(1, 6)})
            messages.append({"role": "assistant", "content": SENTENCE * rng.randint(1, 3)})
        messages.append({"role": "user", "content": f"Summarise conversation {n}."})
    body: dict[str, Any] = {"model": rng.choice(MODELS), "messages": messages}
    temperature = rng.choice((None, 0, 0, 0.7))
    if temperature is not None:
        body["temperature"] = temperature
    if rng.random() < 0.3:
        body["max_tokens"] = rng.choice((64, 256, 1024))
    if size == "long" and rng.random() < 0.5:
        body["tools"] = TOOLS
    if rng.random() < 0.25:
        body["stream"] = True
        if rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
    return body


def make_trace(count: int, repeat_share: float, seed: int) -> list[tuple[bool, dict[str, Any]]]:
    """(is_repeat, body) in order; exactly round(count * repeat_share) repeats, never the first."""
    rng = random.Random(seed)
    flags = [True] * round(count * repeat_share) + [False] * (count - round(count * repeat_share))
    rng.shuffle(flags)
    if flags and flags[0]:
        flags[flags.index(False)], flags[0] = True, False
    distinct: list[dict[str, Any]] = []
    asked: list[int] = []  # one index per time asked: popular requests get picked more
    trace = []
    for repeat in flags:
        if repeat:
            index = rng.choice(asked)
        else:
            distinct.append(make_request(rng, len(distinct)))
            index = len(distinct) - 1
        asked.append(index)
        trace.append((repeat, distinct[index]))
    return trace


def micro() -> None:
    """The cache stage in-process: a request the rule does not cache (decided without a key), key +
    lookup on a hit and on a miss, and a store (queued, then the drain that runs after the response)."""

    async def run(body: dict[str, Any]) -> None:
        cache = ResponseCache(CacheSettings(persist=False))
        answer = orjson.dumps(
            {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": SENTENCE * 5}}]}
        )
        principal = Principal(kind="key", key_id="k1", role="user")

        def ctx(b: dict[str, Any]) -> RequestContext:
            c = RequestContext(request_id="r", body=b, principal=principal)
            c.requested_model = b["model"]
            return c

        first = ctx(body)
        await cache.lookup(first)
        first.cost_usd = 0.001
        cache.store(first, answer)
        await asyncio.sleep(0)  # the drain: stored once the response has gone out
        rounds = 10_000
        print(f"  {len(orjson.dumps(body))} byte request:")
        for label, make in (
            ("not cacheable", lambda: ctx({**body, "temperature": 0.7})),
            ("lookup, hit", lambda: ctx(body)),
            ("lookup, miss", lambda: ctx({**body, "seed": random.random()})),
        ):
            contexts = [make() for _ in range(rounds)]
            started = time.perf_counter()
            for c in contexts:
                await cache.lookup(c)
            print(f"    {label:<14} {(time.perf_counter() - started) / rounds * 1e6:6.1f} us per request")
        contexts = [ctx({**body, "seed": i}) for i in range(rounds)]
        for c in contexts:
            await cache.lookup(c)
            c.cost_usd = 0.001
        started = time.perf_counter()
        for c in contexts:
            cache.store(c, answer)
        queued = time.perf_counter()
        cache._drain()
        drained = time.perf_counter()
        print(
            f"    {'store':<14} {(queued - started) / rounds * 1e6:6.1f} us per answer on the request's path, "
            f"{(drained - queued) / rounds * 1e6:.1f} us after it (memory tier)"
        )

    short = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 12 squared?"}], "temperature": 0}
    long = {
        **short,
        "messages": [{"role": "system", "content": SENTENCE * 3}, {"role": "user", "content": SENTENCE * 20}],
    }
    print("cache stage in-process (10,000 calls each):")
    for body in (short, long):
        asyncio.run(run(body))


async def replay(base: str, trace: list[tuple[bool, dict[str, Any]]]) -> list[dict[str, Any]]:
    results = []
    url = base + "/v1/chat/completions"
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm the connection and the code paths on requests outside the trace
            async with session.post(
                url,
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "w"}]},
                headers={"cache-control": "no-store"},
            ) as r:
                await r.read()
        for repeat, body in trace:
            data = orjson.dumps(body)
            started = time.perf_counter()
            async with session.post(url, data=data, headers={"content-type": "application/json"}) as r:
                payload = await r.read()
                e2e = time.perf_counter() - started
            if r.status != 200:
                raise SystemExit(f"request failed: {r.status} {payload[:200]!r}")
            results.append(
                {
                    "repeat": repeat,
                    "stream": bool(body.get("stream")),
                    "cache": r.headers["x-llmproxy-cache"],
                    "deterministic": body.get("temperature") == 0 or body.get("seed") is not None,
                    "overhead_ms": float(r.headers["x-llmproxy-overhead-ms"]),
                    "e2e_ms": e2e * 1000.0,
                }
            )
    return results


def summary(label: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"  {label:<22} (none)"

    def pct(values: list[float]) -> str:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"median {statistics.median(ordered):6.3f}  p99 {p99:6.3f}"

    return (
        f"  {label:<22} n={len(rows):<4} inside gateway ms: {pct([r['overhead_ms'] for r in rows])}   "
        f"end to end ms: {pct([r['e2e_ms'] for r in rows])}"
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited during start-up")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeat", type=float, default=0.4, help="share of requests that repeat an earlier one")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    micro()
    trace = make_trace(args.requests, args.repeat, args.seed)
    upstream_port, gateway_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmproxy.toml"
        config.write_text(
            f'[providers.openai]\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
            f'[registry]\npath = "{REPO / "registry" / "models.json"}"\n[logging]\nlevel = "warning"\n'
        )
        env = {**os.environ, "OPENAI_API_KEY": openai_server.API_KEY, "PYTHONPATH": str(REPO)}
        env.pop("LLMPROXY_MASTER_KEY", None)
        upstream = subprocess.Popen([sys.executable, "-c", FAKE_UPSTREAM, str(upstream_port)], cwd=REPO, env=env)
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmproxy",
                "--config",
                str(config),
                "serve",
                "--port",
                str(gateway_port),
                "--data-dir",
                str(Path(tmp) / "data"),
            ],
            cwd=tmp,
            env=env,
        )
        try:
            wait_ready(f"http://127.0.0.1:{upstream_port}/", upstream)
            wait_ready(f"http://127.0.0.1:{gateway_port}/healthz", gateway)
            results = asyncio.run(replay(f"http://127.0.0.1:{gateway_port}", trace))
        finally:
            for proc in (gateway, upstream):
                proc.terminate()
                proc.wait(timeout=30)
    hits = [r for r in results if r["cache"] == "hit"]
    misses = [r for r in results if r["cache"] == "miss"]
    repeats = sum(r["repeat"] for r in results)
    print(
        f"\ntrace: {len(results)} requests, {repeats} repeats of earlier ones "
        f"({sum(r['stream'] for r in results)} streamed), seed {args.seed}"
    )
    print(
        f"hit rate: {len(hits) / len(results):.1%} ({len(hits)} hits; repeats served from cache: "
        f"{sum(r['repeat'] for r in hits)}/{repeats}; bypass {len(results) - len(hits) - len(misses)})"
    )
    deterministic = [r for r in results if r["deterministic"] and r["repeat"]]
    print(
        f"the default rule caches deterministic requests only (temperature 0 or a seed: "
        f"{sum(r['deterministic'] for r in results)} of {len(results)}); their repeats served from cache: "
        f"{sum(r['cache'] == 'hit' for r in deterministic)}/{len(deterministic)}; a repeat at temperature > 0 "
        f"is a new sample (bypass)"
    )
    print(summary("hits", hits))
    print(summary("hits, non-stream", [r for r in hits if not r["stream"]]))
    print(summary("hits, stream", [r for r in hits if r["stream"]]))
    print(summary("misses (fake upstream)", misses))
    median_inside = statistics.median(r["overhead_ms"] for r in hits) if hits else float("nan")
    median_e2e = statistics.median(r["e2e_ms"] for r in hits) if hits else float("nan")
    print(
        f"goals: median hit inside the gateway < 1 ms: {'met' if median_inside < 1 else 'NOT met'} "
        f"({median_inside:.3f} ms); end to end < 2 ms: {'met' if median_e2e < 2 else 'NOT met'} ({median_e2e:.3f} ms)"
    )


if __name__ == "__main__":
    main()
