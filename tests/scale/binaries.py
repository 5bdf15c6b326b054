"""The server binaries the scale tests run (PostgreSQL, Redis, nginx), and what happens without one."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def find_binary(name: str, *places: str) -> str | None:
    """`name` on PATH, else the first of `places` that is executable (Debian's sbin is not always
    on a user's PATH)."""
    return shutil.which(name) or next((p for p in places if os.access(p, os.X_OK)), None)


def server_missing(reason: str) -> NoReturn:
    """Skip the test, printing why; under CI, which installs every server (.ci/run), fail instead."""
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: these tests must run)")
    print(f"\nSKIP: {reason}")
    pytest.skip(reason)
