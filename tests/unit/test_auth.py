"""Token verification: every forged, expired or malformed token is refused."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from msgspec.structs import replace

from scoreboard.auth.tokens import Authenticator, AuthError, load_or_create_secret
from scoreboard.settings.model import AuthSettings, PublicKey, load_settings

SECRET = b"unit-test-secret-0123456789abcdef-xyz"


def now() -> float:
    """Read at use: pyjwt checks exp against the real clock, whenever the test runs."""
    return time.time()


def settings(**kw: Any) -> AuthSettings:
    return replace(load_settings(environ={}).auth, **kw)


def sign(claims: dict[str, Any], key: Any = SECRET, alg: str = "HS256", **kw: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, **kw)


def good(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(now()) + 600, "name": "Alice"} | extra


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(settings(), SECRET)


def test_valid_token(auth: Authenticator) -> None:
    p = auth.verify(sign(good(scope="a b")))
    assert (p.user_id, p.display_name, p.scopes) == ("alice", "Alice", frozenset({"a", "b"}))


def test_preferred_username_and_name_cleanup(auth: Authenticator) -> None:
    p = auth.verify(sign({"sub": "u", "exp": int(now()) + 60, "preferred_username": "  Bo\x00b "}))
    assert p.display_name == "Bob"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _none_token() -> str:
    header = _b64(b'{"alg":"none","typ":"JWT"}')
    body = _b64(b'{"sub":"alice","exp":9999999999}')
    return f"{header}.{body}."


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: _none_token(), "algorithm"),
        (lambda: sign(good(), b"another-secret-of-enough-length-0000"), "signature"),
        (lambda: sign(good(exp=int(now()) - 3600)), "expired"),
        (lambda: sign({"sub": "alice"}), "claims"),
        (lambda: sign({"exp": int(now()) + 60}), "claims"),
        (lambda: "not.a.token", "malformed"),
        (lambda: "", "malformed"),
        (lambda: sign(good(pad="x" * 5000)), "too_large"),
    ],
)
def test_refused(auth: Authenticator, token: Any, reason: str) -> None:
    with pytest.raises(AuthError) as info:
        auth.verify(token())
    assert info.value.reason == reason


def test_non_string_sub_is_refused(auth: Authenticator) -> None:
    # encode with a raw payload: pyjwt refuses to *create* a non-string sub
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(
        f'{{"sub":123,"exp":{int(now()) + 60}}}'.encode()
    ).rstrip(b"=")
    import hashlib
    import hmac
    sig = base64.urlsafe_b64encode(
        hmac.new(SECRET, header + b"." + body, hashlib.sha256).digest()
    ).rstrip(b"=")
    with pytest.raises(AuthError):
        auth.verify((header + b"." + body + b"." + sig).decode())


def test_audience_and_issuer_when_configured() -> None:
    a = Authenticator(settings(issuer="https://idp", audience="scoreboard"), SECRET)
    assert a.verify(sign(good(iss="https://idp", aud="scoreboard"))).user_id == "alice"
    for claims in (good(iss="https://evil", aud="scoreboard"), good(iss="https://idp", aud="x"),
                   good()):
        with pytest.raises(AuthError):
            a.verify(sign(claims))


def test_leeway_is_small_and_explicit() -> None:
    a = Authenticator(settings(leeway_seconds=30), SECRET)
    t0 = now()
    assert a.verify(sign(good(exp=int(t0) - 10))).user_id == "alice"
    with pytest.raises(AuthError):
        a.verify(sign(good(exp=int(t0) - 120)))


def _ec_pair() -> tuple[Any, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, pem


def test_es256_public_key_and_algorithm_confusion() -> None:
    private, pem = _ec_pair()
    a = Authenticator(settings(public_keys=(PublicKey("ES256", pem),)), SECRET)
    assert a.verify(sign(good(), private, "ES256")).user_id == "alice"
    other, _ = _ec_pair()
    with pytest.raises(AuthError):
        a.verify(sign(good(), other, "ES256"))
    # HS256 "signed" with the public key text must never verify
    forged = jwt.api_jws.PyJWS()
    forged._algorithms["HS256"].prepare_key = lambda k: k  # type: ignore[method-assign]
    token = forged.encode(
        jwt.utils.force_bytes(f'{{"sub":"alice","exp":{int(now()) + 60}}}'), pem.encode(),
        algorithm="HS256",
    )
    with pytest.raises(AuthError):
        a.verify(token)


def test_disallowed_algorithm_refused() -> None:
    a = Authenticator(settings(algorithms=("HS256",)), SECRET)
    private, _ = _ec_pair()
    with pytest.raises(AuthError) as info:
        a.verify(sign(good(), private, "ES256"))
    assert info.value.reason == "algorithm"


def test_cache_returns_the_same_principal_until_expiry(auth: Authenticator) -> None:
    t0 = now()
    token = sign(good(exp=int(t0) + 100))
    assert auth.verify(token, now=t0) is auth.verify(token, now=t0 + 1)
    with pytest.raises(AuthError):
        auth.verify(token, now=t0 + 1000)


def test_mint_round_trips(auth: Authenticator) -> None:
    p = auth.verify(auth.mint("bob", name="Bob", scopes=("scoreboard:admin",)))
    assert (p.user_id, p.display_name, "scoreboard:admin" in p.scopes) == ("bob", "Bob", True)


def test_generated_secret_is_kept_private(tmp_path: Any) -> None:
    s1 = load_or_create_secret("", tmp_path)
    s2 = load_or_create_secret("", tmp_path)
    assert s1 == s2 and len(s1) >= 32
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret("configured-value", tmp_path) == b"configured-value"
