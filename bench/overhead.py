"""What llmproxy adds to a request: the gateway against a fast local fake upstream, side by side.

Starts a fake OpenAI upstream (aiohttp.web, fixed answer, SSE streams) and `python -m llmproxy
serve` in front of it, then measures, for the upstream called directly and through the gateway:
requests/s and latency at fixed concurrency, streaming time to first byte, and the gateway's own
account of its overhead (the x-llmproxy-overhead-ms header). On a machine with taskset and 2+
cores, the gateway gets its own core and the upstream and the load generator share the other.

    .venv/bin/python bench/overhead.py                  # about a minute
    .venv/bin/python bench/overhead.py --concurrency 1,16 --duration 5 --stream 10
    .venv/bin/python bench/overhead.py --mode both    # chat and Anthropic Messages (Claude passthrough), same run
    .venv/bin/python bench/overhead.py --mode responses   # chat, and /v1/responses translated and to OpenAI
    .venv/bin/python bench/overhead.py --mode chat,embeddings --rounds 7   # and /v1/embeddings (1536 floats)
    .venv/bin/python bench/overhead.py --limited-key --cache-unique --redis redis://127.0.0.1:6379/0
        # a key with limits (checked on every request), the cache on with unique bodies, state in Redis

The gateway's CPU per request (user + system time of its process over a run / requests) is printed
beside each run: the number to compare between configurations on a noisy machine.

For the comparison with a minimal proxy and LiteLLM, use the team's shared harness (README).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fake upstream."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }
)
REQUEST = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "Say hello."}]})
CLAUDE = "claude-haiku-4-5-20251001"  # a registry model, served by the fake as provider "anthropic"
MESSAGE = orjson.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE,
        "content": [{"type": "text", "text": "Hello from the fake upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 8},
    }
)
MESSAGES_REQUEST = orjson.dumps(
    {"model": CLAUDE, "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello."}]}
)
RESPONSES_REQUEST = orjson.dumps({"model": "fake-model", "input": "Say hello."})  # translated to chat
RESPONSES_OPENAI_REQUEST = orjson.dumps({"model": "openai/fake-model", "input": "Say hello."})  # passthrough
# An answer the size and shape of text-embedding-3-small's (1536 floats, usage last), for POST /v1/embeddings.
EMBEDDING = orjson.dumps(
    {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [round((i % 97) / 97 - 0.5, 6) for i in range(1536)]}
        ],
        "model": "fake-embed",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
)
EMBEDDING_REQUEST = orjson.dumps({"model": "fake-embed", "input": "Say hello.", "encoding_format": "float"})
STREAM_REQUEST = orjson.dumps(
    {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "Say hello."}]}
)

UPSTREAM_CODE = r"""
import asyncio, sys, orjson
from aiohttp import web
COMPLETION = sys.argv[2].encode()
MESSAGE = sys.argv[3].encode()
EMBEDDING = sys.argv[4].encode()
async def embeddings(request):
    await request.read()
    return web.Response(body=EMBEDDING, content_type="application/json")
async def messages(request):
    await request.read()
    return web.Response(body=MESSAGE, content_type="application/json")
def chunk(delta, finish=None, usage=False):
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "fake-model", "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}}
    return b"data: " + orjson.dumps(body) + b"\n\n"
