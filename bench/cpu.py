"""CPU per request: what the gateway's process spends on each request, thread by thread.

Wall-clock figures (requests/s, latency) move with whatever else the machine runs; the CPU time a
process spends per request moves much less. This starts a fake upstream (bench/overhead.py's) and
the gateway as the reference bench starts it (bench/serve_for_bench.sh: defaults, or the cache off),
drives it with wrk at a fixed concurrency, and reads every thread's CPU time from /proc before and
after each timed window, divided by the requests served in it.

    .venv/bin/python bench/cpu.py                          # defaults, every request new, c=16
    .venv/bin/python bench/cpu.py --cache off --same       # cache off, one repeated body
    .venv/bin/python bench/cpu.py --runs 3 --duration 4    # three windows on one gateway
    .venv/bin/python bench/cpu.py --floor PATH/minproxy.py # the reference bench's floor instead

`--floor` runs the reference bench's minimal proxy (its minproxy.py, path given at run time, with
aiohttp as its client) in the gateway's place, so that the floor's CPU per request is measured the
same way: the ratio of the two is the requests/s ratio the reference bench would show on a core
with nothing else to do.

The request is the reference bench's (188 bytes, temperature 0: cacheable by the default rule).
Needs Linux and wrk; the gateway gets cpu 1, the upstream and wrk cpu 0.

bench/overhead.py's upstream is Python and shares cpu 0 with wrk: on a fast core it sets the pace
(the floor then serves at about half its core), which is fine for CPU per request but not for
requests/s. `--upstream` with the reference bench's nginx keeps the measured process busy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from overhead import RESPONSES_OPENAI_REQUEST, RESPONSES_REQUEST, stop, upstream_command

REPO = Path(__file__).resolve().parent.parent
BODY = (
    b'{"model":"fake-model","messages":[{"role":"system","content":"You are a helpful assistant."},'
    b'{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0}'
)
# --api: the route and the body of each front door measured (the Responses bodies as bench/overhead.py
# sends them: not cacheable by the default rule, and always one body).
APIS = {
    "chat": ("chat/completions", BODY),
    "responses": ("responses", RESPONSES_REQUEST),  # translated to the bench provider's chat
    "responses-openai": ("responses", RESPONSES_OPENAI_REQUEST),  # OpenAI's own /v1/responses
    "responses-nostore": ("responses", RESPONSES_REQUEST[:-1] + b',"store":false}'),  # what storing costs
}
# Every request's last message starts with a fresh counter (a new random tag per wrk run).
WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = os.getenv("CPU_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
if os.getenv("CPU_UNIQUE") == "1" then
  local head, tail = wrk.body:match('^(.*"content":%s*")(.-)$')
  local tag = tostring(math.random(1, 2^30)) .. tostring(os.time())
  local n = 0
  function request()
    n = n + 1
    return wrk.format(nil, nil, nil, head .. "r" .. tag .. "-" .. n .. " " .. tail)
  end
end
function done(summary, latency, requests)
  io.write(string.format("CPUBENCH %d %d %d\n", summary.requests, summary.errors.status, latency:percentile(50)))
end
"""


