"""Password hashing with scrypt (memory-hard, in the standard library): hash, verify, and the cost.

Stored as `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can rise later while old
hashes still verify. Hashing takes ~50 ms and 16 MiB on purpose; callers on the event loop run it
in a thread.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

LOG2_N, R, P = 14, 8, 1
_DKLEN = 32
MIN_LENGTH = 8


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
