"""Auth: who is calling. Master key for now; virtual keys and JWT build on the same Principal."""
from __future__ import annotations

import hmac

from .config import Settings
from .context import Principal, RequestContext
from .errors import AuthenticationFailed

_ANONYMOUS = Principal(kind="anonymous", role="admin")


def authenticate(ctx: RequestContext, authorization: str | None, settings: Settings) -> None:
    """The auth stage. Without a master key the gateway only listens on loopback (the CLI enforces
    that), so every local caller is trusted; with one, a bearer token is required."""
    if settings.master_key is None:
        ctx.principal = _ANONYMOUS
        return
    token = bearer_token(authorization)
    if token is None:
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
    if hmac.compare_digest(token.encode(), settings.master_key.value.encode()):
        ctx.principal = Principal(kind="master", key_id="master", role="admin")
        return
    raise AuthenticationFailed(f"incorrect API key provided: {redact(token)}")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def redact(token: str) -> str:
    """What of a key may appear in a message: a short prefix and the last few characters."""
    return f"{token[:3]}…{token[-4:]}" if len(token) > 12 else "***"