def thread_times(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) by thread: "loop" for the main thread (the event loop's), the
    others by thread id (Python's thread names do not reach the OS)."""
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # a thread that just ended
        fields = stat[stat.rindex(")") + 2 :].split()
        name = "loop" if task.name == str(pid) else f"thread {task.name}"
        times[name] = (int(fields[11]) + int(fields[12])) / tick
    return times


def serve_env(port: int, work: Path, upstream: str, python: str, cache: str) -> dict[str, str]:
    """What bench/serve_for_bench.sh reads: the gateway's port, scratch folder, upstream and
    interpreter, and the cache turned off when `cache` is "off"."""
    env = {
        **os.environ,
        "BENCH_PORT": str(port),
        "BENCH_WORKDIR": str(work),
        "BENCH_UPSTREAM_BASE": upstream,
        "PYTHON": python,
    }
    if cache == "off":
        env["LLMPROXY_CACHE"] = "off"
    return env


def wait_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, script: Path, concurrency: int, duration: float, unique: bool) -> tuple[int, int, float]:
    env = {**os.environ, "CPU_UNIQUE": "1" if unique else "0"}
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration:g}s",
            "-s",
            str(script),
            "--timeout",
            "5s",
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"CPUBENCH (\d+) (\d+) (\d+)", out)
    if match is None:
        raise SystemExit(f"wrk said:\n{out}")
    return int(match[1]), int(match[2]), int(match[3]) / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", choices=("on", "off"), default="on")
    ap.add_argument("--api", choices=sorted(APIS), default="chat", help="the front door measured (default chat)")
    ap.add_argument("--same", action="store_true", help="one repeated body (default: every request new)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--upstream-port", type=int, default=18381)
    ap.add_argument(
        "--upstream",
        help="base URL of an upstream already running (e.g. the reference bench's "
        "nginx), instead of starting bench/overhead.py's",
    )
    ap.add_argument("--gateway-port", type=int, default=18382)
    ap.add_argument("--floor", type=Path, help="the reference bench's minproxy.py, measured instead of the gateway")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmproxy-cpu-"))
    script = work / "load.lua"
    script.write_text(WRK_SCRIPT)
    up = None if args.upstream else subprocess.Popen(["taskset", "-c", "0", *upstream_command(args.upstream_port)])
    base = args.upstream or f"http://127.0.0.1:{args.upstream_port}/v1"
    env = serve_env(args.gateway_port, work, base, sys.executable, args.cache)
    path, body = APIS[args.api]
    unique = not args.same and args.api == "chat"
    os.environ["CPU_BODY"] = body.decode()
    if args.api == "responses-openai":  # an OpenAI provider on the same fake, for the passthrough
        env["BENCH_EXTRA_TOML"] = (
            f'[providers.openai]\nkind = "openai"\nbase_url = "{base}"\napi_key = "sk-bench"\n'
            + env.get("BENCH_EXTRA_TOML", "")
        )
    if args.floor is not None:
        if args.api != "chat":
            raise SystemExit("--floor: the minimal proxy has the chat route only")
        env["MINPROXY_CLIENT"] = "aiohttp"
        server = [sys.executable, str(args.floor)]
    else:
        server = [str(REPO / "bench" / "serve_for_bench.sh")]
    gw = subprocess.Popen(["taskset", "-c", "1", *server], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        if up is not None:
            wait_up(f"http://127.0.0.1:{args.upstream_port}/")
        wait_up(f"http://127.0.0.1:{args.gateway_port}/healthz")  # the floor answers 404: up as well
        url = f"http://127.0.0.1:{args.gateway_port}/v1/{path}"
        wrk(url, script, args.concurrency, args.warmup, unique)
        what = "the floor (minproxy.py)" if args.floor is not None else f"cache {args.cache}"
        print(f"{args.api}, {what}, {'every request new' if unique else 'one body'}, c={args.concurrency}")
        for run in range(args.runs):
            before, t0 = thread_times(gw.pid), time.monotonic()
            requests, errors, p50 = wrk(url, script, args.concurrency, args.duration, unique)
            time.sleep(0.05)
            after = thread_times(gw.pid)
            wall = time.monotonic() - t0
            per = {name: (after[name] - before.get(name, 0.0)) * 1e6 / requests for name in after}
            total = sum(per.values())
            threads = ", ".join(
                f"{name} {us:.1f}" for name, us in sorted(per.items(), key=lambda kv: -kv[1]) if us >= 0.3
            )
            print(
                f"run {run + 1}: {requests / wall:.0f} req/s, p50 {p50:.2f} ms, errors {errors}: "
                f"{total:.1f} us CPU per request ({threads})"
            )
    finally:
        stop(*([gw] if up is None else [gw, up]))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
