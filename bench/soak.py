"""Soak: tens of thousands of requests through a real `llmproxy serve` process against a fast fake
upstream, reporting the gateway's resident memory from after the warm-up to the end. It must stay
flat: memory that grows with the number of requests is a leak.

    .venv/bin/python bench/soak.py                  # 50,000 requests, 32 in flight
    .venv/bin/python bench/soak.py --requests 5000  # a quick look

Everything runs on loopback: the fake upstream (a subprocess of this script), the gateway (another)
and the load (this process). A quarter of the requests stream; prompts are unique so that every
request reaches the upstream, and they ask for a deterministic answer (temperature 0) so that the
response cache stores every one of them (its miss path and its disk tier; memory keeps only the
answers asked for again, so here it stays nearly empty); the memory tier is held to 4 MiB
(--cache-memory-mib) so that, with the disk tier off, it reaches its bound during the warm-up
instead of looking like growth. At the end the gateway gets SIGTERM and every
request must have its row in the usage log. Not part of the pytest suite: it takes a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
API_KEY = "sk-soak-upstream"
COMPLETION = (
    b'{"id":"chatcmpl-soak","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"ok, soaked"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23,'
    b'"prompt_tokens_details":{"cached_tokens":4}}}'
)
_CHUNK = (
    b'data: {"id":"chatcmpl-soak","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":"ok "},"finish_reason":null}]}\n\n'
)
STREAM = (
    _CHUNK * 3 + b'data: {"id":"chatcmpl-soak","object":"chat.completion.chunk","created":1,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"chatcmpl-soak","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23}}\n\n'
    b"data: [DONE]\n\n"
)


def serve_upstream(port: int) -> None:
    """The fake OpenAI upstream: canned answers, as fast as aiohttp's server goes."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"stream":true' in body:
            return web.Response(body=STREAM, content_type="text/event-stream")
        return web.Response(body=COMPLETION, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"port {port}: process exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def drive(url: str, start: int, count: int, in_flight: int) -> tuple[int, float]:
    """Send requests start..start+count-1, `in_flight` at a time; returns (failures, seconds)."""
    import aiohttp

    failures = 0
    next_i = start
    end = start + count
    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal next_i, failures
            while next_i < end:
                i = next_i
                next_i += 1
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"soak request {i}"}],
                    "temperature": 0,
                }
                if i % 4 == 0:
                    body["stream"] = True
                async with session.post(url + "/v1/chat/completions", json=body) as r:
                    await r.read()
                    if r.status != 200:
                        failures += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return failures, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--samples", type=int, default=10, help="RSS samples between warm-up and end")
    parser.add_argument("--no-cache", action="store_true", help="turn the response cache off")
    parser.add_argument("--cache-memory-mib", type=int, default=4, help="the cache's memory bound")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0

    work = Path(tempfile.mkdtemp(prefix="llmproxy-soak-"))
    up_port, gw_port = free_port(), free_port()
    cache = "enabled = false" if args.no_cache else f"max_memory_bytes = {args.cache_memory_mib << 20}"
    (work / "llmproxy.toml").write_text(
        f'[logging]\nlevel = "info"\n[cache]\n{cache}\n[registry]\nauto_update = false\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    env.update({"LLMPROXY_OPENAI_BASE_URL": f"http://127.0.0.1:{up_port}/v1", "OPENAI_API_KEY": API_KEY})
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)], env=env)
    log_file = open(work / "gateway.log", "wb")
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmproxy",
            "--config",
            str(work / "llmproxy.toml"),
            "serve",
            "--port",
            str(gw_port),
            "--data-dir",
            str(work / "data"),
        ],
        cwd=work,
        env=env,
        stdout=log_file,
        stderr=log_file,
    )
    url = f"http://127.0.0.1:{gw_port}"
    try:
        wait_port(up_port, upstream)
        wait_http(url + "/readyz", gateway)
        boot = rss_mib(gateway.pid)
        failures, seconds = asyncio.run(drive(url, 0, args.warmup, args.in_flight))
        start_rss = rss_mib(gateway.pid)
        print(
            f"gateway pid {gateway.pid}; RSS at boot {boot:.1f} MiB, after {args.warmup:,} warm-up requests "
            f"{start_rss:.1f} MiB ({args.warmup / seconds:,.0f} req/s)"
        )
        print(f"{'requests':>10}  {'RSS MiB':>8}  {'req/s':>7}")
        print(f"{0:>10,}  {start_rss:8.1f}  {'':>7}")
        step = max(1, args.requests // args.samples)
        done, total_s, samples = 0, 0.0, [start_rss]
        while done < args.requests:
            n = min(step, args.requests - done)
            f, s = asyncio.run(drive(url, args.warmup + done, n, args.in_flight))
            failures += f
            total_s += s
            done += n
            samples.append(rss_mib(gateway.pid))
            print(f"{done:>10,}  {samples[-1]:8.1f}  {n / s:7,.0f}")
        end_rss = samples[-1]
        if not args.no_cache:
            import json
            import urllib.request

            with urllib.request.urlopen(url + "/admin/cache", timeout=10) as r:
                stats = json.loads(r.read())
            disk = stats["disk"] or {}
            print(
                f"cache: {stats['stores']:,} stored; memory {stats['memory']['bytes'] / 2**20:.1f} of "
                f"{stats['memory']['max_bytes'] / 2**20:.0f} MiB ({stats['memory']['entries']:,} entries); disk "
                f"{disk.get('entries')} entries, write queue {disk.get('pending_bytes', 0) / 2**20:.1f} of "
                f"{disk.get('max_pending_bytes', 0) / 2**20:.0f} MiB, {disk.get('shed_writes')} writes shed"
            )
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=120)
    finally:
        for proc in (gateway, upstream):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log_file.close()
    sent = args.warmup + args.requests
    rows = sqlite3.connect(work / "data" / "llmproxy.db").execute("SELECT count(*) FROM usage").fetchone()[0]
    growth = end_rss - start_rss
    second_half = end_rss - samples[len(samples) // 2]
    flat = growth < max(8.0, 0.08 * start_rss) and second_half < max(4.0, 0.04 * start_rss)
    print(
        f"\n{args.requests:,} requests in {total_s:.1f} s ({args.requests / total_s:,.0f} req/s), "
        f"{failures} failures, {args.in_flight} in flight"
    )
    print(
        f"RSS start {start_rss:.1f} MiB, end {end_rss:.1f} MiB: {growth:+.1f} MiB overall, "
        f"{second_half:+.1f} MiB over the second half -> {'FLAT' if flat else 'GROWING'}"
    )
    print(
        f"usage rows after SIGTERM: {rows:,} of {sent:,} requests; gateway exit code {gateway.returncode}; "
        f"log {(work / 'gateway.log').stat().st_size / 1e6:.1f} MB in {work}"
    )
    ok = flat and failures == 0 and rows == sent
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
