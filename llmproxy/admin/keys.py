"""Admin: virtual API keys. Create (the value is shown once), list (prefix only), read, update,
revoke, rotate (the old value keeps working for a grace period).

An admin manages every key. Any other caller manages the keys it owns (`owner` is its user name),
and may set only their name, expiry and metadata: limits, budgets, models and roles are an admin's.
The CLI (`llmproxy keys ...`) shares the validation and the operations below.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import ROLES, new_key
from ..context import Principal
from ..errors import InvalidRequest, NotFound, PermissionDenied
from ..store.keys_sql import KeyRecord, KeysDB
from .common import actor, caller, endpoint, gateway, json_body, json_response

PERIODS = ("day", "month", "total")
USER_FIELDS = frozenset(("name", "expires_at", "expires_in_s", "metadata"))
_FIELDS = frozenset(("name", "owner", "role", "models", "rpm", "tpm", "budget_usd", "budget_period",
                     "expires_at", "expires_in_s", "metadata"))
_MAX_METADATA = 4096


def key_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Checked key fields from a JSON body (or the CLI's flags); InvalidRequest names the bad one."""
    unknown = set(body) - _FIELDS
    if unknown:
        raise InvalidRequest(f"unknown field '{sorted(unknown)[0]}'", param=sorted(unknown)[0])
    out: dict[str, Any] = {}
    if creating and not body.get("name"):
        raise InvalidRequest("a key needs a name", param="name")
    for name, value in body.items():
        if name == "name":
            _check(isinstance(value, str) and 0 < len(value) <= 200, name, "a string of 1 to 200 characters")
        elif name == "owner":
            _check(value is None or (isinstance(value, str) and 0 < len(value) <= 200), name, "a user name or null")
        elif name == "role":
            _check(value in ROLES, name, f"one of {', '.join(ROLES)}")
        elif name == "models":
            _check(value is None or (isinstance(value, list) and all(isinstance(m, str) and m for m in value)),
                   name, "a list of model names (a trailing * matches a prefix) or null for every model")
            value = tuple(value) if value is not None else None
        elif name in ("rpm", "tpm"):
            _check(value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0),
                   name, "a positive integer or null (the [limits] default)")
        elif name == "budget_usd":
            _check(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0),
                   name, "a number of USD or null")
            value = float(value) if value is not None else None
        elif name == "budget_period":
            _check(value in PERIODS, name, f"one of {', '.join(PERIODS)}")
        elif name == "expires_at":
            _check(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)), name,
                   "unix seconds or null")
        elif name == "expires_in_s":
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0, name,
                   "a positive number of seconds")
            name, value = "expires_at", time.time() + value
        elif name == "metadata":
            _check(isinstance(value, dict) and len(str(value)) <= _MAX_METADATA, name,
                   f"a JSON object of at most {_MAX_METADATA} characters")
        out[name] = value
    return out


async def create_key(db: KeysDB, who: str, fields: dict[str, Any]) -> tuple[str, str]:
    """Store a new key; returns its id and its value (never stored, shown this once)."""
    value, digest, prefix = new_key()
    key_id = "key_" + secrets.token_hex(8)
    await db.insert_key(who, key_id, digest, prefix, fields)
    return key_id, value


async def rotate_key(db: KeysDB, who: str, key_id: str, grace_s: float) -> str:
    value, digest, prefix = new_key()
    await db.rotate_key(who, key_id, digest, prefix, grace_s)
    return value


def _check(ok: bool, name: str, what: str) -> None:
    if not ok:
        raise InvalidRequest(f"{name} must be {what}", param=name)


def _may_manage(principal: Principal, record: KeyRecord) -> bool:
    if principal.role == "admin":
        return True
    if principal.kind == "key":
        return record.id == principal.key_id or (principal.user is not None and record.owner == principal.user)
    return principal.user is not None and record.owner == principal.user


