"""Two `llmproxy serve` processes on one Redis and one database: limits, budgets, revocation, the
cache, the registry and Redis's own failure, all seen across processes. Every test runs twice: on
one SQLite file, and on one throwaway PostgreSQL (the issue's full configuration). A real
redis-server (tests/scale/redis_server.py), a real PostgreSQL (tests/scale/postgres_server.py), real
gateway processes, the fake OpenAI upstream on loopback."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.fakes import openai_server
from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import ServerThread, free_port
from tests.integration.test_serve import REPO, spawn, wait_ready
from tests.scale.postgres_server import PostgresServer
from tests.scale.redis_server import RedisServer

MASTER = "sk-master-scale-tests-0123456789abcdef"
KNOWN_PROCESSES: list[str] = []  # base URLs of the deployment's processes (make_key waits for each)


@dataclass
class Process:
    url: str
    proc: subprocess.Popen[str]


@dataclass
class Deployment:
    a: Process
    b: Process
    redis: RedisServer
    upstream: FakeState
    upstream_url: str
    tmp: Path
    postgres: PostgresServer | None  # None: both on the SQLite file of their shared data directory
    database_url: str | None

    @property
    def both(self) -> tuple[Process, Process]:
        return self.a, self.b

    def fresh_database(self) -> str | None:
        """For a deployment of a test's own: a new PostgreSQL database, or None (SQLite)."""
        return self.postgres.create_database(f"two_{uuid.uuid4().hex[:12]}") if self.postgres else None


def write_config(tmp: Path, redis_url: str | None) -> None:
    registry = tmp / "registry" / "models.json"
    if not registry.exists():
        registry.parent.mkdir(parents=True)
        shutil.copy(REPO / "registry" / "models.json", registry)
    # sync_interval_s = 30: a revocation seen by the other process within a second comes from the
    # notification, not the poll.
    text = (
        f'[registry]\npath = "{registry}"\nauto_update = false\n[auth]\nsync_interval_s = 30.0\n'
        "[usage]\nflush_interval_s = 0.1\n"
    )
    if redis_url:
        text += f'[redis]\nurl = "{redis_url}"\nheartbeat_s = 0.2\n'
    (tmp / "llmproxy.toml").write_text(text)


def start_gateway(
    tmp: Path, upstream: str, extra: list[str] | None = None, database_url: str | None = None
) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {
        "OPENAI_API_KEY": API_KEY,
        "LLMPROXY_OPENAI_BASE_URL": upstream,
        "LLMPROXY_MASTER_KEY": MASTER,
        "LLMPROXY_LOG_LEVEL": "warning",
    }
    if database_url:
        env["LLMPROXY_DATABASE_URL"] = database_url
    proc = spawn(
        ["serve", "--port", str(port), "--data-dir", str(tmp / "data"), "--log-format", "text", *(extra or [])],
        env,
        tmp,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[tuple[str, FakeState]]:
    """The fake OpenAI server, keeping idle connections longer than the gateways do: its default
    5 s could close one just as a gateway reuses it (a 502 that has nothing to do with Redis)."""
    state = FakeState()
    server = ServerThread(openai_server.create_app(state))
    server.server.config.timeout_keep_alive = 120
    with server:
        yield server.url + "/v1", state


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: tuple[str, FakeState]
) -> Iterator[Deployment]:
    """Two processes on one Redis and one database: the SQLite file of their shared data directory,
    or a database of their own on the session's throwaway PostgreSQL (skipped, saying why, without
    its binaries; failed under CI)."""
    postgres: PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_server")
        if not postgres.running:  # a test that stopped it and failed before starting it again
            postgres.start()
    tmp = tmp_path_factory.mktemp(f"scale-{request.param}")
    upstream, state = fake_upstream
    database_url = postgres.create_database(f"two_{uuid.uuid4().hex[:12]}") if postgres else None
    with RedisServer(tmp / "redis") as redis:
        write_config(tmp, redis.url)
        # The first creates the database; the second starts on it once its schema is there.
        first, url_a = start_gateway(tmp, upstream, database_url=database_url)
        try:
            wait_ready(url_a, first, timeout=30)
            second, url_b = start_gateway(tmp, upstream, database_url=database_url)
            try:
                wait_ready(url_b, second, timeout=30)
                KNOWN_PROCESSES[:] = [url_a, url_b]
                yield Deployment(
                    Process(url_a, first), Process(url_b, second), redis, state, upstream, tmp, postgres, database_url
                )
            finally:
                stop(second)
        finally:
            stop(first)


def admin(p: Process, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, p.url + path, headers={"authorization": f"Bearer {MASTER}"}, timeout=30, **kwargs)  # type: ignore[arg-type]


def make_key(p: Process, everywhere: list[str] | None = None, **fields: object) -> tuple[str, str]:
    """A new key, once every process accepts it (the others hear of it by a notification, a few ms
    later); a URL may be listed twice or more when several workers answer on it."""
    r = admin(p, "POST", "/admin/keys", json={"name": "scale", **fields})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    for other in KNOWN_PROCESSES if everywhere is None else everywhere:
        wait_for(
            lambda other=other: (
                httpx.get(other + "/v1/models", timeout=10, headers={"authorization": f"Bearer {key}"}).status_code
                == 200
            ),
            2,
            "the new key known to every process",
        )
    return r.json()["id"], key


