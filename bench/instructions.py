"""Instructions per request: the gateway's whole process under callgrind, counted over a wrk run.

CPU time per request (bench/cpu.py) moves by 5-10% from run to run on a shared machine, more than
most single changes to the request path are worth. The number of instructions a process executes
per request hardly moves (within about 1% between runs), so two builds can be told apart by a change of
1-2%. It is not time (a cache miss costs more than an instruction, and the kernel's work is not
counted), so a change found this way is confirmed with bench/cpu.py and the reference bench.

The gateway (bench/serve_for_bench.sh: defaults, or the cache off) runs under valgrind's callgrind
with instrumentation off; after a warm-up it is switched on for a timed wrk run (every thread of
the process counts: the event loop and the writers), then off, and the counts are dumped.

    .venv/bin/python bench/instructions.py                         # defaults, every request new, c=16
    .venv/bin/python bench/instructions.py --cache off --same      # cache off, one repeated body
    .venv/bin/python bench/instructions.py --floor PATH/minproxy.py  # the reference bench's floor
    .venv/bin/python bench/instructions.py --keep                  # keep the profile: callgrind_annotate FILE
    .venv/bin/python bench/instructions.py --threads               # and each thread's share

Needs Linux, valgrind and wrk. Under callgrind the gateway serves about 100 requests a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpu import BODY, REPO, WRK_SCRIPT, serve_env, wait_up, wrk
from overhead import stop, upstream_command


def totals(profile: Path) -> int:
    """The instructions a callgrind dump counted (its `totals:` line)."""
    for line in profile.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"{profile} has no totals line")


def dump_number(path: Path) -> str:
    """The dump a profile file belongs to: callgrind.out.<dump>, or with --threads one file per
    thread, callgrind.out.<dump>-<thread>."""
    return path.name.removeprefix("callgrind.out.").partition("-")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", choices=("on", "off"), default="on")
    ap.add_argument("--same", action="store_true", help="one repeated body (default: every request new)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="the counted wrk run")
    ap.add_argument("--floor", type=Path, help="the reference bench's minproxy.py, counted instead of the gateway")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind profile and print its path")
    ap.add_argument(
        "--threads",
        action="store_true",
        help="also count each thread apart (valgrind's --separate-threads): the event loop is thread 1",
    )
    ap.add_argument("--upstream-port", type=int, default=18381)
    ap.add_argument("--gateway-port", type=int, default=18382)
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed and not installed")
    work = Path(tempfile.mkdtemp(prefix="llmproxy-instructions-"))
    script = work / "load.lua"
    script.write_text(WRK_SCRIPT)
    profile = work / "callgrind.out"
    python = work / "python-under-callgrind"
    python.write_text(
        "#!/bin/sh\n"
        f"exec valgrind --tool=callgrind --instr-atstart=no {'--separate-threads=yes ' if args.threads else ''}"
        f'--callgrind-out-file={profile} {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    up = subprocess.Popen(["taskset", "-c", "0", *upstream_command(args.upstream_port)])
    env = serve_env(args.gateway_port, work, f"http://127.0.0.1:{args.upstream_port}/v1", str(python), args.cache)
    os.environ["CPU_BODY"] = BODY.decode()
    unique = not args.same
    if args.floor is not None:
        env["MINPROXY_CLIENT"] = "aiohttp"
        server = [str(python), str(args.floor)]
    else:
        server = [str(REPO / "bench" / "serve_for_bench.sh")]
    gw = subprocess.Popen(["taskset", "-c", "1", *server], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{args.upstream_port}/")
        wait_up(f"http://127.0.0.1:{args.gateway_port}/healthz", timeout=180)  # slow to start under valgrind
        url = f"http://127.0.0.1:{args.gateway_port}/v1/chat/completions"
        wrk(url, script, args.concurrency, 15, unique)  # warm-up: imports, caches, the first batches
        control = ["callgrind_control", "-i"]
        subprocess.run([*control, "on", str(gw.pid)], check=True, capture_output=True)
        requests, errors, _ = wrk(url, script, args.concurrency, args.seconds, unique)
        subprocess.run([*control, "off", str(gw.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
        time.sleep(1)
        dumps = sorted(work.glob("callgrind.out.*"))
        if not dumps:
            raise SystemExit("callgrind wrote no profile")
        last = dump_number(dumps[-1])
        counted = {path: totals(path) for path in dumps if dump_number(path) == last}
        what = "the floor (minproxy.py)" if args.floor is not None else f"cache {args.cache}"
        print(
            f"{what}, {'every request new' if unique else 'one body'}, c={args.concurrency}: "
            f"{requests} requests, errors {errors}: {sum(counted.values()) / requests:,.0f} instructions per request"
        )
        if args.threads:
            for path, count in counted.items():
                if count:
                    print(f"  thread {int(path.name.rpartition('-')[2])}: {count / requests:,.0f}")
        if args.keep:
            print("profile: " + " ".join(map(str, counted)))
    finally:
        stop(gw, up, timeout=60)  # valgrind takes a while to write its profile and end
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
