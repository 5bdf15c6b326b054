"""Schemathesis against the gateway's own OpenAPI document (/openapi.json), on a real `llmproxy
serve` process in front of the fake OpenAI upstream: every generated request, valid or not, is
answered without a 5xx, errors in OpenAI's shape, statuses and bodies as the document says, and the
process's memory stays bounded. Examples are derandomized so CI sees the same requests each run."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator

import httpx
import psutil
import pytest
import schemathesis
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fakes.openai_server import API_KEY, FakeState
from tests.fakes.serve import free_port
from tests.integration.test_serve import REPO, spawn, wait_ready

MASTER = "sk-master-fuzz-0123456789abcdef"
EXAMPLES = 12  # per operation and generation mode: ~35 operations x 2 modes
MEMORY_GROWTH_MB = 120
# POST /admin/registry/refresh fetches the providers' pricing pages: no internet in tests.
SKIPPED = {("POST", "/admin/registry/refresh")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def gateway_process(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[object, FakeState]
) -> Iterator[tuple[str, psutil.Process]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    registry = tmp / "registry" / "models.json"  # rollback writes here, never into the repo
    registry.parent.mkdir()
    shutil.copy(REPO / "registry" / "models.json", registry)
    (tmp / "llmproxy.toml").write_text(f'[registry]\npath = "{registry}"\nauto_update = false\n')
    port = free_port()
    server, _ = fake_openai
    proc = spawn(
        ["serve", "--port", str(port), "--data-dir", str(tmp / "data")],
        {
            "OPENAI_API_KEY": API_KEY,
            "LLMPROXY_OPENAI_BASE_URL": server.url + "/v1",  # type: ignore[attr-defined]  # the fixture yields an untyped pair
            "LLMPROXY_MASTER_KEY": MASTER,
            "LLMPROXY_LOG_LEVEL": "warning",
        },
        tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_document_is_served_and_names_every_route(gateway_process: tuple[str, psutil.Process]) -> None:
    url, _ = gateway_process
    doc = httpx.get(url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/v1/chat/completions" in doc["paths"]
    assert {"/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/messages", "/v1/messages/count_tokens"} <= set(
        doc["paths"]
    )
    assert {p for p in doc["paths"] if p.startswith("/admin")} >= {"/admin/keys", "/admin/login", "/admin/usage"}


def test_every_generated_request_gets_an_answer_in_shape(gateway_process: tuple[str, psutil.Process]) -> None:
    url, process = gateway_process
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    headers = {"authorization": f"Bearer {MASTER}"}
    before = process.memory_info().rss
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if (op.method.upper(), op.path) not in SKIPPED]
    assert len(operations) >= 30
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                # the master key always: the fuzz is after the handlers, not the 401 (tests/auth has those)
                case.headers = {**(case.headers or {}), **headers}
                response = case.call(base_url=url, timeout=15)
                statuses[response.status_code] += 1
                if response.status_code >= 400:
                    answer = response.json()
                    error = answer.get("error")
                    if case.operation.path.startswith("/v1/messages"):  # Anthropic's shape, for Anthropic's clients
                        assert answer.get("type") == "error" and isinstance(error, dict), response.text[:300]
                        assert set(error) == {"type", "message"}, response.text[:300]
                    else:  # OpenAI's shape, whatever went wrong
                        assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, (
                            response.text[:300]
                        )
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to make invalid: no parameters, no body
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(exc)[:800]}")
    grown = (process.memory_info().rss - before) / 2**20
    print(
        f"\nfuzzed {len(operations)} operations x 2 modes, {sum(statuses.values())} requests, statuses "
        f"{dict(sorted(statuses.items()))}; gateway RSS grew {grown:.1f} MiB"
    )
    assert not failures, "\n\n".join(failures)
    assert grown < MEMORY_GROWTH_MB
    assert httpx.get(url + "/readyz").status_code == 200
