"""The SQLite and PostgreSQL stores implement the same Protocols (store/protocols.py), checked
structurally: every method the Protocol names is on the class, is a coroutine function, and takes
the same parameters (names, kinds, which have defaults). Their behaviour, the same on both
backends, is tested in tests/scale/test_store_backends.py."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from llmproxy.store.keys_sql import KeysDB
from llmproxy.store.pg_keys import PostgresKeysStore
from llmproxy.store.pg_responses import PostgresResponsesStore
from llmproxy.store.pg_usage import PostgresUsageStore
from llmproxy.store.protocols import KeysStore, ResponsesStore, UsageStore
from llmproxy.store.responses_sql import SQLiteResponsesStore
from llmproxy.store.usage_sql import SQLiteUsageStore


def members(protocol: type) -> list[str]:
    return sorted(
        name for name, value in vars(protocol).items() if inspect.isfunction(value) and not name.startswith("_")
    )


def shape(func: Any) -> list[tuple[str, Any, bool]]:
    params = list(inspect.signature(func).parameters.values())[1:]  # without self
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in params]


def problems(protocol: type, cls: type) -> list[str]:
    found = []
    for name in members(protocol):
        method = getattr(cls, name, None)
        if method is None:
            found.append(f"{name}: missing")
        elif not inspect.iscoroutinefunction(method):
            found.append(f"{name}: not async")
        elif shape(method) != shape(getattr(protocol, name)):
            found.append(f"{name}{inspect.signature(method)} differs from {inspect.signature(getattr(protocol, name))}")
    return found


@pytest.mark.parametrize(
    ("protocol", "cls"),
    [
        (UsageStore, SQLiteUsageStore),
        (KeysStore, KeysDB),
        (UsageStore, PostgresUsageStore),
        (KeysStore, PostgresKeysStore),
        (ResponsesStore, SQLiteResponsesStore),
        (ResponsesStore, PostgresResponsesStore),
    ],
    ids=[
        "usage-sqlite",
        "keys-sqlite",
        "usage-postgresql",
        "keys-postgresql",
        "responses-sqlite",
        "responses-postgresql",
    ],
)
def test_every_backends_store_satisfies_its_protocol(protocol: type, cls: type) -> None:
    assert members(protocol), "the Protocol lists no methods"
    assert problems(protocol, cls) == []


def test_the_check_catches_a_store_that_drifts() -> None:
    class Drifted(SQLiteUsageStore):
        async def spend_by_key(self, since_ts: float, user: str) -> dict[str, float]:  # type: ignore[override]  # the drift under test
            return {}

        def delete_before(self, cutoff_ts: float, *, batch: int = 5_000) -> int:  # type: ignore[override]  # the drift under test
            return 0

    assert [p.split("(")[0].split(":")[0] for p in problems(UsageStore, Drifted)] == ["delete_before", "spend_by_key"]


def test_usage_protocol_covers_what_the_app_calls_outside_store() -> None:
    assert {"insert", "delete_before", "spend_by_key", "aggregate", "overview", "auto_routed"} <= set(
        members(UsageStore)
    )
