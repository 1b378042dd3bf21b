"""Key rings, algorithm families, claims and revocation, without a network."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from msgspec.structs import replace

from scoreboard.auth.claims import claim_at, display_name, scopes
from scoreboard.auth.keyring import (
    KeyRing,
    KeySetError,
    key_from_jwk,
    max_age,
    ring_from_jwks,
    ring_from_pems,
)
from scoreboard.auth.tokens import Authenticator, AuthError
from scoreboard.settings.model import AuthSettings, PublicKey, SettingsError, load_settings
from tests.integration.idp import EVERY_ALG, RSA_ALGS, SigningKey, new_key

SECRET = b"unit-test-secret-0123456789abcdef-xyz"
KEYS = {kind: new_key(kind, kind) for kind in ("RSA", "ES256", "ES384", "ES512", "EdDSA")}


def key_for(alg: str) -> SigningKey:
    return KEYS["RSA" if alg in RSA_ALGS else alg]


def pem(key: SigningKey) -> str:
    public = key.private.public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def settings(**kw: Any) -> AuthSettings:
    return replace(load_settings(environ={}).auth, **kw)


def token(alg: str, kid: str | None = None, **claims: Any) -> str:
    body = {"sub": "alice", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, key_for(alg).private, algorithm=alg,
                      headers=None if kid is None else {"kid": kid})


class FakeSource:
    """The narrow interface verification needs from a provider."""

    def __init__(self, ring: KeyRing, issuer: str | None = None) -> None:
        self.ring = ring
        self.issuer = issuer
        self.asked: list[str] = []

    def missing(self, kid: str) -> None:
        self.asked.append(kid)


@pytest.mark.parametrize("alg", EVERY_ALG)
def test_every_algorithm_from_a_pem(alg: str) -> None:
    a = Authenticator(settings(public_keys=(PublicKey(alg, pem(key_for(alg))),)), SECRET)
    assert a.verify(token(alg)).user_id == "alice"


@pytest.mark.parametrize("alg", EVERY_ALG)
def test_every_algorithm_from_a_jwks(alg: str) -> None:
    ring, skipped = ring_from_jwks({"keys": [k.jwk() for k in KEYS.values()]})
    assert (len(ring), skipped) == (5, 0)
    a = Authenticator(settings(), SECRET, source=FakeSource(ring))
    assert a.verify(token(alg, kid=key_for(alg).kid)).user_id == "alice"


def test_keys_are_tied_to_their_family() -> None:
    rsa = key_from_jwk(KEYS["RSA"].jwk())
    ec = key_from_jwk(KEYS["ES384"].jwk())
    ed = key_from_jwk(KEYS["EdDSA"].jwk())
    assert rsa is not None and rsa.algs == frozenset(RSA_ALGS)
    assert ec is not None and ec.algs == {"ES384"}
    assert ed is not None and ed.algs == {"EdDSA"}
    pinned = key_from_jwk({**KEYS["RSA"].jwk(), "alg": "PS256"})
    assert pinned is not None and pinned.algs == {"PS256"}
    assert key_from_jwk({**KEYS["RSA"].jwk(), "alg": "HS256"}) is None
    assert key_from_jwk({"kty": "oct", "k": "c2VjcmV0", "kid": "s"}) is None
    assert key_from_jwk({**KEYS["RSA"].jwk(), "use": "enc"}) is None
    with pytest.raises(KeySetError):
        ring_from_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})
    with pytest.raises(KeySetError):
        ring_from_jwks([1, 2])
    with pytest.raises(KeySetError):  # a PEM configured for an algorithm of another family
        ring_from_pems([PublicKey("ES384", pem(KEYS["ES256"]))])


def test_classic_forgeries_never_verify() -> None:
    ring, _ = ring_from_jwks({"keys": [KEYS["RSA"].jwk()]})
    source = FakeSource(ring)
    a = Authenticator(settings(), SECRET, source=source)
    forger = jwt.api_jws.PyJWS()
    forger._algorithms["HS256"].prepare_key = lambda k: k  # type: ignore[method-assign]
    exp = int(time.time()) + 60
    hmac_with_public_key = forger.encode(
        jwt.utils.force_bytes(f'{{"sub":"eve","exp":{exp}}}'), pem(KEYS["RSA"]).encode(),
        algorithm="HS256", headers={"kid": "RSA"},
    )
    local = jwt.encode({"sub": "eve", "exp": exp}, SECRET, algorithm="HS256")
    for forged, reason in ((hmac_with_public_key, "algorithm"), (local, "algorithm"),
                           (token("ES256", kid="RSA"), "unknown_key")):
        with pytest.raises(AuthError) as info:
            a.verify(forged)
        assert info.value.reason == reason
    assert source.asked == []  # a known kid with the wrong algorithm fetches nothing
    with pytest.raises(AuthError):
        a.verify(token("RS256", kid="never-published"))
    assert source.asked == ["never-published"]


def test_local_secret_only_without_a_provider_or_when_asked() -> None:
    local = jwt.encode({"sub": "bob", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    pems = (PublicKey("EdDSA", pem(KEYS["EdDSA"])),)
    assert Authenticator(settings(), SECRET).verify(local).user_id == "bob"
    with pytest.raises(AuthError):
        Authenticator(settings(public_keys=pems), SECRET).verify(local)
    allowed = Authenticator(settings(public_keys=pems, local_tokens=True), SECRET)
    assert allowed.verify(local).user_id == "bob"


def test_discovered_issuer_is_required() -> None:
    ring, _ = ring_from_jwks({"keys": [KEYS["ES256"].jwk()]})
    a = Authenticator(settings(), SECRET, source=FakeSource(ring, "https://idp.example/"))
    assert a.verify(token("ES256", kid="ES256", iss="https://idp.example/")).user_id == "alice"
    with pytest.raises(AuthError):
        a.verify(token("ES256", kid="ES256", iss="https://other.example/"))


def test_scopes_from_every_place() -> None:
    claims = {"scope": "a b", "scp": ["c"], "realm_access": {"roles": ["admin", 3]},
              "cognito:groups": ["g1"], "https://x.example/roles": ["r"]}
    assert scopes(claims) == {"a", "b", "c"}
    assert scopes(claims, "realm_access.roles") == {"a", "b", "c", "admin"}
    assert scopes(claims, "cognito:groups") >= {"g1"}
    assert scopes(claims, "https://x.example/roles") >= {"r"}
    assert scopes({"scp": "x y"}) == {"x", "y"}
    assert claim_at({"a": {"b": 1}}, "a.c") is None and claim_at({"a": 1}, "a.b") is None
    assert display_name({"email": " a@b\x00 ", "name": "N"}, "email") == "a@b"
    assert display_name({"name": "N"}) == "N"


def test_revocation_beats_the_claims_cache() -> None:
    revoked: dict[str, float] = {}
    a = Authenticator(settings(), SECRET, revoked=revoked)
    now = time.time()
    old = a.mint("alice", now=now - 10)
    assert a.verify(old).user_id == "alice"  # cached now
    revoked["alice"] = now
    with pytest.raises(AuthError) as info:
        a.verify(old)
    assert info.value.reason == "revoked"
    no_iat = jwt.encode({"sub": "alice", "exp": int(now) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        a.verify(no_iat)
    assert a.verify(a.mint("alice", now=now + 1)).user_id == "alice"


def test_cache_control() -> None:
    assert max_age("public, max-age=600") == 600
    assert max_age("no-cache") == 0 and max_age("max-age=5, no-store") == 0
    assert max_age(None) is None and max_age("private") is None


def test_provider_and_cors_settings_are_checked() -> None:
    s = load_settings({"cors.allow_origins": ["https://App.example:8443"]}, environ={})
    assert s.cors.allow_origins == {"https://app.example:8443"}
    for bad in ("https://app.example/", "*", "app.example", "https://*.example"):
        with pytest.raises(SettingsError, match=r"cors\.allow_origins"):
            load_settings({"cors.allow_origins": [bad]}, environ={})
    with pytest.raises(SettingsError, match=r"auth\.jwks_url"):
        load_settings({"auth.jwks_url": "ftp://x"}, environ={})
    with pytest.raises(SettingsError, match=r"auth\.issuer"):
        load_settings({"auth.oidc_issuer": "https://a", "auth.issuer": "https://b"}, environ={})
