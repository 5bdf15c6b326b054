"""The gateway against the floor, side by side: both on one core at the same time, each under its own
wrk, so that whatever else the machine runs slows both alike.

bench/cpu.py measures one process at a time; on a shared machine its CPU per request moves by 10-20%
from one window to the next (the floor went from 155 to 174 us within the hour), so two of its runs
minutes apart cannot tell 2% apart. Here the reference bench's minimal proxy (its minproxy.py, path
given at run time, aiohttp as its client) and the gateway (bench/serve_for_bench.sh: defaults, or
the cache off) both run on cpu 1; two wrk processes (cpu 0, with the fake upstream) load them at
once, every request new. Each window reads both processes' CPU time from /proc and divides it by
the requests each served; the floor's CPU per request over the gateway's stands for the ratio the
reference bench's requests/s would show on a core of its own (but see c=64 below). Both pay for
sharing the core (caches, more loop turns with fewer requests each), so their absolute figures run
above cpu.py's; the ratio between them held within about 0.02 from window to window where cpu.py's
swung by 0.1. Use it to tell two builds of the gateway apart. Against the floor it agrees with
cpu.py at c=16, but at c=64 sharing the core costs the floor more than the gateway (195-246 against
172-174 us a request alone), so its ratio there reads about 0.1 higher than the reference bench's.

    .venv/bin/python bench/paired.py --floor PATH/minproxy.py               # defaults, c=16
    .venv/bin/python bench/paired.py --floor PATH/minproxy.py --cache off   # the cache off

Needs Linux, wrk and taskset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cpu import BODY, REPO, WRK_SCRIPT, thread_times, wait_up, wrk
from overhead import stop, upstream_command


def cpu_seconds(pid: int) -> float:
    return sum(thread_times(pid).values())


def _load(served: dict[str, int], name: str, url: str, script: Path, concurrency: int, seconds: float) -> None:
    served[name] = wrk(url, script, concurrency, seconds, True)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floor", type=Path, required=True, help="the reference bench's minproxy.py")
    ap.add_argument("--cache", choices=("on", "off"), default="on")
    ap.add_argument("--concurrency", type=int, default=16, help="each wrk's connections")
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=4.0, help="one window")
    ap.add_argument("--upstream-port", type=int, default=18381)
    ap.add_argument("--gateway-port", type=int, default=18382)
    ap.add_argument("--floor-port", type=int, default=18383)
    args = ap.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed and not installed")
    work = Path(tempfile.mkdtemp(prefix="llmproxy-paired-"))
    script = work / "load.lua"
    script.write_text(WRK_SCRIPT)
    os.environ["CPU_BODY"] = BODY.decode()
    base = f"http://127.0.0.1:{args.upstream_port}/v1"
    env = {**os.environ, "BENCH_WORKDIR": str(work), "BENCH_UPSTREAM_BASE": base}
    if args.cache == "off":
        env["LLMPROXY_CACHE"] = "off"
    procs = [subprocess.Popen(["taskset", "-c", "0", *upstream_command(args.upstream_port)])]
    try:
        gateway = subprocess.Popen(
            ["taskset", "-c", "1", str(REPO / "bench" / "serve_for_bench.sh")],
            cwd=REPO,
            env={**env, "BENCH_PORT": str(args.gateway_port)},
            stderr=subprocess.DEVNULL,
        )
        procs.append(gateway)
        floor = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, str(args.floor)],
            env={**env, "BENCH_PORT": str(args.floor_port), "MINPROXY_CLIENT": "aiohttp"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(floor)
        wait_up(f"http://127.0.0.1:{args.upstream_port}/")
        wait_up(f"http://127.0.0.1:{args.gateway_port}/healthz", timeout=60)
        wait_up(f"http://127.0.0.1:{args.floor_port}/")  # answers 404: up
        targets = {
            "floor": (floor.pid, f"http://127.0.0.1:{args.floor_port}/v1/chat/completions"),
            "gateway": (gateway.pid, f"http://127.0.0.1:{args.gateway_port}/v1/chat/completions"),
        }
        print(f"cache {args.cache}, every request new, c={args.concurrency} each, both on cpu 1")
        ratios: list[float] = []
        for window in range(args.windows + 1):  # the first one warms both up
            served: dict[str, int] = {}
            before = {name: cpu_seconds(pid) for name, (pid, _) in targets.items()}
            loads = [
                threading.Thread(target=_load, args=(served, name, url, script, args.concurrency, args.seconds))
                for name, (_, url) in targets.items()
            ]
            for thread in loads:
                thread.start()
            for thread in loads:
                thread.join()
            time.sleep(0.05)
            us = {name: (cpu_seconds(pid) - before[name]) * 1e6 / served[name] for name, (pid, _) in targets.items()}
            if window == 0:
                continue
            ratios.append(us["floor"] / us["gateway"])
            print(
                f"window {window}: floor {us['floor']:.1f} us a request ({served['floor']}), "
                f"gateway {us['gateway']:.1f} us ({served['gateway']}): ratio {ratios[-1]:.3f}"
            )
        print(f"ratio, median of {len(ratios)} windows: {statistics.median(ratios):.3f}")
    finally:
        stop(*reversed(procs))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
