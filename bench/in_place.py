"""What the request path's stages cost in place: each timed inside the serving gateway, under load.

A stage timed alone, in a tight loop, runs from warm caches; in the gateway its code and data
come cold, between the other requests' stages and the writer threads, and the same call costs
two to three times as much (the request context's constructor: 0.5 us alone, 1.0 in place). This
wraps a list of the hot path's functions with clock reads, runs the gateway as the reference
bench starts it (bench/serve_for_bench.sh, defaults) under wrk, and prints each function's mean
time per call in place, the wrappers' own cost taken off. Times are inclusive: `record` holds
`usage_row`, `respond` holds `OnePassCycle.answer`.

    .venv/bin/python bench/in_place.py                    # defaults, every request new, c=16
    .venv/bin/python bench/in_place.py --cache off --same

Needs Linux and wrk; the gateway gets cpu 1, the upstream (bench/overhead.py's) and wrk cpu 0.
The wrappers slow the gateway by about a tenth: compare runs of this tool with each other only.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TIMED = [  # (module, attribute): looked up at call time by their callers, so a wrapper is seen
    ("llmproxy.endpoint", "respond"),
    ("llmproxy.endpoint", "read_body"),
    ("llmproxy.endpoint", "RequestContext"),
    ("llmproxy.response_head", "OnePassCycle.answer"),
    ("llmproxy.response_head", "OnePassCycle._head"),
    ("llmproxy.validation", "parse_object"),
    ("llmproxy.validation", "check_request"),
    ("llmproxy.cache", "ResponseCache.check"),
    ("llmproxy.cache", "request_key"),
    ("llmproxy.cache", "decide"),
    ("llmproxy.cache", "ResponseCache.store"),
    ("llmproxy.providers.openai", "request_to"),
    ("llmproxy.pipeline", "record"),
    ("llmproxy.pipeline", "usage_row"),
    ("llmproxy.pipeline", "_headers"),
    ("llmproxy.metrics", "Metrics.observe"),
    ("llmproxy.breakers", "Health.observe"),
    ("llmproxy.logs", "RequestLog.request"),
]


def serve_timed(argv: list[str]) -> None:
    """The gateway (argv as after `python`), its TIMED functions wrapped; SIGUSR1 starts the count
    over, SIGUSR2 writes it to $IN_PLACE_OUT as JSON."""
    clock = time.perf_counter
    totals: dict[str, list[float]] = {}

    def wrap(owner: Any, name: str, label: str) -> None:
        function = getattr(owner, name)
        total = totals.setdefault(label, [0.0, 0])
        if inspect.iscoroutinefunction(function):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = clock()
                result = await function(*args, **kwargs)
                total[0] += clock() - start
                total[1] += 1
                return result

            setattr(owner, name, timed_async)
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            result = function(*args, **kwargs)
            total[0] += clock() - start
            total[1] += 1
            return result

        setattr(owner, name, timed)

    for module, path in TIMED:
        owner: Any = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        wrap(owner, name, path)

    # The wrappers' own cost: one around a function that does nothing, called as the others are.
    class Probe:
        @staticmethod
        def nothing(a: Any, b: Any, c: Any) -> None:
            return None

    wrap(Probe, "nothing", "(wrapper)")
    for _ in range(200_000):
        Probe.nothing(1, 2, 3)

    def reset(*_: Any) -> None:
        for label, total in totals.items():
            if label != "(wrapper)":
                total[:] = [0.0, 0]

    def report(*_: Any) -> None:
        Path(os.environ["IN_PLACE_OUT"]).write_text(json.dumps(totals))

    signal.signal(signal.SIGUSR1, reset)
    signal.signal(signal.SIGUSR2, report)
    if argv[:1] != ["-m"]:
        raise SystemExit("expected: -m llmproxy ...")
    sys.argv = argv[1:]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


def main() -> None:
    from cpu import BODY, REPO, WRK_SCRIPT, serve_env, wait_up, wrk
    from overhead import stop, upstream_command

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", choices=("on", "off"), default="on")
    ap.add_argument("--same", action="store_true", help="one repeated body (default: every request new)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--upstream-port", type=int, default=18381)
    ap.add_argument("--gateway-port", type=int, default=18382)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmproxy-in-place-"))
    script = work / "load.lua"
    script.write_text(WRK_SCRIPT)
    python = work / "python-timed"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} --serve-timed "$@"\n')
    python.chmod(0o755)
    out = work / "times.json"
    up = subprocess.Popen(["taskset", "-c", "0", *upstream_command(args.upstream_port)])
    env = serve_env(args.gateway_port, work, f"http://127.0.0.1:{args.upstream_port}/v1", str(python), args.cache)
    env["IN_PLACE_OUT"] = str(out)
    os.environ["CPU_BODY"] = BODY.decode()
    unique = not args.same
    gw = subprocess.Popen(
        ["taskset", "-c", "1", str(REPO / "bench" / "serve_for_bench.sh")], cwd=REPO, env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_up(f"http://127.0.0.1:{args.upstream_port}/")
        wait_up(f"http://127.0.0.1:{args.gateway_port}/healthz")
        url = f"http://127.0.0.1:{args.gateway_port}/v1/chat/completions"
        wrk(url, script, args.concurrency, 3, unique)  # warm-up
        gw.send_signal(signal.SIGUSR1)
        requests, errors, _ = wrk(url, script, args.concurrency, args.seconds, unique)
        gw.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        totals = json.loads(out.read_text())
    finally:
        stop(gw, up)
    overhead_s = totals["(wrapper)"][0] / totals["(wrapper)"][1]
    print(
        f"cache {args.cache}, {'every request new' if unique else 'one body'}, c={args.concurrency}: "
        f"{requests} requests, errors {errors}; the wrapper's own {overhead_s * 1e9:.0f} ns taken off"
    )
    print(f"{'function':32} {'in place':>9} {'calls a request':>16}")
    for label, (seconds, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0] / max(kv[1][1], 1)):
        if label != "(wrapper)" and calls:
            print(f"{label:32} {(seconds / calls - overhead_s) * 1e6:7.2f} us {calls / requests:16.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-timed"]:
        serve_timed(sys.argv[2:])
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        main()
