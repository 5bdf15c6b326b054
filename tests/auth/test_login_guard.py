"""POST /admin/login under attack: failures are counted per (user name, client address), per
address, and per name from everywhere (429 with retry-after once over); what others send never
locks the real user out; a success clears its own failures, memory stays bounded, and at most a
few scrypt verifications run at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from llmproxy.auth import Authenticator
from llmproxy.config import Secret, Settings
from llmproxy.errors import RateLimited
from llmproxy.passwords import LoginGuard
from tests.auth.conftest import MASTER, Gw


def login(gw: Gw, name: str, password: str) -> object:
    return gw.admin("POST", "/admin/login", token=None, json={"username": name, "password": password})


def test_five_failures_for_a_name_from_an_address_lock_that_address_out_of_it(launch: Callable[..., Gw]) -> None:
    gw = launch()
    for name in ("ops", "dev"):
        assert (
            gw.admin("POST", "/admin/users", json={"name": name, "password": f"{name}-password-1"}).status_code == 201
        )
    for _ in range(5):
        assert login(gw, "ops", "wrong-password").status_code == 401
    locked = login(gw, "ops", "ops-password-1")  # even the right password waits, from here
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limit_exceeded"
    assert 250 <= int(locked.headers["retry-after"]) <= 300
    assert login(gw, "dev", "dev-password-1").status_code == 200  # another name is not locked


def test_a_success_clears_the_names_failures(launch: Callable[..., Gw]) -> None:
    gw = launch()
    assert gw.admin("POST", "/admin/users", json={"name": "ops", "password": "ops-password-1"}).status_code == 201
    for _ in range(4):
        assert login(gw, "ops", "wrong-password").status_code == 401
    assert login(gw, "ops", "ops-password-1").status_code == 200
    for _ in range(4):
        assert login(gw, "ops", "wrong-password").status_code == 401
    assert login(gw, "ops", "ops-password-1").status_code == 200


def test_twenty_failures_from_one_address_lock_every_name_from_it(launch: Callable[..., Gw]) -> None:
    gw = launch()
    for i in range(20):
        assert login(gw, f"guess-{i}", "wrong-password").status_code == 401
    r = login(gw, "someone-else", "wrong-password")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_guard_window_slides_and_forgets_old_entries() -> None:
    guard = LoginGuard(per_pair=2, per_address=3, window_s=300)
    assert guard.admit("a", "1.1.1.1", now=0.0) == 0 and guard.admit("a", "1.1.1.1", now=10.0) == 0
    assert guard.admit("a", "1.1.1.1", now=20.0) == pytest.approx(280.0)  # until the first failure leaves
    assert guard.admit("a", "1.1.1.1", now=300.5) == 0
    for i in range(1000):  # many names from many addresses...
        guard.admit(f"n{i}", f"10.0.{i // 250}.{i % 250}", now=400.0 + i * 0.01)
    assert len(guard._by_name) + len(guard._by_address) + len(guard._by_pair) > 2000
    guard.admit("late", "9.9.9.9", now=1000.0)  # ...are swept once their window is over
    assert set(guard._by_name) == {"late"} and set(guard._by_address) == {"9.9.9.9"}
    assert set(guard._by_pair) == {("late", "9.9.9.9")}


def test_at_most_four_password_checks_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow_verify(password: str, stored: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr("llmproxy.auth.verify_password", slow_verify)
    auth = Authenticator(Settings(master_key=Secret(MASTER)), b"k" * 32)

    async def flood() -> list[object]:
        return await asyncio.gather(
            *(auth.login(f"user{i}", "pw", f"10.0.0.{i}") for i in range(16)), return_exceptions=True
        )

    results = asyncio.run(flood())
    assert results == [None] * 16 and peak == 4


def test_concurrent_guesses_cannot_overshoot_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmproxy.auth.verify_password", lambda password, stored: False)
    auth = Authenticator(Settings(master_key=Secret(MASTER)), b"k" * 32)

    async def burst() -> list[object]:
        return await asyncio.gather(
            *(auth.login("ops", "guess", "10.0.0.1") for _ in range(30)), return_exceptions=True
        )

    results = asyncio.run(burst())
    assert results.count(None) == 5
    assert sum(isinstance(r, RateLimited) for r in results) == 25


def login_from(gw: Gw, address: str, name: str, password: str) -> httpx.Response:
    """A login sent from another loopback address (127.0.0.0/8 is all ours)."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30) as client:
        return client.post(gw.url + "/admin/login", json={"username": name, "password": password})


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(launch: Callable[..., Gw]) -> None:
    gw = launch()
    assert gw.admin("POST", "/admin/users", json={"name": "ops", "password": "ops-password-1"}).status_code == 201
    for _ in range(6):
        assert login_from(gw, "127.0.0.2", "ops", "wrong-password").status_code in (401, 429)
    assert login_from(gw, "127.0.0.2", "ops", "ops-password-1").status_code == 429  # that address waits
    assert login_from(gw, "127.0.0.1", "ops", "ops-password-1").status_code == 200  # the user does not


def test_many_addresses_guessing_one_name_slow_down_but_a_fresh_address_gets_in() -> None:
    guard = LoginGuard(window_s=300)
    attackers = [f"10.0.0.{i}" for i in range(50)]
    for address in attackers:  # each address within its own per-name allowance...
        for _ in range(3):
            guard.admit("ops", address, now=1.0)
    # ...but the name is under attack from many places: an address that failed waits
    assert guard.admit("ops", attackers[0], now=2.0) > 0
    assert guard.admit("ops", "192.0.2.7", now=2.0) == 0  # a fresh address (the real user) still gets a try
    guard.succeeded("ops", "192.0.2.7")
    assert guard.admit("ops", "192.0.2.7", now=3.0) == 0  # and, having got in, is not held back after
