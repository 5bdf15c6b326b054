"""Password hashing with scrypt (memory-hard, in the standard library): hash, verify, the cost,
and the guard in front of verification (failed-login throttling, a cap on concurrent hashes).

Stored as `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can rise later while old
hashes still verify. Hashing takes ~50 ms and 16 MiB on purpose; callers on the event loop run it
in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time
from collections import deque
from typing import TypeVar

LOG2_N, R, P = 14, 8, 1
_DKLEN = 32
MIN_LENGTH = 8
FAILURE_WINDOW_S = 300.0
MAX_FAILURES_PER_PAIR = 5  # one user name from one client address
MAX_FAILURES_PER_ADDRESS = 20  # any names from one client address
NAME_UNDER_ATTACK = 20  # one user name from all addresses: from here, one try per address
MAX_CONCURRENT_VERIFICATIONS = 4
_K = TypeVar("_K", str, tuple[str, str])


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, log2_n, R, P)
    return f"scrypt${log2_n}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def check_strength(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    return None


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=256 * n * r * p)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class LoginGuard:
    """Failed logins over a sliding window, counted so that nobody can lock the real user out,
    and a cap on the scrypt verifications running at once (a flood must not take every thread).

    - one name from one address: 5 failures, then that address waits before trying the name again;
    - one address, any names: 20 failures, then that address waits;
    - one name from every address (a distributed guess): past 20 failures the name is under
      attack, and an address that has failed for it in the window gets no further try until that
      failure leaves the window. An address that has not failed (the real user) always gets its
      try, so a correct password is never locked out by what others sent.

    Behind a reverse proxy every client shares the proxy's address (see admin/users.py).
    An attempt counts as a failure from the moment it is admitted, so a burst of concurrent
    guesses cannot all slip in before the first one fails; a success takes its marks back and
    clears its own (name, address) failures. Memory is bounded: each counter keeps at most its
    limit of timestamps, and counters whose newest entry has left the window are swept once per
    window.
    """

    def __init__(
        self,
        *,
        per_pair: int = MAX_FAILURES_PER_PAIR,
        per_address: int = MAX_FAILURES_PER_ADDRESS,
        name_under_attack: int = NAME_UNDER_ATTACK,
        window_s: float = FAILURE_WINDOW_S,
        concurrency: int = MAX_CONCURRENT_VERIFICATIONS,
    ) -> None:
        self._limits = (per_pair, per_address, name_under_attack)
        self._window_s = window_s
        self._by_pair: dict[tuple[str, str], deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}
        self._by_name: dict[str, deque[float]] = {}
        self._next_sweep = 0.0
        self.slots = asyncio.Semaphore(concurrency)

    def admit(self, name: str, address: str, now: float | None = None) -> float:
        """Reserve one attempt and return 0, or return the seconds until this address may try
        this name again."""
        now = time.monotonic() if now is None else now
        if now >= self._next_sweep:
            self._sweep(now)
        per_pair, per_address, under_attack = self._limits
        pair = self._counter(self._by_pair, (name, address), per_pair, now)
        addresses = self._counter(self._by_address, address, per_address, now)
        names = self._counter(self._by_name, name, under_attack, now)
        wait = max(self._wait(pair, now), self._wait(addresses, now))
        if pair and len(names) == under_attack:
            wait = max(wait, pair[-1] + self._window_s - now)  # one try per window per address
        if wait > 0:
            return wait
        pair.append(now)
        addresses.append(now)
        names.append(now)
        return 0.0

    def succeeded(self, name: str, address: str) -> None:
        self._by_pair.pop((name, address), None)
        for marks in (self._by_address.get(address), self._by_name.get(name)):
            if marks:
                marks.pop()  # one reservation back: the count is what matters, not which

    def _counter(self, table: dict[_K, deque[float]], ident: _K, limit: int, now: float) -> deque[float]:
        marks = table.get(ident)
        if marks is None:
            marks = table[ident] = deque(maxlen=limit)
        edge = now - self._window_s
        while marks and marks[0] <= edge:
            marks.popleft()
        return marks

    def _wait(self, marks: deque[float], now: float) -> float:
        return marks[0] + self._window_s - now if len(marks) == marks.maxlen else 0.0

    def _sweep(self, now: float) -> None:
        edge = now - self._window_s
        _drop_idle(self._by_pair, edge)
        _drop_idle(self._by_address, edge)
        _drop_idle(self._by_name, edge)
        self._next_sweep = now + self._window_s


def _drop_idle(table: dict[_K, deque[float]], edge: float) -> None:
    """Forget the idents whose last failure is older than `edge`."""
    for ident in [k for k, marks in table.items() if not marks or marks[-1] <= edge]:
        del table[ident]
