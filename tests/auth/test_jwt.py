"""JWTs: an external identity provider's tokens (HS256 secret, RS256/ES256 PEM key, JWKS) and the
gateway's own login tokens, and the attacks on them: alg none, algorithm confusion, expired,
not yet valid, wrong issuer or audience, tampered, unknown key id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from llmproxy.auth import Authenticator, ConfigProblem
from llmproxy.config import AuthSettings, LimitSettings, Secret, Settings
from llmproxy.context import RequestContext
from llmproxy.errors import AuthenticationFailed
from tests.auth.conftest import MASTER, Gw

ISSUER, AUDIENCE = "https://idp.example.com/", "llmproxy-tests"
HS_SECRET = "an-hs256-shared-secret-of-enough-length-0123"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(private: Any) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "iat": now, "exp": now + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def authenticator(**auth: Any) -> Authenticator:
    settings = Settings(
        master_key=Secret(MASTER),
        limits=LimitSettings(rpm=60),
        auth=AuthSettings(jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **auth),
    )
    return Authenticator(settings, b"login-key" * 4)


def principal_of(auth: Authenticator, token: str) -> Any:
    ctx = RequestContext("r", {})
    auth.authenticate(ctx, f"Bearer {token}")
    return ctx.principal


def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as err:
        principal_of(auth, token)
    return err.value.message


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token signed by hand (PyJWT refuses to make the malicious ones)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key is not None else b""
    return f"{signing_input}.{b64(sig)}"


def test_hs256_token_maps_claims_to_role_models_and_limits() -> None:
    auth = authenticator(jwt_secret=Secret(HS_SECRET))
    token = jwt.encode(claims(role="admin", models=["gpt-4o-mini"], rpm=5), HS_SECRET, algorithm="HS256")
    p = principal_of(auth, token)
    assert (p.kind, p.user, p.role, p.allowed_models, p.rpm, p.tpm) == (
        "jwt",
        f"{ISSUER}#user-42",
        "admin",
        ("gpt-4o-mini",),
        5,
        None,
    )
    plain = principal_of(auth, jwt.encode(claims(), HS_SECRET, algorithm="HS256"))
    assert plain.role == "user" and plain.rpm == 60 and plain.allowed_models is None
    roles = principal_of(auth, jwt.encode(claims(role=["reader", "admin"]), HS_SECRET, algorithm="HS256"))
    assert roles.role == "admin"


def test_rs256_and_es256_public_keys() -> None:
    rs = authenticator(jwt_public_key=pem(RSA_KEY))
    assert principal_of(rs, jwt.encode(claims(), RSA_KEY, algorithm="RS256")).user == f"{ISSUER}#user-42"
    es = authenticator(jwt_public_key=pem(EC_KEY))
    assert principal_of(es, jwt.encode(claims(), EC_KEY, algorithm="ES256")).user == f"{ISSUER}#user-42"
    other = ec.generate_private_key(ec.SECP256R1())
    assert "Signature" in refused(es, jwt.encode(claims(), other, algorithm="ES256"))


def test_jwks_file_selects_the_key_by_kid() -> None:
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    jwks = json.dumps(
        {
            "keys": [
                {**rsa_jwk, "kid": "r1", "alg": "RS256", "use": "sig"},
                {**ec_jwk, "kid": "e1", "alg": "ES256", "use": "sig"},
            ]
        }
    )
    auth = authenticator(jwt_jwks=jwks)
    assert principal_of(auth, jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "r1"})).kind == "jwt"
    assert (
        principal_of(auth, jwt.encode(claims(sub="e"), EC_KEY, algorithm="ES256", headers={"kid": "e1"})).user
        == f"{ISSUER}#e"
    )
    assert "unknown key id" in refused(auth, jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "zz"}))
    # a token naming the EC key but signed with the RSA key
    assert refused(auth, jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "e1"}))


def test_alg_none_is_rejected() -> None:
    for auth in (authenticator(jwt_secret=Secret(HS_SECRET)), authenticator(jwt_public_key=pem(RSA_KEY))):
        for alg in ("none", "None", "NONE"):
            token = forge({"alg": alg, "typ": "JWT"}, claims(role="admin"), None)
            assert "not accepted" in refused(auth, token)


def test_algorithm_confusion_public_key_as_hmac_secret_is_rejected() -> None:
    public_pem = pem(RSA_KEY)
    auth = authenticator(jwt_public_key=public_pem)
    for key in (public_pem.encode(), public_pem.strip().encode()):
        token = forge({"alg": "HS256", "typ": "JWT"}, claims(role="admin"), key)
        assert "not accepted" in refused(auth, token)
    with pytest.raises(ConfigProblem):  # an HMAC algorithm with no HMAC secret is refused at startup
        authenticator(jwt_public_key=public_pem, jwt_algorithms=("RS256", "HS256"))
    with pytest.raises(ConfigProblem):
        authenticator(jwt_secret=Secret(HS_SECRET), jwt_algorithms=("none",))


def test_expired_and_not_yet_valid_tokens_are_rejected_with_small_leeway() -> None:
    auth = authenticator(jwt_secret=Secret(HS_SECRET), jwt_leeway_s=10)
    now = int(time.time())
    assert "expired" in refused(auth, jwt.encode(claims(exp=now - 60), HS_SECRET, algorithm="HS256"))
    assert "not valid yet" in refused(auth, jwt.encode(claims(nbf=now + 60), HS_SECRET, algorithm="HS256"))
    # inside the leeway: a clock a few seconds off is tolerated
    assert principal_of(auth, jwt.encode(claims(exp=now - 3), HS_SECRET, algorithm="HS256")).kind == "jwt"
    assert principal_of(auth, jwt.encode(claims(nbf=now + 3), HS_SECRET, algorithm="HS256")).kind == "jwt"
    assert refused(auth, jwt.encode(claims(exp=None), HS_SECRET, algorithm="HS256"))  # exp is required


def test_wrong_issuer_audience_and_tampering_are_rejected() -> None:
    auth = authenticator(jwt_secret=Secret(HS_SECRET))
    assert "issuer" in refused(auth, jwt.encode(claims(iss="https://evil.example.com/"), HS_SECRET, algorithm="HS256"))
    assert "audience" in refused(auth, jwt.encode(claims(aud="someone-else"), HS_SECRET, algorithm="HS256"))
    assert refused(auth, jwt.encode(claims(aud=None), HS_SECRET, algorithm="HS256"))
    assert refused(auth, jwt.encode(claims(), "a-different-secret-of-enough-length-99", algorithm="HS256"))
    good = jwt.encode(claims(role="user"), HS_SECRET, algorithm="HS256")
    head, _, sig = good.split(".")
    tampered = f"{head}.{b64(json.dumps(claims(role='admin')).encode())}.{sig}"
    assert "Signature" in refused(auth, tampered)
    # tokens claiming the gateway's own issuer are checked with the gateway's key, not the IdP's
    assert refused(auth, jwt.encode(claims(iss="llmproxy", aud="llmproxy"), HS_SECRET, algorithm="HS256"))


def test_jwt_on_v1_with_the_openai_sdk(launch: Callable[..., Gw], settings: Callable[..., Settings]) -> None:
    from dataclasses import replace

    config = settings()
    gw = launch(
        replace(
            config, auth=replace(config.auth, jwt_secret=Secret(HS_SECRET), jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
        )
    )
    token = jwt.encode(claims(models=["gpt-4o-mini"], rpm=3), HS_SECRET, algorithm="HS256")
    reply = gw.client(token).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.headers["x-ratelimit-limit-requests"] == "3"
    with pytest.raises(openai.PermissionDeniedError):
        gw.client(token).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        gw.client(forge({"alg": "none"}, claims(), None)).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    me = gw.admin("GET", "/admin/whoami", token=token).json()
    assert (me["kind"], me["user"], me["role"]) == ("jwt", f"{ISSUER}#user-42", "user")


def test_login_issues_a_short_lived_token(launch: Callable[..., Gw], settings: Callable[..., Settings]) -> None:
    from dataclasses import replace

    config = settings()
    gw = launch(replace(config, auth=replace(config.auth, login_ttl_s=2, jwt_leeway_s=0)))
    assert (
        gw.admin(
            "POST", "/admin/users", json={"name": "ops", "password": "s3cret-passw0rd", "role": "admin"}
        ).status_code
        == 201
    )
    assert gw.admin("POST", "/admin/users", json={"name": "dev", "password": "short"}).status_code == 400
    assert gw.admin("POST", "/admin/users", json={"name": "dev", "password": "dev-password-1"}).status_code == 201
    bad = gw.admin("POST", "/admin/login", token=None, json={"username": "ops", "password": "wrong-password"})
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"
    assert (
        gw.admin("POST", "/admin/login", token=None, json={"username": "nobody", "password": "x" * 9}).status_code
        == 401
    )
    r = gw.admin("POST", "/admin/login", token=None, json={"username": "ops", "password": "s3cret-passw0rd"})
    assert r.status_code == 200 and r.json()["token_type"] == "bearer" and r.json()["expires_in"] == 2
    token = r.json()["access_token"]
    assert gw.admin("GET", "/admin/whoami", token=token).json()["user"] == "ops"
    assert gw.admin("GET", "/admin/users", token=token).status_code == 200
    assert gw.chat(token).status_code == 200  # a login token works on /v1 too
    dev = gw.admin("POST", "/admin/login", token=None, json={"username": "dev", "password": "dev-password-1"}).json()
    assert gw.admin("GET", "/admin/users", token=dev["access_token"]).status_code == 403
    # a user changes their own password: their old tokens end
    assert (
        gw.admin(
            "PATCH", "/admin/users/dev", token=dev["access_token"], json={"password": "dev-password-2"}
        ).status_code
        == 200
    )
    assert gw.admin("GET", "/admin/whoami", token=dev["access_token"]).status_code == 401
    dev = gw.admin("POST", "/admin/login", token=None, json={"username": "dev", "password": "dev-password-2"}).json()
    assert (
        gw.admin("PATCH", "/admin/users/ops", token=dev["access_token"], json={"password": "xxxxxxxxxx"}).status_code
        == 403
    )
    time.sleep(2.2)
    expired = gw.admin("GET", "/admin/whoami", token=token)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    actions = [(e["actor"], e["action"]) for e in gw.admin("GET", "/admin/audit").json()["data"]]
    assert ("login:ops", "login.failed") in actions and ("login:ops", "login") in actions


def test_disabled_user_token_stops_working(launch: Callable[..., Gw]) -> None:
    gw = launch()
    gw.admin("POST", "/admin/users", json={"name": "eve", "password": "eve-password-1"})
    token = gw.admin("POST", "/admin/login", token=None, json={"username": "eve", "password": "eve-password-1"}).json()[
        "access_token"
    ]
    assert gw.chat(token).status_code == 200
    assert gw.admin("PATCH", "/admin/users/eve", json={"disabled": True}).status_code == 200
    assert gw.chat(token).status_code == 401
    assert (
        gw.admin("POST", "/admin/login", token=None, json={"username": "eve", "password": "eve-password-1"}).status_code
        == 401
    )
