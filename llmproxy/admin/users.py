"""Admin: users (admins and users who log in with a password) and POST /admin/login, which trades
a name and password for a short-lived access token (a JWT signed by this gateway).

An admin manages every user; a user may change their own password. Logins, good and bad, are
written to the audit log (the name, never the password).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import ROLES
from ..errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from ..passwords import check_strength, hash_password
from ..store.records import UserRecord
from .common import actor, caller, gateway, json_body, json_response

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 100 or not set(name) <= _NAME_CHARS:
        raise InvalidRequest("a user name is 1 to 100 letters, digits or . _ @ -", param="name")
    return name


def check_password(password: Any) -> str:
    if not isinstance(password, str):
        raise InvalidRequest("password must be a string", param="password")
    problem = check_strength(password)
    if problem:
        raise InvalidRequest(problem, param="password")
    return password


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    return str(role)


async def login(request: Request) -> Response:
    body = await json_body(request)
    name, password = body.get("username", body.get("name")), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise InvalidRequest('send {"username": ..., "password": ...}')
    access = gateway(request).access
    # The peer address, not X-Forwarded-For (anyone can write that); behind a reverse proxy every
    # client shares the proxy's address and its per-address count.
    address = request.client.host if request.client is not None else "unknown"
    user = await access.auth.login(name[:200], password, address)
    if user is None:
        await access.db.audit(f"login:{name[:100]}", "login.failed")
        raise AuthenticationFailed("wrong user name or password", code="invalid_credentials")
    await access.db.audit(f"login:{user.name}", "login")
    token, ttl = access.auth.issue_token(user)
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": ttl, "role": user.role})


async def list_users(request: Request) -> Response:
    await caller(request)
    users = await gateway(request).access.db.users()
    return json_response({"object": "list", "data": [u.public() for u in users]})


async def create(request: Request) -> Response:
    principal = await caller(request)
    body = await json_body(request)
    unknown = set(body) - {"name", "password", "role"}
    if unknown:
        raise InvalidRequest(f"unknown field '{sorted(unknown)[0]}'")
    name = check_name(body.get("name"))
    password = check_password(body.get("password"))
    role = check_role(body.get("role", "user"))
    access = gateway(request).access
    if access.auth.user(name) is not None:
        raise InvalidRequest(f"the user '{name}' already exists", code="user_exists", param="name")
    digest = await asyncio.to_thread(hash_password, password)
    await access.db.insert_user(actor(principal), name, digest, role)
    await access.reload()
    return json_response(_reloaded(access.auth.user(name), name).public(), 201)


async def update(request: Request) -> Response:
    principal = await caller(request, role="user")
    name = request.path_params["name"]
    body = await json_body(request)
    unknown = set(body) - {"password", "role", "disabled"}
    if unknown:
        raise InvalidRequest(f"unknown field '{sorted(unknown)[0]}'")
    if principal.role != "admin" and (principal.kind != "login" or principal.user != name or set(body) - {"password"}):
        raise PermissionDenied("a user may only change their own password (logged in); the rest is an admin's")
    access = gateway(request).access
    digest = None
    if "password" in body:
        digest = await asyncio.to_thread(hash_password, check_password(body["password"]))
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise InvalidRequest("disabled must be true or false", param="disabled")
    try:
        await access.db.update_user(
            actor(principal),
            name,
            password_hash=digest,
            role=check_role(body["role"]) if "role" in body else None,
            disabled=disabled,
        )
    except LookupError:
        raise NotFound(f"no user '{name}'") from None
    await access.reload()
    return json_response(_reloaded(access.auth.user(name), name).public())


def _reloaded(user: UserRecord | None, name: str) -> UserRecord:
    """The user just written, as the reload found it (gone only if another process deleted it since)."""
    if user is None:
        raise NotFound(f"no user '{name}'")
    return user


async def delete(request: Request) -> Response:
    principal = await caller(request)
    name = request.path_params["name"]
    access = gateway(request).access
    try:
        revoked = await access.db.delete_user(actor(principal), name)
    except LookupError:
        raise NotFound(f"no user '{name}'") from None
    await access.reload()
    return json_response({"name": name, "deleted": True, "keys_revoked": revoked})


ROUTES = [
    Route("/admin/login", login, methods=["POST"]),
    Route("/admin/users", list_users, methods=["GET"]),
    Route("/admin/users", create, methods=["POST"]),
    Route("/admin/users/{name}", update, methods=["PATCH"]),
    Route("/admin/users/{name}", delete, methods=["DELETE"]),
]
