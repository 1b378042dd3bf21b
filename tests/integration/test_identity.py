"""An identity provider over real sockets: OpenID Connect discovery, a JWKS with RSA, EC
and Ed25519 keys, rotation, an outage, and a flood of forged kids."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from scoreboard.app import Service, StartupError
from tests.integration.conftest import Running, ServerFactory, make_settings
from tests.integration.idp import EVERY_ALG, Provider, new_key, serve_provider

WAIT = 5.0


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: key handling does not depend on the backend."""
    return f"sqlite:///{tmp_path / 'db' / 'scoreboard.db'}"


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    keys = [new_key("rsa-1", "RSA"), new_key("ec-256", "ES256"), new_key("ec-384", "ES384"),
            new_key("ec-521", "ES512"), new_key("ed-1", "EdDSA")]
    async with serve_provider(keys) as p:
        yield p


def kid_for(alg: str) -> str:
    return {"ES256": "ec-256", "ES384": "ec-384", "ES512": "ec-521", "EdDSA": "ed-1"}.get(
        alg, "rsa-1")


async def status_of(r: Running, token: str, path: str = "/api/v1/users/me/score") -> int:
    async with r.http.get(f"{r.url}{path}",
                          headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
        if resp.status == 401:
            assert body["error"]["code"] == "UNAUTHORIZED"
        return resp.status


async def start(start_server: ServerFactory, p: Provider, **kw: Any) -> Running:
    return await start_server(**{"auth.oidc_issuer": p.issuer, **kw})


async def test_every_algorithm_verifies_from_discovered_keys(
    start_server: ServerFactory, provider: Provider
) -> None:
    r = await start(start_server, provider)
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)
    for alg in EVERY_ALG:
        token = provider.token(f"user-{alg}", alg, kid_for(alg), name=alg)
        # 404: the token is accepted, the user has no score yet
        assert await status_of(r, token) == 404, alg
    status, ready = await r.get("/ready")
    assert status == 200
    assert ready["keys"]["state"] == "ok" and ready["keys"]["keys"] == 5


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_forgeries_and_local_tokens_refused_with_a_provider(
    start_server: ServerFactory, provider: Provider
) -> None:
    r = await start(start_server, provider)
    rsa_public = provider.key("rsa-1").private.public_key()
    pem = rsa_public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    # HS256 "signed" with the provider's public key as the secret
    forger = jwt.api_jws.PyJWS()
    forger._algorithms["HS256"].prepare_key = lambda k: k  # type: ignore[method-assign]
    hs_forgery = forger.encode(
        jwt.utils.force_bytes(f'{{"sub":"eve","iss":"{provider.issuer}","exp":9999999999}}'),
        pem, algorithm="HS256", headers={"kid": "rsa-1"},
    )
    none_token = (_b64(b'{"alg":"none","kid":"rsa-1"}') + "."
                  + _b64(b'{"sub":"eve","exp":9999999999}') + ".")
    impostor = new_key("rsa-1", "RSA")  # a key of the attacker's own, under a known kid
    forged_signature = jwt.encode({"sub": "eve", "iss": provider.issuer, "exp": 9999999999},
                                  impostor.private, algorithm="RS256",
                                  headers={"kid": "rsa-1"})
    wrong_family = provider.token("eve", "RS256", "rsa-1")
    wrong_family = jwt.encode(jwt.decode(wrong_family, options={"verify_signature": False}),
                              provider.key("ec-256").private, algorithm="ES256",
                              headers={"kid": "rsa-1"})  # an EC signature under an RSA kid
    wrong_issuer = jwt.encode({"sub": "eve", "iss": "https://elsewhere", "exp": 9999999999},
                              provider.key("rsa-1").private, algorithm="RS256",
                              headers={"kid": "rsa-1"})
    local = r.token("eve", scopes=(r.settings.auth.admin_scope,))  # the HS256 secret
    for token in (hs_forgery, none_token, forged_signature, wrong_family, wrong_issuer, local):
        assert await status_of(r, token) == 401
    assert await status_of(r, local, "/api/v1/admin/flags") == 401


async def test_local_tokens_on_request(start_server: ServerFactory, provider: Provider) -> None:
    r = await start(start_server, provider, **{"auth.local_tokens": True})
    assert await status_of(r, r.token("local-user")) == 404
    assert await status_of(r, provider.token("idp-user", "ES256", "ec-256")) == 404