def body_of(content: str, **fields: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **fields}


async def burst(targets: list[tuple[str, bytes]], key: str) -> list[int]:
    """Every (url, raw body) at once; the status codes."""
    limits = httpx.Limits(max_connections=len(targets), max_keepalive_connections=len(targets))
    async with httpx.AsyncClient(
        limits=limits, timeout=30, headers={"authorization": f"Bearer {key}", "content-type": "application/json"}
    ) as client:
        responses = await asyncio.gather(
            *(client.post(url + "/v1/chat/completions", content=raw) for url, raw in targets)
        )
    return [r.status_code for r in responses]


def split(d: Deployment, n: int, raw: bytes) -> list[tuple[str, bytes]]:
    return [(d.both[i % 2].url, raw) for i in range(n)]


def answered_rows_in_postgres(d: Deployment, key_id: str) -> int:
    assert d.postgres and d.database_url
    return int(
        d.postgres.sql(
            f"SELECT count(*) FROM usage WHERE key_id = '{key_id}' AND status = 200", d.database_url.rsplit("/", 1)[1]
        )
    )


def test_200_concurrent_requests_on_two_processes_against_50_per_minute_admit_exactly_50(
    deployment: Deployment,
) -> None:
    key_id, key = make_key(deployment.a, rpm=50)
    statuses = asyncio.run(burst(split(deployment, 200, orjson.dumps(body_of("hi"))), key))
    fallbacks = [metric(p.url, "llmproxy_redis_fallbacks") for p in deployment.both]
    assert statuses.count(200) == 50 and statuses.count(429) == 150, (statuses.count(200), fallbacks)
    if deployment.postgres:  # the 50 are recorded, once each, in the one shared database
        wait_for(lambda: answered_rows_in_postgres(deployment, key_id) == 50, 5, "50 usage rows in PostgreSQL")


def test_a_tpm_limit_is_exact_across_both(deployment: Deployment) -> None:
    # A body of 76-79 bytes is estimated at 19 tokens, what the fake upstream reports using: the
    # reservations never change, so exactly tpm / 19 requests fit whatever the order.
    raw = orjson.dumps(body_of("t" * 10))
    raw = orjson.dumps(body_of("t" * (10 + 76 - len(raw))))
    assert 76 <= len(raw) <= 79
    _, key = make_key(deployment.b, tpm=19 * 40)
    statuses = asyncio.run(burst(split(deployment, 120, raw), key))
    assert statuses.count(200) == 40 and statuses.count(429) == 80, statuses


