"""Admin: virtual API keys. Create (the value is shown once), list (prefix only), read, update,
revoke, rotate (the old value keeps working for a grace period).

An admin manages every key. Any other caller manages the keys it owns (`owner` is its user name)
and never one of a higher role, and hands on no more than it holds: a key it creates inherits its
models, limits, budget and expiry (it may narrow them, never widen them), and a change to a key may
only tighten it. A key caller manages itself and those of its owner's keys that are no more
powerful than itself (else it could rotate one and take its value). Owner, role and strategy are an
admin's. The CLI (`llmproxy keys ...`) shares the validation and the operations below.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import ROLES, new_key
from ..config import LABELS, STRATEGIES, LimitSettings
from ..context import Principal, model_allowed
from ..errors import InvalidRequest, NotFound, PermissionDenied
from ..store.keys_sql import KeyRecord, TooManyKeys
from ..store.protocols import KeysStore
from ..pipeline import Gateway
from .common import actor, caller, gateway, json_body, json_response

PERIODS = ("day", "month", "total")
ROLE_RANK = {"user": 0, "admin": 1}
# What a non-admin may set, within its own scope (see _excess); owner, role and strategy are an admin's.
USER_FIELDS = frozenset(
    ("name", "expires_at", "expires_in_s", "metadata", "models", "rpm", "tpm", "budget_usd", "budget_period")
)
_FIELDS = frozenset(
    (
        "name",
        "owner",
        "role",
        "models",
        "rpm",
        "tpm",
        "budget_usd",
        "budget_period",
        "expires_at",
        "expires_in_s",
        "metadata",
        "strategy",
        "complexity",
    )
)
_MAX_METADATA = 4096
_MAX_RATE = 10**15  # requests or tokens per minute: far past any real limit, well inside a 64-bit column


@dataclass(frozen=True, slots=True)
class Scope:
    """The most a key may be given by a non-admin: its own models, limits, budget and expiry
    (None: no restriction of that kind)."""

    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str
    expires_at: float | None

    def inherited(self) -> dict[str, Any]:
        """The fields of a key a non-admin creates, before it narrows them."""
        return {
            "models": self.models,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "expires_at": self.expires_at,
        }


def caller_scope(principal: Principal, caller_key: KeyRecord | None) -> Scope:
    """A caller's own scope. Its principal already carries its limits: a key's own or the [limits]
    default, a JWT's claims, a login user's [limits] default. A login or JWT caller has no expiry
    (its token's short life is not the account's)."""
    return Scope(
        principal.allowed_models,
        principal.rpm,
        principal.tpm,
        principal.budget_usd,
        principal.budget_period,
        caller_key.expires_at if caller_key is not None else None,
    )


def record_scope(record: KeyRecord, limits: LimitSettings) -> Scope:
    """What a key holds now, with the [limits] defaults it follows resolved."""
    return Scope(
        record.models,
        record.rpm if record.rpm is not None else limits.rpm,
        record.tpm if record.tpm is not None else limits.tpm,
        record.budget_usd,
        record.budget_period,
        record.expires_at,
    )


def excess(values: dict[str, Any], scope: Scope, limits: LimitSettings) -> tuple[str, str] | None:
    """The first field of `values` that gives a key more than `scope`, and how; None when within.
    Budget fields are judged together: pass both when either changes."""
    if "models" in values and scope.models is not None:
        models = values["models"]
        outside = ["every model"] if models is None else [m for m in models if not _covered(m, scope.models)]
        if outside:
            return "models", f"may include only models within {', '.join(scope.models) or 'none'}, not {outside[0]!r}"
    for name, default in (("rpm", limits.rpm), ("tpm", limits.tpm)):
        cap = getattr(scope, name)
        if name in values and cap is not None:
            value = values[name] if values[name] is not None else default
            if value is None or value > cap:
                return name, f"may be at most {cap}"
    if scope.budget_usd is not None and ("budget_usd" in values or "budget_period" in values):
        if values.get("budget_usd") is None or values["budget_usd"] > scope.budget_usd:
            return "budget_usd", f"may be at most {scope.budget_usd:g} USD"
        if values.get("budget_period") != scope.budget_period:
            return "budget_period", f"must be {scope.budget_period!r}"
    if "expires_at" in values and scope.expires_at is not None:
        if values["expires_at"] is None or values["expires_at"] > scope.expires_at:
            return "expires_at", f"may be no later than {scope.expires_at:.0f} (unix seconds)"
    return None


def _covered(pattern: str, allowed: tuple[str, ...]) -> bool:
    """Does the allow-list `allowed` admit every model `pattern` admits?"""
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return any(a.endswith("*") and prefix.startswith(a[:-1]) for a in allowed)
    return model_allowed(pattern, allowed)


def _values(record: KeyRecord) -> dict[str, Any]:
    return {
        "models": record.models,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "budget_usd": record.budget_usd,
        "budget_period": record.budget_period,
        "expires_at": record.expires_at,
    }


def _refuse_excess(values: dict[str, Any], scope: Scope, limits: LimitSettings, whose: str) -> None:
    found = excess(values, scope, limits)
    if found is not None:
        name, how = found
        raise PermissionDenied(
            f"{name} {how} ({whose}); ask an admin for more", code="exceeds_caller_scope", param=name
        )


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
            _check(
                value is None or (isinstance(value, list) and all(isinstance(m, str) and m for m in value)),
                name,
                "a list of model names (a trailing * matches a prefix) or null for every model",
            )
            value = tuple(value) if value is not None else None
        elif name in ("rpm", "tpm"):
            _check(
                value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_RATE),
                name,
                f"a positive integer up to {_MAX_RATE:.0e} or null (the [limits] default)",
            )
        elif name == "budget_usd":
            _check(
                value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0),
                name,
                "a number of USD or null",
            )
            value = float(value) if value is not None else None
        elif name == "budget_period":
            _check(value in PERIODS, name, f"one of {', '.join(PERIODS)}")
        elif name == "expires_at":
            _check(
                value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
                name,
                "unix seconds or null",
            )
        elif name == "expires_in_s":
            _check(
                isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
                name,
                "a positive number of seconds",
            )
            name, value = "expires_at", time.time() + value
        elif name == "metadata":
            _check(
                isinstance(value, dict) and len(str(value)) <= _MAX_METADATA,
                name,
                f"a JSON object of at most {_MAX_METADATA} characters",
            )
        elif name == "strategy":
            _check(
                value is None or value in STRATEGIES,
                name,
                f'one of {", ".join(STRATEGIES)} or null (the gateway\'s default for "auto")',
            )
        elif name == "complexity":
            _check(
                value is None or value in LABELS,
                name,
                f'one of {", ".join(LABELS)} or null (the classifier decides for "auto")',
            )
        out[name] = value
    return out


async def create_key(
    db: KeysStore, who: str, fields: dict[str, Any], *, max_per_owner: int | None = None
) -> tuple[str, str]:
    """Store a new key; returns its id and its value (never stored, shown this once). Past
    `max_per_owner` live keys of its owner: InvalidRequest 409 too_many_keys."""
    value, digest, prefix = new_key()
    key_id = "key_" + secrets.token_hex(8)
    try:
        await db.insert_key(who, key_id, digest, prefix, fields, max_per_owner=max_per_owner)
    except TooManyKeys as exc:
        raise InvalidRequest(
            f"the owner '{exc.owner}' already has {exc.limit} live keys, the most allowed "
            "(auth.max_keys_per_owner); revoke one first",
            code="too_many_keys",
            param="owner",
            status=409,
        ) from None
    return key_id, value


async def rotate_key(db: KeysStore, who: str, key_id: str, grace_s: float) -> str:
    value, digest, prefix = new_key()
    await db.rotate_key(who, key_id, digest, prefix, grace_s)
    return value


def _check(ok: bool, name: str, what: str) -> None:
    if not ok:
        raise InvalidRequest(f"{name} must be {what}", param=name)


def _may_manage(principal: Principal, record: KeyRecord, scope: Scope | None, limits: LimitSettings) -> bool:
    """`scope` is the caller's own (None for an admin)."""
    if principal.role == "admin":
        return True
    if ROLE_RANK.get(record.role, len(ROLE_RANK)) > ROLE_RANK.get(principal.role, 0):
        return False
    if principal.kind == "key":
        if record.id == principal.key_id:
            return True
        return (
            principal.user is not None
            and record.owner == principal.user
            and scope is not None
            and excess(_values(record), scope, limits) is None
        )
    return principal.user is not None and record.owner == principal.user