async def test_scopes_from_a_claim_path(start_server: ServerFactory, provider: Provider) -> None:
    r = await start(start_server, provider, **{"auth.scope_claim": "realm_access.roles"})
    admin = r.settings.auth.admin_scope
    roles = provider.token("root", "RS256", "rsa-1", realm_access={"roles": [admin]})
    scp = provider.token("azure", "RS256", "rsa-1", scp=[admin])
    plain = provider.token("pleb", "RS256", "rsa-1", realm_access={"roles": ["user"]})
    assert await status_of(r, roles, "/api/v1/admin/flags") == 200
    assert await status_of(r, scp, "/api/v1/admin/flags") == 200
    assert await status_of(r, plain, "/api/v1/admin/flags") == 403


async def refetched(r: Running, before: int) -> None:
    assert r.service.keys is not None
    await asyncio.wait_for(r.service.keys.wait_fetches(before + 1), WAIT)


async def test_rotation_new_kid_appears_old_one_disappears(
    start_server: ServerFactory, provider: Provider
) -> None:
    r = await start(start_server, provider, **{"auth.jwks_refetch_interval_seconds": 0})
    keys = r.service.keys
    assert keys is not None
    old = provider.token("alice", "ES256", "ec-256")
    provider.keys.append(new_key("ec-new", "ES256"))
    new = provider.token("alice", "ES256", "ec-new")
    before = keys.fetches
    # Verification never waits for the network: refused now, known a moment later.
    assert await status_of(r, new) == 401
    await refetched(r, before)
    assert await status_of(r, new) == 404
    provider.keys = [k for k in provider.keys if k.kid != "ec-256"]
    before = keys.fetches
    assert await status_of(r, _unknown_kid_token(provider)) == 401  # asks for a re-fetch
    await refetched(r, before)
    assert await status_of(r, old) == 401  # its key was withdrawn
    assert await status_of(r, new) == 404


def _unknown_kid_token(provider: Provider) -> str:
    """Signed by a key the provider never published, under a kid nobody knows."""
    key = new_key(f"forged-{uuid.uuid4().hex}", "ES256")
    return jwt.encode({"sub": "eve", "iss": provider.issuer, "exp": 9999999999},
                      key.private, algorithm="ES256", headers={"kid": key.kid})


async def test_provider_outage_keeps_the_last_good_keys(
    start_server: ServerFactory, provider: Provider
) -> None:
    r = await start(start_server, provider, **{"auth.jwks_refetch_interval_seconds": 0})
    token = provider.token("alice", "EdDSA", "ed-1")
    provider.up = False
    assert r.service.keys is not None
    before = r.service.keys.fetches
    assert await status_of(r, _unknown_kid_token(provider)) == 401
    await refetched(r, before)
    status, ready = await r.get("/ready")
    assert status == 200, ready  # still serving
    # /ready is public: it says the keys are stale, not which URL failed how
    assert ready["keys"]["state"] == "stale" and ready["keys"]["error"].startswith("failing")
    assert provider.issuer not in str(ready) and "503" not in str(ready)
    root = provider.token("root", "RS256", "rsa-1", scope=r.settings.auth.admin_scope)
    status, ready = await r.get("/ready", headers={"Authorization": f"Bearer {root}"})
    assert status == 200 and "503" in ready["keys"]["error"], ready  # an administrator's
    async with r.http.get(f"{r.url}/metrics") as resp:
        assert "scoreboard_jwks_stale 1.0" in await resp.text()
    assert await status_of(r, token) == 404  # the last good keys still verify
    provider.up = True
    before = r.service.keys.fetches
    assert await status_of(r, _unknown_kid_token(provider)) == 401
    await refetched(r, before)
    status, ready = await r.get("/ready")
    assert ready["keys"]["state"] == "ok"
    assert r.service.tasks.states()["provider-keys"] == "running"


async def test_a_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    start_server: ServerFactory, provider: Provider
) -> None:
    r = await start(start_server, provider, **{"auth.jwks_refetch_interval_seconds": 60})
    assert r.service.keys is not None
    before, served = r.service.keys.fetches, provider.jwks_fetches
    forged = [_unknown_kid_token(provider) for _ in range(40)]
    statuses = await asyncio.gather(*(status_of(r, t) for t in forged[:20]))
    await refetched(r, before)
    statuses += await asyncio.gather(*(status_of(r, t) for t in forged[20:]))
    assert set(statuses) == {401}
    assert provider.jwks_fetches == served + 1


async def test_start_up_fails_with_the_cause_when_the_provider_is_away(tmp_path: Path) -> None:
    async with serve_provider([new_key("rsa-1", "RSA")]) as p:
        issuer = p.issuer
        p.up = False
        settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'x.db'}",
                                 **{"auth.oidc_issuer": issuer,
                                    "server.connect_timeout": 0.3})
        service = Service.build(settings)
        with pytest.raises(StartupError, match=r"identity provider.*503"):
            await service.start()
        assert p.discovery_fetches >= 2  # retried until the deadline