async def _owned(request: Request, principal: Principal) -> KeyRecord:
    key_id = request.path_params["key_id"]
    record = await gateway(request).access.db.key(key_id)
    if record is None or not _may_manage(principal, record):
        raise NotFound(f"no key '{key_id}'")   # the same answer whether it exists or is someone else's
    return record


def _user_limits(principal: Principal, fields: dict[str, Any], body: dict[str, Any]) -> None:
    if principal.role != "admin":
        forbidden = sorted(set(body) - USER_FIELDS)
        if forbidden:
            raise PermissionDenied(f"only an admin may set '{forbidden[0]}' on a key")


@endpoint
async def list_keys(request: Request) -> Response:
    principal = await caller(request, role="user")
    records = await gateway(request).access.db.keys()
    owner = request.query_params.get("owner")
    items = [r.public() for r in records if _may_manage(principal, r) and (owner is None or r.owner == owner)]
    return json_response({"object": "list", "data": items})


@endpoint
async def create(request: Request) -> Response:
    principal = await caller(request, role="user")
    body = await json_body(request)
    fields = key_fields(body, creating=True)
    _user_limits(principal, fields, body)
    if principal.role != "admin":
        if principal.user is None:
            raise PermissionDenied("this key has no owner, so it cannot create keys; ask an admin")
        fields["owner"] = principal.user
    gw = gateway(request)
    key_id, value = await create_key(gw.access.db, actor(principal), fields)
    await gw.access.reload()
    record = await gw.access.db.key(key_id)
    assert record is not None
    return json_response({**record.public(), "key": value}, 201)


@endpoint
async def read(request: Request) -> Response:
    principal = await caller(request, role="user")
    return json_response((await _owned(request, principal)).public())


@endpoint
async def update(request: Request) -> Response:
    principal = await caller(request, role="user")
    record = await _owned(request, principal)
    body = await json_body(request)
    fields = key_fields(body, creating=False)
    _user_limits(principal, fields, body)
    gw = gateway(request)
    try:
        await gw.access.db.update_key(actor(principal), record.id, fields)
    except LookupError:
        raise NotFound(f"no key '{record.id}'") from None
    await gw.access.reload()
    updated = await gw.access.db.key(record.id)
    assert updated is not None
    return json_response(updated.public())


@endpoint
async def revoke(request: Request) -> Response:
    principal = await caller(request, role="user")
    record = await _owned(request, principal)
    gw = gateway(request)
    try:
        await gw.access.db.revoke_key(actor(principal), record.id)
    except LookupError:
        raise InvalidRequest(f"the key '{record.id}' is already revoked", code="already_revoked") from None
    await gw.access.reload()
    updated = await gw.access.db.key(record.id)
    assert updated is not None
    return json_response(updated.public())


@endpoint
async def rotate(request: Request) -> Response:
    principal = await caller(request, role="user")
    record = await _owned(request, principal)
    body = await json_body(request)
    gw = gateway(request)
    grace = body.get("grace_s", gw.settings.auth.rotation_grace_s)
    _check(isinstance(grace, (int, float)) and not isinstance(grace, bool) and 0 <= grace <= 30 * 86400,
           "grace_s", "a number of seconds between 0 and 30 days")
    try:
        value = await rotate_key(gw.access.db, actor(principal), record.id, float(grace))
    except LookupError:
        raise InvalidRequest(f"the key '{record.id}' is revoked; create a new one", code="key_revoked") from None
    await gw.access.reload()
    updated = await gw.access.db.key(record.id)
    assert updated is not None
    return json_response({**updated.public(), "key": value, "grace_s": grace})


ROUTES = [
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys", create, methods=["POST"]),
    Route("/admin/keys/{key_id}", read, methods=["GET"]),
    Route("/admin/keys/{key_id}", update, methods=["PATCH"]),
    Route("/admin/keys/{key_id}", revoke, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/rotate", rotate, methods=["POST"]),
]