async def _scope(request: Request, principal: Principal, records: list[KeyRecord] | None = None) -> Scope | None:
    if principal.role == "admin":
        return None
    caller_key = None
    if principal.kind == "key" and principal.key_id is not None:
        if records is None:
            caller_key = await gateway(request).access.db.key(principal.key_id)
        else:
            caller_key = next((r for r in records if r.id == principal.key_id), None)
    return caller_scope(principal, caller_key)


async def _owned(request: Request, principal: Principal, scope: Scope | None) -> KeyRecord:
    key_id = request.path_params["key_id"]
    gw = gateway(request)
    record: KeyRecord | None = await gw.access.db.key(key_id)
    if record is None or not _may_manage(principal, record, scope, gw.settings.limits):
        raise NotFound(f"no key '{key_id}'")  # the same answer whether it exists or is someone else's
    return record


def _user_fields(principal: Principal, body: dict[str, Any]) -> None:
    if principal.role != "admin":
        forbidden = sorted(set(body) - USER_FIELDS)
        if forbidden:
            raise PermissionDenied(f"only an admin may set '{forbidden[0]}' on a key", param=forbidden[0])


async def list_keys(request: Request) -> Response:
    principal = await caller(request, role="user")
    gw = gateway(request)
    records = await gw.access.db.keys()
    scope = await _scope(request, principal, records)
    owner = request.query_params.get("owner")
    items = [
        r.public()
        for r in records
        if _may_manage(principal, r, scope, gw.settings.limits) and (owner is None or r.owner == owner)
    ]
    return json_response({"object": "list", "data": items})