async def chat(request):
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=COMPLETION, content_type="application/json")
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(chunk({"role": "assistant", "content": ""}))
    for _ in range(20):
        await asyncio.sleep(0.005)
        await resp.write(chunk({"content": "tok "}))
    await resp.write(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(chunk({}, usage=True))
    await resp.write(b"data: [DONE]\n\n")
    return resp
RESPONSE = orjson.dumps({"id": "resp_bench", "object": "response", "created_at": 1, "status": "completed",
    "model": "fake-model", "output": [{"id": "msg_bench", "type": "message", "status": "completed", "role": "assistant",
    "content": [{"type": "output_text", "text": "Hello from the fake upstream.", "annotations": []}]}],
    "usage": {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20}})
async def responses(request):
    await request.read()
    return web.Response(body=RESPONSE, content_type="application/json")
app = web.Application()
app.router.add_post("/v1/responses", responses)
app.router.add_post("/v1/chat/completions", chat)
app.router.add_post("/v1/messages", messages)
app.router.add_post("/v1/embeddings", embeddings)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def upstream_command(port: int) -> list[str]:
    """The fake upstream's command line: this interpreter running UPSTREAM_CODE with the canned answers."""
    return [sys.executable, "-c", UPSTREAM_CODE, str(port), COMPLETION.decode(), MESSAGE.decode(), EMBEDDING.decode()]


def stop(*procs: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM to each process, then up to `timeout` seconds each to end; one still running is killed."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def pinned(cpus: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *cmd] if cpus and shutil.which("taskset") else cmd


async def wait_up(url: str, timeout: float = 30) -> None:  # noqa: ASYNC109 - a deadline for the polling loop
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def unique_bodies(body: bytes) -> Callable[[], bytes]:
    """Bodies that differ in their prompt and ask for temperature 0: each a cache miss, then stored."""
    doc = orjson.loads(body)
    count = itertools.count()

    def make() -> bytes:
        doc["temperature"] = 0
        doc["messages"][-1]["content"] = f"Say hello {next(count)}."
        return orjson.dumps(doc)

    return make


async def load(
    url: str, body: bytes | Callable[[], bytes], concurrency: int, duration: float, key: str = "sk-bench"
) -> dict[str, float]:
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    stop = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                async with s.post(url, data=body if isinstance(body, bytes) else body(), headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        if errors == 1:
                            print(f"first error: {r.status} {(await r.read())[:300]!r}", file=sys.stderr)
                    if "x-llmproxy-overhead-ms" in r.headers:
                        overheads.append(float(r.headers["x-llmproxy-overhead-ms"]))
                latencies.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    result = {
        "rps": len(latencies) / duration,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "errors": errors,
    }
    if overheads:
        overheads.sort()
        result["overhead_p50"] = percentile(overheads, 50)
        result["overhead_p99"] = percentile(overheads, 99)
    return result


async def ttfb(url: str, n: int) -> dict[str, float]:
    firsts, totals = [], []
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            t = time.perf_counter()
            async with s.post(url, data=STREAM_REQUEST, headers=headers) as r:
                first = None
                async for _chunk in r.content.iter_any():
                    if first is None:
                        first = time.perf_counter() - t
            firsts.append(first * 1000)
            totals.append((time.perf_counter() - t) * 1000)
    return {"ttfb_p50": statistics.median(firsts), "total_p50": statistics.median(totals)}


async def limited_key(port: int) -> str:
    """A virtual key whose rpm and tpm never bind but are checked on every request (no budget: the
    bench model has no price)."""
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"http://127.0.0.1:{port}/admin/keys",
            headers={"authorization": "Bearer sk-bench"},
            json={"name": "bench", "rpm": 100_000_000, "tpm": 10**12},
        ) as r:
            if r.status != 201:
                raise SystemExit(f"could not make the bench key: {r.status} {await r.text()}")
            return str((await r.json())["key"])


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    """Each number's median over rounds (one round: the round itself)."""
    return {key: statistics.median(r[key] for r in results) for key in results[0] if all(key in r for r in results)}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--stream", type=int, default=20, help="sequential streams to time (0 to skip)")
    ap.add_argument(
        "--mode",
        default="chat",
        help="comma-separated: chat (completions), anthropic (Messages to a Claude model, passthrough), "
        "embeddings, responses (chat beside /v1/responses translated to chat and passed through "
        "to OpenAI); both = chat,anthropic",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="interleaved rounds per concurrency, medians reported (a shared, noisy machine: use 5+)",
    )
    ap.add_argument("--upstream-port", type=int, default=18281)
    ap.add_argument("--gateway-port", type=int, default=18282)
    ap.add_argument("--redis", help="a Redis url: limits, the cache's shared tier and notifications there")
    ap.add_argument(
        "--limited-key",
        action="store_true",
        help="send with a virtual key that has rpm and tpm (checked on every request)",
    )
    ap.add_argument(
        "--cache-unique",
        action="store_true",
        help="the cache on, every body unique at temperature 0 (a lookup and a store per request)",
    )
    args = ap.parse_args()
    multi = (os.cpu_count() or 1) >= 2
    work = Path(tempfile.mkdtemp(prefix="llmproxy-bench-"))
    (work / "llmproxy.toml").write_text(
        f'[providers.bench]\nkind = "openai-compatible"\nbase_url = "http://127.0.0.1:{args.upstream_port}/v1"\n'
        'models = ["fake-model", "fake-embed"]\n'
        f'[providers.anthropic]\nkind = "anthropic"\nbase_url = "http://127.0.0.1:{args.upstream_port}"\n'
        'api_key = "sk-ant-bench"\n[logging]\nlevel = "warning"\n'
        f'[providers.openai]\nkind = "openai"\nbase_url = "http://127.0.0.1:{args.upstream_port}/v1"\n'
        'api_key = "sk-openai-bench"\n'
        # one request repeated: with the cache on we would time cache hits (--cache-unique: every body new)
        f"[cache]\nenabled = {'true' if args.cache_unique else 'false'}\n"
        + (f'[redis]\nurl = "{args.redis}"\n' if args.redis else "")
    )
    up = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; the server outlives this call
        pinned("0" if multi else None, upstream_command(args.upstream_port))
    )
    env = {**os.environ, "LLMPROXY_MASTER_KEY": "sk-bench"}
    gw = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; the server outlives this call
        pinned(
            "1" if multi else None,
            [
                sys.executable,
                "-m",
                "llmproxy",
                "--config",
                str(work / "llmproxy.toml"),
                "serve",
                "--port",
                str(args.gateway_port),
                "--data-dir",
                str(work / "data"),
            ],
        ),
        cwd=REPO,
        env=env,
    )
    try:
        direct = f"http://127.0.0.1:{args.upstream_port}/v1/chat/completions"
        gateway = f"http://127.0.0.1:{args.gateway_port}/v1/chat/completions"
        modes = {
            "chat": [("chat", direct, gateway, REQUEST)],
            "anthropic": [
                (
                    "messages",
                    direct.replace("chat/completions", "messages"),
                    gateway.replace("chat/completions", "messages"),
                    MESSAGES_REQUEST,
                )
            ],
            "embeddings": [
                (
                    "embeddings",
                    direct.replace("chat/completions", "embeddings"),
                    gateway.replace("chat/completions", "embeddings"),
                    EMBEDDING_REQUEST,
                )
            ],
        }
        modes["responses"] = modes["chat"] + [
            ("responses", direct, gateway.replace("chat/completions", "responses"), RESPONSES_REQUEST),
            (
                "responses-openai",
                direct.replace("chat/completions", "responses"),
                gateway.replace("chat/completions", "responses"),
                RESPONSES_OPENAI_REQUEST,
            ),
        ]
        names = ["chat", "anthropic"] if args.mode == "both" else args.mode.split(",")
        runs = list({run[0]: run for name in names for run in modes[name]}.values())  # chat once
        await wait_up(f"http://127.0.0.1:{args.upstream_port}/")
        await wait_up(f"http://127.0.0.1:{args.gateway_port}/healthz")
        key = await limited_key(args.gateway_port) if args.limited_key else "sk-bench"
        for _, _, url, body in runs:
            await load(url, body, 4, 1.0, key)  # warm-up
        print(
            "| api | target | conc | RPS | p50 ms | p99 ms | added p50 ms | gateway overhead p50 / p99 ms | "
            "gateway CPU us/req | errors |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in [int(x) for x in args.concurrency.split(",") if x]:
            rounds: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {api: [] for api, *_ in runs}
            for _ in range(args.rounds):
                for api, up_url, gw_url, body in runs:  # interleaved, so all see the same machine
                    send = unique_bodies(body) if args.cache_unique else body
                    d = await load(up_url, send, c, args.duration)
                    cpu = cpu_seconds(gw.pid)
                    g = await load(gw_url, send, c, args.duration, key)
                    g["cpu_us"] = (cpu_seconds(gw.pid) - cpu) * 1e6 / max(1.0, g["rps"] * args.duration)
                    rounds[api].append((d, g))
            for api, _, _, _ in runs:
                d, g = (_median([pair[i] for pair in rounds[api]]) for i in (0, 1))
                cpu_us = g["cpu_us"]
                print(
                    f"| {api} | direct | {c} | {d['rps']:.0f} | {d['p50']:.2f} | {d['p99']:.2f} | 0.00 | - | - | {d['errors']} |"
                )
                print(
                    f"| {api} | llmproxy | {c} | {g['rps']:.0f} | {g['p50']:.2f} | {g['p99']:.2f} | {g['p50'] - d['p50']:.2f} "
                    f"| {g.get('overhead_p50', float('nan')):.3f} / {g.get('overhead_p99', float('nan')):.3f} "
                    f"| {cpu_us:.0f} | {g['errors']} |"
                )
        if args.stream and "chat" in names:
            d, g = await ttfb(direct, args.stream), await ttfb(gateway, args.stream)
            print(
                f"\nstreaming (20 chunks, 5 ms apart), median of {args.stream}: "
                f"TTFB direct {d['ttfb_p50']:.2f} ms, through llmproxy {g['ttfb_p50']:.2f} ms "
                f"(+{g['ttfb_p50'] - d['ttfb_p50']:.2f}); total {d['total_p50']:.1f} vs {g['total_p50']:.1f} ms"
            )
        print(
            "\nThe load generator is Python and shares a core with the upstream: read the added latency and the "
            "gateway's own overhead header, not absolute RPS."
        )
    finally:
        stop(gw, up)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