def test_a_budget_is_exact_across_both(deployment: Deployment) -> None:
    a, b = deployment.both
    probe = httpx.post(
        a.url + "/v1/chat/completions",
        json=body_of(uuid.uuid4().hex),
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=30,
    )
    cost = float(probe.headers["x-llmproxy-cost-usd"])
    assert cost > 0
    _, key = make_key(a, budget_usd=cost * 10.5)
    statuses = []
    for i in range(16):  # alternating processes: each sees the other's spend before it answers
        p = (a, b)[i % 2]
        r = httpx.post(
            p.url + "/v1/chat/completions",
            json=body_of(uuid.uuid4().hex),
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        statuses.append(r.status_code)
        if r.status_code != 200:
            assert r.json()["error"]["code"] == "insufficient_quota"
    assert statuses == [200] * 11 + [429] * 5, statuses


def test_a_key_revoked_through_one_is_refused_by_the_other_within_a_second(deployment: Deployment) -> None:
    a, b = deployment.both
    key_id, key = make_key(a)
    for p in (a, b):
        assert (
            httpx.post(
                p.url + "/v1/chat/completions",
                json=body_of("x"),
                timeout=30,
                headers={"authorization": f"Bearer {key}"},
            ).status_code
            == 200
        )
    assert admin(a, "DELETE", f"/admin/keys/{key_id}").status_code in (200, 204)
    revoked_at = time.monotonic()
    while True:
        status = httpx.post(
            b.url + "/v1/chat/completions", json=body_of("x"), timeout=30, headers={"authorization": f"Bearer {key}"}
        ).status_code
        if status == 401:
            break
        assert time.monotonic() - revoked_at < 1.0, "the other process still accepts the revoked key"
        time.sleep(0.02)
    print(f"\nrevoked key refused by the other process after {1000 * (time.monotonic() - revoked_at):.0f} ms")


def test_an_answer_cached_through_one_is_a_hit_through_the_other(deployment: Deployment) -> None:
    a, b = deployment.both
    body = body_of(f"cache me {uuid.uuid4().hex}", temperature=0)
    headers = {"authorization": f"Bearer {MASTER}"}
    before = len(deployment.upstream.requests)
    first = httpx.post(a.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert first.status_code == 200 and first.headers["x-llmproxy-cache"] == "miss"
    deadline = time.monotonic() + 2.0
    while True:  # the answer is stored once it has gone out: a moment later
        second = httpx.post(b.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        if second.headers["x-llmproxy-cache"] == "hit" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert second.headers["x-llmproxy-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    misses = len(deployment.upstream.requests) - before
    assert misses <= 2  # the first, and at most one before the write landed
    third = httpx.post(b.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert third.headers["x-llmproxy-cache"] == "hit"  # now from B's own memory tier
    # Redis keeps the answers across processes and restarts: no second copy on each one's disk.
    stats = admin(a, "GET", "/admin/cache").json()
    assert stats["shared"] is not None and stats["disk"] is None


def metric(url: str, name: str) -> float:
    found = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", httpx.get(url + "/metrics", timeout=10).text, re.M)
    assert found, name
    return float(found.group(1))


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def redis_state(p: Process) -> dict[str, object]:
    return httpx.get(p.url + "/readyz", timeout=10).json().get("redis") or {}


def test_redis_stopped_and_restarted_under_load_no_5xx_and_limits_exact_again(deployment: Deployment) -> None:
    a, b = deployment.both
    _, outage_key = make_key(a, rpm=10)
    for p in (a, b):
        wait_for(lambda p=p: redis_state(p).get("live_processes") == 2, 5, "both processes seen alive")
    statuses: list[int] = []
    failures: list[str] = []
    stop_load = threading.Event()

    def load(p: Process) -> None:
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {MASTER}"}) as client:
            while not stop_load.is_set():
                try:
                    r = client.post(p.url + "/v1/chat/completions", json=body_of(uuid.uuid4().hex))
                except httpx.TransportError as exc:
                    failures.append(repr(exc))
                    statuses.append(-1)
                    continue
                statuses.append(r.status_code)
                if r.status_code != 200:
                    failures.append(r.text)

    threads = [threading.Thread(target=load, args=(p,)) for p in (a, b, a, b)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        deployment.redis.stop()
        for p in (a, b):
            wait_for(lambda p=p: redis_state(p).get("up") is False, 5, "the outage seen")
        ready = httpx.get(a.url + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["degraded"] == ["redis"]
        assert metric(a.url, "llmproxy_redis_up") == 0.0
        # Down: each process admits its share of the key's limit (10 / 2 live processes).
        outage = asyncio.run(burst(split(deployment, 40, orjson.dumps(body_of("o"))), outage_key))
        assert outage.count(200) == 10, outage
        time.sleep(0.5)
        deployment.redis.start()
        for p in (a, b):
            wait_for(lambda p=p: redis_state(p).get("up") is True, 5, "Redis seen back")
        time.sleep(0.3)
    finally:
        stop_load.set()
        for t in threads:
            t.join(timeout=30)
    assert statuses and all(s == 200 for s in statuses), failures[:5]
    print(f"\n{len(statuses)} requests under load through the outage, all 200")
    assert metric(a.url, "llmproxy_redis_up") == 1.0
    _, key = make_key(b, rpm=20)
    after = asyncio.run(burst(split(deployment, 80, orjson.dumps(body_of("after"))), key))
    assert after.count(200) == 20 and after.count(429) == 60, after


def test_serve_workers_refuses_more_than_one_without_redis(tmp_path: Path) -> None:
    write_config(tmp_path, None)
    proc, _ = start_gateway(tmp_path, "http://127.0.0.1:9/v1", ["--workers", "2"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "LLMPROXY_REDIS_URL" in err and "multiplying every limit by 2" in err


def test_serve_workers_two_processes_share_one_port_and_one_limit(deployment: Deployment, tmp_path: Path) -> None:
    write_config(tmp_path, deployment.redis.url.replace("/0", "/1"))  # a deployment of its own
    proc, url = start_gateway(tmp_path, deployment.upstream_url, ["--workers", "2"], deployment.fresh_database())
    try:
        wait_ready(url, proc, timeout=30)
        wait_for(lambda: redis_state(Process(url, proc)).get("live_processes") == 2, 10, "two workers alive")
        _, key = make_key(Process(url, proc), [url] * 8, rpm=30)
        statuses = asyncio.run(burst([(url, orjson.dumps(body_of("w")))] * 90, key))
        assert statuses.count(200) == 30 and statuses.count(429) == 60, statuses
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_a_registry_version_published_by_one_is_served_by_both(deployment: Deployment) -> None:
    a, b = deployment.both
    before = httpx.get(b.url + "/readyz", timeout=10).json()["registry_version"]
    r = admin(a, "POST", "/admin/registry/rollback", json={"version": before})
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert version > before
    # The file watch looks every 15 s; the notification makes it at once.
    published = time.monotonic()
    wait_for(
        lambda: httpx.get(b.url + "/readyz", timeout=10).json()["registry_version"] == version,
        3,
        "the other process loads the new version",
    )
    print(
        f"\nregistry version {version} served by the other process after {1000 * (time.monotonic() - published):.0f} ms"
    )