async def create(request: Request) -> Response:
    principal = await caller(request, role="user")
    body = await json_body(request)
    fields = key_fields(body, creating=True)
    _user_fields(principal, body)
    gw = gateway(request)
    scope = await _scope(request, principal)
    if scope is not None:
        if principal.user is None:
            raise PermissionDenied("this key has no owner, so it cannot create keys; ask an admin")
        fields = {**scope.inherited(), **fields, "owner": principal.user}
        _refuse_excess(fields, scope, gw.settings.limits, "your own")
        if principal.kind == "key":
            # Charged up the chain: what the new key spends counts against this key's budget too
            # (and its parents'), so a key over budget cannot mint a fresh one and spend again.
            fields["parent_id"] = principal.key_id
    key_id, value = await create_key(
        gw.access.db, actor(principal), fields, max_per_owner=gw.settings.auth.max_keys_per_owner
    )
    return json_response({**await _reloaded(gw, key_id), "key": value}, 201)


async def read(request: Request) -> Response:
    principal = await caller(request, role="user")
    return json_response((await _owned(request, principal, await _scope(request, principal))).public())


async def update(request: Request) -> Response:
    principal = await caller(request, role="user")
    scope = await _scope(request, principal)
    record = await _owned(request, principal, scope)
    body = await json_body(request)
    fields = key_fields(body, creating=False)
    _user_fields(principal, body)
    gw = gateway(request)
    if scope is not None:
        values = dict(fields)
        if "budget_usd" in values or "budget_period" in values:
            values.setdefault("budget_usd", record.budget_usd)
            values.setdefault("budget_period", record.budget_period)
        _refuse_excess(values, scope, gw.settings.limits, "your own")
        # Only tighten: an expiry may be brought forward, never removed or pushed back.
        _refuse_excess(values, record_scope(record, gw.settings.limits), gw.settings.limits, "the key's current")
    try:
        await gw.access.db.update_key(actor(principal), record.id, fields)
    except LookupError:
        raise NotFound(f"no key '{record.id}'") from None
    return json_response(await _reloaded(gw, record.id))


async def revoke(request: Request) -> Response:
    principal = await caller(request, role="user")
    record = await _owned(request, principal, await _scope(request, principal))
    gw = gateway(request)
    try:
        await gw.access.db.revoke_key(actor(principal), record.id)
    except LookupError:
        raise InvalidRequest(f"the key '{record.id}' is already revoked", code="already_revoked") from None
    return json_response(await _reloaded(gw, record.id))


async def rotate(request: Request) -> Response:
    principal = await caller(request, role="user")
    record = await _owned(request, principal, await _scope(request, principal))
    body = await json_body(request)
    gw = gateway(request)
    grace = body.get("grace_s", gw.settings.auth.rotation_grace_s)
    _check(
        isinstance(grace, (int, float)) and not isinstance(grace, bool) and 0 <= grace <= 30 * 86400,
        "grace_s",
        "a number of seconds between 0 and 30 days",
    )
    try:
        value = await rotate_key(gw.access.db, actor(principal), record.id, float(grace))
    except LookupError:
        raise InvalidRequest(f"the key '{record.id}' is revoked; create a new one", code="key_revoked") from None
    return json_response({**await _reloaded(gw, record.id), "key": value, "grace_s": grace})


async def _reloaded(gw: Gateway, key_id: str) -> dict[str, Any]:
    """The key as the API shows it, after the change is live in the gateway's auth."""
    await gw.access.reload()
    record: KeyRecord | None = await gw.access.db.key(key_id)
    assert record is not None
    return record.public()


ROUTES = [
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys", create, methods=["POST"]),
    Route("/admin/keys/{key_id}", read, methods=["GET"]),
    Route("/admin/keys/{key_id}", update, methods=["PATCH"]),
    Route("/admin/keys/{key_id}", revoke, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/rotate", rotate, methods=["POST"]),
]
