"""compose.yaml's load balancer, run: the nginx configuration of the "scale" profile, read from
compose.yaml as it is, in a real nginx in front of two gateway processes on one PostgreSQL and one
Redis. Only the addresses change: Docker's DNS name "gateway" becomes the two processes' loopback
ports, and port 80 a free one. What only a Docker engine runs (images, replicas, health checks) is
not exercised here. Without the nginx binary these tests skip, printing why, unless CI is set
(.ci/run installs Debian's nginx)."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from llmproxy.config import load_settings
from llmproxy.serving import uvicorn_config
from tests.fakes import openai_server
from tests.fakes.openai_server import FakeState
from tests.fakes.serve import ServerThread, free_port
from tests.integration.test_serve import REPO, wait_ready
from tests.scale.binaries import find_binary, server_missing
from tests.scale.postgres_server import PostgresServer
from tests.scale.redis_server import RedisServer
from tests.scale.test_two_processes import MASTER, start_gateway, stop, write_config


def nginx_binary() -> str:
    found = find_binary("nginx", "/usr/sbin/nginx")
    if found is None:
        server_missing("nginx is not installed (apt-get install nginx); the load balancer tests need a real one")
    return found


def site_config(gateways: list[str], port: int) -> str:
    """compose.yaml's nginx site with local addresses: each gateway `host:port` in place of the
    `gateway:8080` server line (its parameters kept), `port` in place of 80."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    site = compose["configs"]["nginx-scale"]["content"].replace("$$", "$")  # compose's escape, undone
    site, servers = re.subn(
        r"server gateway:8080([^;]*);", lambda m: " ".join(f"server {g}{m[1]};" for g in gateways), site
    )
    site, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    assert servers == 1 and listens == 1, "compose.yaml's nginx config no longer has the lines this test rewrites"
    return site


def main_config(site: str, run: Path) -> str:
    """What the nginx image wraps a conf.d site in, with every file of its own under `run`; one
    process (no workers to switch to another user, who could not read a test's temporary files)."""
    temps = "\n".join(
        f"    {name}_temp_path {run / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nmaster_process off;\npid {run / 'nginx.pid'};\nerror_log {run / 'error.log'} warn;\n"
        f"events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n{temps}\n{site}\n}}\n"
    )


@dataclass
class Balanced:
    url: str  # nginx's
    replicas: list[subprocess.Popen[str]]
    upstreams: list[FakeState]  # one fake provider per replica: which replica answered shows there


@pytest.fixture(scope="module")
def balanced(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    nginx = nginx_binary()
    if not postgres_server.running:
        postgres_server.start()
    tmp = tmp_path_factory.mktemp("lb")
    database_url = postgres_server.create_database(f"lb_{uuid.uuid4().hex[:12]}")
    states = [FakeState(), FakeState()]
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer(tmp / "redis"))
        write_config(tmp, redis.url)
        replicas, addresses = [], []
        for state in states:  # one after the other: the first creates the database's schema
            fake = ServerThread(openai_server.create_app(state))
            fake.server.config.timeout_keep_alive = 120
            stack.enter_context(fake)
            replica, url = start_gateway(tmp, fake.url + "/v1", database_url=database_url)
            stack.callback(stop, replica)
            replicas.append(replica)
            wait_ready(url, replica, timeout=30)
            addresses.append(url.removeprefix("http://"))
        run = tmp / "nginx"
        run.mkdir()
        port = free_port()
        conf = run / "nginx.conf"
        conf.write_text(main_config(site_config(addresses, port), run))
        proc = subprocess.Popen(
            [nginx, "-e", str(run / "error.log"), "-p", f"{run}/", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(proc.wait, 10)
        stack.callback(proc.terminate)
        lb = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (run / "error.log").read_text()
            try:
                httpx.get(lb + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield Balanced(lb, replicas, states)


def client(b: Balanced) -> openai.OpenAI:
    return openai.OpenAI(base_url=b.url + "/v1", api_key=MASTER, max_retries=0, timeout=30)


def test_the_balancer_closes_an_idle_connection_before_the_gateway_does(tmp_path: Path) -> None:
    # Otherwise a request may be sent on a connection the gateway is closing: a 502 that nginx
    # does not retry for a POST. (No nginx needed: both numbers are read from their sources.)
    (tmp_path / "llmproxy.toml").write_text("")
    gateway_s = uvicorn_config(object(), load_settings(tmp_path / "llmproxy.toml", {})).timeout_keep_alive
    upstream = re.search(r"upstream llmproxy \{(.*?)\}", site_config(["127.0.0.1:1"], 1), re.S)
    assert upstream is not None
    nginx_s = re.search(r"keepalive_timeout (\d+)s;", upstream[1])
    assert nginx_s is not None and int(nginx_s[1]) < gateway_s


def test_the_load_balancer_spreads_requests_over_both_replicas(balanced: Balanced) -> None:
    before = [len(s.requests) for s in balanced.upstreams]
    sdk = client(balanced)
    for n in range(20):
        answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"lb {n}"}])
        assert answer.choices[0].message.content
    served = [len(s.requests) - b for s, b in zip(balanced.upstreams, before, strict=True)]
    assert sum(served) == 20 and min(served) >= 5, served
    # compose's health check of the nginx service asks for /healthz through it
    assert httpx.get(balanced.url + "/healthz", timeout=5).status_code == 200


def test_a_stream_comes_through_the_load_balancer_as_it_is_made(balanced: Balanced) -> None:
    delay = 0.15
    for state in balanced.upstreams:
        state.chunk_delay_s = delay
    try:
        arrivals = []
        stream = client(balanced).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three four five six"}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
    finally:
        for state in balanced.upstreams:
            state.chunk_delay_s = 0.0
    # Held by the balancer (nginx compressing a buffered response, for one), every piece would
    # arrive at once at the end (checked: all seven within 1 ms).
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) * delay * 0.6, arrivals


def test_a_replica_that_stops_is_passed_over_without_a_failed_request(balanced: Balanced) -> None:
    # Last in this module: it stops the second replica for good.
    stop(balanced.replicas[1])
    before = len(balanced.upstreams[0].requests)
    sdk = client(balanced)
    for n in range(10):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"after {n}"}])
    assert len(balanced.upstreams[0].requests) - before == 10
