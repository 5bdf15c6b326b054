"""Property-based tests (Hypothesis) of the edge's pure parts: the JSON reader every route uses and
the guard's header helpers. Derandomized, so CI sees the same examples every run."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproxy.errors import InvalidRequest
from llmproxy.guard import json_media, loopback_host, same_origin
from llmproxy.validation import MAX_DEPTH, parse_object

SETTINGS = settings(
    max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

KEYS = st.sampled_from(["model", "messages", "role", "content", "stream", "a", "é", 'q"uote', "back\\slash", "x:y"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)


@st.composite
def json_text(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool, int]:
    """JSON written by hand, the way odd encoders write it: random spacing (before colons too),
    ASCII letters sometimes \\u-escaped in keys, and sometimes a key twice in one object.
    Returns (text, has a repeated key, nesting depth)."""
    space = draw(st.sampled_from(["", " ", "\n", " \t"]))
    if depth >= 6 or draw(st.integers(0, 3)) == 0:
        return json.dumps(draw(SCALARS)), False, 0
    if draw(st.booleans()):
        items = [draw(json_text(depth + 1)) for _ in range(draw(st.integers(0, 3)))]
        return (
            "[" + f",{space}".join(t for t, _, _ in items) + "]",
            any(d for _, d, _ in items),
            1 + max((n for _, _, n in items), default=0),
        )
    keys = draw(st.lists(KEYS, max_size=4))
    repeated = len(set(keys)) != len(keys)
    parts, deepest = [], 0
    for key in keys:
        text, dup, n = draw(json_text(depth + 1))
        repeated |= dup
        deepest = max(deepest, n)
        written = json.dumps(key, ensure_ascii=draw(st.booleans()))
        if draw(st.integers(0, 4)) == 0 and key.isascii() and key.isalpha():
            written = '"' + "".join(f"\\u{ord(c):04x}" if draw(st.booleans()) else c for c in key) + '"'
        colon = draw(st.sampled_from([":", ": ", " :", " : ", "\n:"]))
        parts.append(f"{written}{colon}{text}")
    return "{" + f",{space}".join(parts) + "}", repeated, 1 + deepest


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bool, int]:
    text, repeated, depth = draw(json_text(1))
    if not text.startswith("{"):
        text, depth = '{"v": ' + text + "}", depth + 1
    else:
        depth = max(depth, 1)
    return text.encode(), repeated, depth


@SETTINGS
@given(bodies())
def test_parse_object_refuses_exactly_the_repeated_keys(case: tuple[bytes, bool, int]) -> None:
    raw, repeated, depth = case
    try:
        body = parse_object(raw)
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.code == "duplicate_key" and repeated, (raw, exc.message)
        return
    assert not repeated, raw
    assert body == json.loads(raw)
    orjson.dumps(body)  # what the gateway accepts it can write back (cache key, providers)


@SETTINGS
@given(st.integers(1, 400), st.sampled_from(["[", '{"k":']))
def test_parse_object_refuses_nesting_past_the_limit(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = ('{"v":' + opener * depth + ("0" if opener != "[" else "") + closer * depth + "}").encode()
    try:
        parse_object(raw)
    except InvalidRequest as exc:
        assert exc.code in ("json_too_deep", "invalid_json") and depth + 1 > MAX_DEPTH
        return
    assert depth + 1 <= MAX_DEPTH


@SETTINGS
@given(st.binary(max_size=200))
def test_parse_object_never_fails_but_with_a_400(raw: bytes) -> None:
    try:
        parse_object(raw)
    except InvalidRequest as exc:
        assert exc.status == 400


@SETTINGS
@given(st.binary(max_size=80), st.one_of(st.none(), st.binary(max_size=80)))
def test_header_helpers_take_any_bytes(value: bytes, host: Any) -> None:
    assert isinstance(json_media(value), bool)
    assert isinstance(same_origin(value, host), bool)
    assert isinstance(loopback_host(value), bool)


HOSTS = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,30}(:[0-9]{1,5})?\Z").map(str.encode)


@SETTINGS
@given(HOSTS, st.sampled_from([b"http", b"https", b"HTTP"]))
def test_same_origin_is_the_host_itself_and_nothing_else(host: bytes, scheme: bytes) -> None:
    assert same_origin(scheme + b"://" + host, host)
    assert same_origin(scheme + b"://" + host.upper(), host)
    assert not same_origin(scheme + b"://" + host + b".evil.example", host)
    assert not same_origin(scheme + b"://evil." + host, host)
    assert not same_origin(b"null", host) and not same_origin(b"ftp://" + host, host)


@SETTINGS
@given(st.sampled_from(["localhost", "127.0.0.1", "[::1]", "127.3.4.5", "LocalHost"]), st.integers(1, 65535))
def test_loopback_names_with_any_port_are_loopback(name: str, port: int) -> None:
    assert loopback_host(name.encode()) and loopback_host(f"{name}:{port}".encode())
    assert not loopback_host(f"{name}.evil.example:{port}".encode())
