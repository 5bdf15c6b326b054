"""Auth: who is calling (master key, virtual key, login token or an identity provider's JWT), and
which models they may use.

The hot path never touches the database: keys live in a dict keyed by the sha256 of their value,
rebuilt whenever the identity tables change (see access.py). A request costs one sha256 and a dict
lookup; a JWT is verified once and then cached until it expires.

Identities: a local user is its name (letters, digits, `._@-`); a subject of the outside identity
provider is `<issuer>#<sub>` (`jwt#<sub>` when no issuer is configured), so a token whose `sub`
is a local user's name is never that user: not for key ownership, the cache, usage or the audit.

Keyless calls: without a master key the gateway only listens on loopback, and while no key, no user
and no JWT issuer is configured every local caller is an anonymous admin. The first key or user
closes that door: from then on every call needs a credential.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .config import AuthSettings, Settings
from .context import Principal, RequestContext, model_allowed
from .errors import AuthenticationFailed, PermissionDenied, RateLimited
from .passwords import LoginGuard, verify_password
from .registry import Registry
from .store.keys_sql import KeyRecord, UserRecord

ANONYMOUS = Principal(kind="anonymous", role="admin")
MASTER = Principal(kind="master", key_id="master", role="admin")
LOGIN_ISSUER = "llmproxy"
ROLES = ("admin", "user")
_JWT_CACHE_MAX = 10_000
# Verified when the user does not exist, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = "scrypt$14$8$1$IkrbeA2uU+Ovs1xaQwPARg==$V5M8F7NqXkquP3jSkZYI0CWXkrRUkxWFy43QclJb5UA="
KEY_PREFIX_LEN = 10


class ConfigProblem(ValueError):
    """The JWT settings cannot be used safely; raised at startup."""


@dataclass(slots=True)
class _KeyEntry:
    record: KeyRecord
    principal: Principal
    secret_expires_at: float | None  # the end of a rotated value's grace period
    refusal: str | None  # revoked or owner disabled: why it no longer works


class Authenticator:
    def __init__(self, settings: Settings, login_key: bytes) -> None:
        self._master = settings.master_key.value.encode() if settings.master_key else None
        self._limits = settings.limits
        self._auth = settings.auth
        self._login_key = login_key
        self._external = _ExternalJWT(settings.auth) if _jwt_configured(settings.auth) else None
        self.jwt_namespace = jwt_namespace(settings.auth) if self._external is not None else None
        self._by_hash: dict[str, _KeyEntry] = {}
        self._users: dict[str, UserRecord] = {}
        self._jwt_cache: dict[str, tuple[Principal, float]] = {}
        self.login_guard = LoginGuard()
        self.open = self._master is None and self._external is None

    def load(self, keys: Iterable[KeyRecord], users: Iterable[UserRecord]) -> None:
        """Swap in a new snapshot of the identity tables (built aside, assigned at once)."""
        users_by_name = {u.name: u for u in users}
        by_hash: dict[str, _KeyEntry] = {}
        for rec in keys:
            owner = users_by_name.get(rec.owner or "")
            refusal = (
                "this API key was revoked"
                if rec.revoked_at is not None
                else "the owner of this API key is disabled"
                if owner is not None and owner.disabled
                else None
            )
            principal = Principal(
                kind="key",
                key_id=rec.id,
                user=rec.owner,
                role=rec.role,
                allowed_models=rec.models,
                rpm=rec.rpm if rec.rpm is not None else self._limits.rpm,
                tpm=rec.tpm if rec.tpm is not None else self._limits.tpm,
                budget_usd=rec.budget_usd,
                budget_period=rec.budget_period,
                strategy=rec.strategy,
                complexity=rec.complexity,
            )
            for secret in rec.secrets:
                by_hash[secret.hash] = _KeyEntry(rec, principal, secret.expires_at, refusal)
        self._by_hash, self._users = by_hash, users_by_name
        self._jwt_cache = {}
        self.open = self._master is None and self._external is None and not by_hash and not users_by_name

    # --- the auth stage -------------------------------------------------------------------------

    def authenticate(self, ctx: RequestContext, authorization: str | None) -> None:
        """Set ctx.principal, or raise AuthenticationFailed (401)."""
        token = bearer_token(authorization)
        if token is None:
            if self.open:
                ctx.principal = ANONYMOUS
                return
            raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
        raw = token.encode()
        if self._master is not None and hmac.compare_digest(raw, self._master):
            ctx.principal = MASTER
            return
        entry = self._by_hash.get(hashlib.sha256(raw).hexdigest())
        if entry is not None:
            ctx.principal = self._key_principal(entry, token)
            return
        if token.startswith("eyJ") and token.count(".") == 2:
            cached = self._jwt_cache.get(token)
            if cached is not None and cached[1] > time.time():
                ctx.principal = cached[0]
                return
            try:
                ctx.principal = self._verify_jwt(token)
                return
            except AuthenticationFailed:
                if not self.open:
                    raise
        if self.open:
            ctx.principal = ANONYMOUS
            return
        raise AuthenticationFailed(f"incorrect API key provided: {redact(token)}")

    def _key_principal(self, entry: _KeyEntry, token: str) -> Principal:
        if entry.refusal is not None:
            raise AuthenticationFailed(f"{entry.refusal}: {redact(token)}")
        now = time.time()
        if entry.secret_expires_at is not None and now >= entry.secret_expires_at:
            raise AuthenticationFailed(f"this API key was rotated and its grace period is over: {redact(token)}")
        if entry.record.expires_at is not None and now >= entry.record.expires_at:
            raise AuthenticationFailed(f"this API key expired: {redact(token)}", code="expired_api_key")
        return entry.principal

    def authorize_model(self, ctx: RequestContext, registry: Registry) -> None:
        """Before the cache: may the caller ask for this model name at all? (A cached answer must
        not reach a key that may not use its model.) Auto-routing names pass; the router only
        picks allowed models for them."""
        principal = ctx.principal
        allowed = principal.allowed_models if principal is not None else None
        if allowed is None:
            return
        name = ctx.requested_model
        if name == "auto" or name.startswith("auto:") or model_allowed(name, allowed):
            return
        entry = registry.lookup(name) or registry.lookup(name.partition("/")[2])
        if entry is not None and any(model_allowed(n, allowed) for n in (entry.id, *entry.aliases)):
            return
        raise _not_allowed(name, allowed)

    def filter_candidates(self, ctx: RequestContext) -> None:
        """After routing: drop the candidates (fallbacks included) the caller may not use: models
        outside its list, and, when it has a budget, models whose price is unknown (their cost
        could not be counted against it)."""
        principal = ctx.principal
        if principal is None:
            return
        allowed = principal.allowed_models
        kept = ctx.candidates
        if allowed is not None:
            kept = [
                (p, m)
                for p, m in kept
                if any(model_allowed(n, allowed) for n in (m.id, *m.aliases, f"{p.name}/{m.provider_model}"))
                or (m.id == f"{p.name}/{m.provider_model}" and model_allowed(m.provider_model, allowed))
            ]
            if not kept:
                raise _not_allowed(ctx.requested_model, allowed)
        if principal.budget_usd is not None:
            priced = [(p, m) for p, m in kept if m.priced]
            if kept and not priced:
                raise PermissionDenied(
                    f"this key has a budget, and the price of model '{kept[0][1].id}' is unknown; "
                    "ask an admin to add it to the registry",
                    code="model_price_unknown",
                    param="model",
                )
            kept = priced
        ctx.candidates = kept

    # --- JWT ------------------------------------------------------------------------------------

    def _verify_jwt(self, token: str) -> Principal:
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise AuthenticationFailed("malformed token") from None
        if issuer == LOGIN_ISSUER:
            principal, exp = self._login_principal(token)
        elif self._external is not None:
            claims = self._external.verify(token)
            principal, exp = self._claims_principal(claims), float(claims["exp"])
        else:
            raise AuthenticationFailed("this gateway accepts no tokens from that issuer")
        if len(self._jwt_cache) >= _JWT_CACHE_MAX:
            self._jwt_cache = {}
        self._jwt_cache[token] = (principal, exp)
        return principal

    def _login_principal(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._login_key,
                algorithms=["HS256"],
                issuer=LOGIN_ISSUER,
                audience=LOGIN_ISSUER,
                leeway=self._auth.jwt_leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("the access token expired; log in again", code="token_expired") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"invalid access token: {exc}") from None
        user = self._users.get(claims["sub"])
        if user is None or user.disabled or claims.get("pwv") != _password_version(user):
            raise AuthenticationFailed("this access token is no longer valid; log in again")
        principal = Principal(kind="login", user=user.name, role=user.role, rpm=self._limits.rpm, tpm=self._limits.tpm)
        return principal, float(claims["exp"])

    def _claims_principal(self, claims: dict[str, object]) -> Principal:
        role_claim = claims.get(self._auth.jwt_role_claim)
        roles = role_claim if isinstance(role_claim, list) else [role_claim]
        models = claims.get("models")
        rpm, tpm = claims.get("rpm"), claims.get("tpm")
        return Principal(
            kind="jwt",
            user=f"{self.jwt_namespace}#{claims['sub']}",
            role="admin" if "admin" in roles else "user",
            allowed_models=tuple(str(m) for m in models) if isinstance(models, list) else None,
            rpm=rpm if isinstance(rpm, int) and not isinstance(rpm, bool) else self._limits.rpm,
            tpm=tpm if isinstance(tpm, int) and not isinstance(tpm, bool) else self._limits.tpm,
        )

    # --- logins ---------------------------------------------------------------------------------

    async def login(self, name: str, password: str, address: str) -> UserRecord | None:
        """The user when the password is right; RateLimited after too many failures from this address
        (for this name, or in all; see LoginGuard). A missing user costs the same time as a wrong
        password."""
        wait = self.login_guard.admit(name, address)
        if wait > 0:
            raise RateLimited(
                f"too many failed logins from this address; try again in {math.ceil(wait)}s",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        async with self.login_guard.slots:
            user = self._users.get(name)
            ok = await asyncio.to_thread(verify_password, password, user.password_hash if user else _DUMMY_HASH)
        if ok and user is not None and not user.disabled:
            self.login_guard.succeeded(name, address)
            return user
        return None

    def issue_token(self, user: UserRecord) -> tuple[str, int]:
        now = int(time.time())
        ttl = int(self._auth.login_ttl_s)
        claims = {
            "iss": LOGIN_ISSUER,
            "aud": LOGIN_ISSUER,
            "sub": user.name,
            "role": user.role,
            "iat": now,
            "exp": now + ttl,
            "pwv": _password_version(user),
        }
        return jwt.encode(claims, self._login_key, algorithm="HS256"), ttl

    def user(self, name: str) -> UserRecord | None:
        return self._users.get(name)


class _ExternalJWT:
    """An external identity provider's tokens: an HS256 secret, a PEM public key, or a JWKS file.

    The algorithm decides which key is used and it must be on the allow-list; a public key is never
    used as an HMAC secret (the classic confusion attack), and `none` is never on the list.
    """

    def __init__(self, auth: AuthSettings) -> None:
        self.auth = auth
        self.hmac_key = auth.jwt_secret.value if auth.jwt_secret else None
        self.public_key = None
        self.jwks: jwt.PyJWKSet | None = None
        implied: list[str] = []
        if self.hmac_key:
            implied.append("HS256")
        if auth.jwt_public_key:
            try:
                self.public_key = load_pem_public_key(auth.jwt_public_key.encode())
            except ValueError:
                raise ConfigProblem("auth.jwt_public_key_file is not a PEM public key") from None
            if isinstance(self.public_key, rsa.RSAPublicKey):
                implied.append("RS256")
            elif isinstance(self.public_key, ec.EllipticCurvePublicKey):
                implied.append("ES256")
            else:
                raise ConfigProblem("auth.jwt_public_key_file must hold an RSA or EC public key")
        if auth.jwt_jwks:
            try:
                self.jwks = jwt.PyJWKSet.from_json(auth.jwt_jwks)
            except jwt.PyJWTError as exc:
                raise ConfigProblem(f"auth.jwt_jwks_file is not a usable JWKS: {exc}") from None
            implied += [k.algorithm_name for k in self.jwks.keys if k.algorithm_name.startswith(("RS", "ES"))]
        self.algorithms = tuple(auth.jwt_algorithms) or tuple(dict.fromkeys(implied))
        if "none" in (a.lower() for a in self.algorithms):
            raise ConfigProblem("auth.jwt_algorithms may not include 'none'")
        if any(a.startswith("HS") for a in self.algorithms) and not self.hmac_key:
            raise ConfigProblem("auth.jwt_algorithms lists an HMAC algorithm but no jwt_secret is set")

    def verify(self, token: str) -> dict[str, Any]:  # jwt.decode's own type; exp may be "123" or 123
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationFailed("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthenticationFailed(f"token algorithm {alg!r} is not accepted")
        key: object
        if alg.startswith("HS"):
            key = self.hmac_key
        elif self.jwks is not None and header.get("kid") is not None:
            try:
                jwk = self.jwks[str(header["kid"])]
            except KeyError:
                raise AuthenticationFailed("token signed by an unknown key id") from None
            if jwk.algorithm_name != alg:
                raise AuthenticationFailed(f"token algorithm {alg!r} does not match its key")
            key = jwk.key
        elif self.public_key is not None:
            key = self.public_key
        else:
            raise AuthenticationFailed("token carries no key id")
        required = (
            ["exp", "sub"] + (["iss"] if self.auth.jwt_issuer else []) + (["aud"] if self.auth.jwt_audience else [])
        )
        try:
            # arg-type: a PEM key may parse as any public key type (DH, X25519...); one that does not fit the
            # token's algorithm fails below as TypeError/ValueError, which is the answer we want.
            return jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[alg],
                issuer=self.auth.jwt_issuer,
                audience=self.auth.jwt_audience,
                leeway=self.auth.jwt_leeway_s,
                options={"require": required, "verify_aud": self.auth.jwt_audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("the token expired", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed("the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed("the token's issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed("the token's audience is not this gateway") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"invalid token: {exc}") from None
        except (TypeError, ValueError):  # e.g. an RS256 header on a token for an EC key
            raise AuthenticationFailed(f"token algorithm {alg!r} does not match the key") from None


def _not_allowed(name: str, allowed: tuple[str, ...]) -> PermissionDenied:
    return PermissionDenied(
        f"this key may not use the model '{name}'; it may use: {', '.join(allowed) or 'none'}",
        code="model_not_allowed",
        param="model",
    )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def redact(token: str) -> str:
    """What of a key may appear in a message: a short prefix and the last few characters."""
    return f"{token[:3]}…{token[-4:]}" if len(token) > 12 else "***"


def hash_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A new virtual key: (value, shown once; its sha256, stored; its prefix, shown in lists)."""
    value = "sk-" + secrets.token_urlsafe(32)
    return value, hash_key(value), value[:KEY_PREFIX_LEN]


def _password_version(user: UserRecord) -> str:
    # A password change (a new salted hash) ends every token issued before it.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:12]


def jwt_namespace(auth: AuthSettings) -> str:
    """What the outside identity provider's subjects are prefixed with (before a '#', which no
    local user name contains): its configured issuer, else "jwt"."""
    return auth.jwt_issuer or "jwt"


def _jwt_configured(auth: AuthSettings) -> bool:
    return bool(auth.jwt_secret or auth.jwt_public_key or auth.jwt_jwks)
