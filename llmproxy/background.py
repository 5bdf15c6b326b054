"""The gateway's background threads (the SQLite writers, the log writer) yield the core to the event
loop: each lowers its own scheduling priority when it starts.

Their work comes in bursts (a disk batch every couple of seconds, a usage batch, a burst of log
lines) of up to tens of milliseconds of CPU. On a core they share with the event loop, a request
arriving during a burst waited for the scheduler to preempt the writer. At nice 10 the loop's
thread wins the core as soon as it has something to do, and a writer still gets about a tenth of
the core when both want it (they need a few percent). Measured at c=1 (wrk, every request new,
the gateway on one core, four interleaved runs each): p99 1.04-1.42 ms instead of 1.71-2.18,
p99.9 2.8-3.4 ms instead of 4.2-5.0; the median, the requests/s at c=16 and the CPU per request
unchanged (docs/performance.md, step 35).
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

BACKGROUND_NICE = 10


def lower_priority() -> None:
    """Lower the calling thread's priority (Linux keeps a nice value per thread; elsewhere, or where
    it is not allowed, nothing changes)."""
    if sys.platform != "linux":
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), BACKGROUND_NICE))
    except OSError:
        pass


def writer_thread(name: str) -> ThreadPoolExecutor:
    """A thread of its own for a writer's batches (the SQLite writers), at the background priority."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=lower_priority)
