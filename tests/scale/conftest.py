"""Fixtures of the scale tests: one throwaway PostgreSQL server per session, a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.scale.postgres_server import PostgresServer, require_binaries

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(require_binaries())
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty database of this test's own (the server is shared by the session)."""
    if not postgres_server.running:  # a test that stopped it and failed before starting it again
        postgres_server.start()
    return postgres_server.create_database(f"t{next(_names)}")
