"""A test identity provider served by the test itself (aiohttp on 127.0.0.1): an OpenID
Connect discovery document and a JWKS with RSA, EC and Ed25519 keys, which a test can
rotate, take down, and count fetches of. Tokens are signed with pyjwt, independently of
the service's own minting."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EVERY_ALG = (*RSA_ALGS, *CURVES, "EdDSA")


@dataclass
class SigningKey:
    kid: str
    kind: str  # "RSA", an ES alg, or "EdDSA"
    private: Any

    def jwk(self) -> dict[str, Any]:
        if self.kind == "RSA":
            out = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        elif self.kind == "EdDSA":
            out = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.private.public_key()))
        else:
            out = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        return {**out, "kid": self.kid, "use": "sig"}


def new_key(kid: str, kind: str) -> SigningKey:
    if kind == "RSA":
        return SigningKey(kid, kind, rsa.generate_private_key(public_exponent=65537,
                                                              key_size=2048))
    if kind == "EdDSA":
        return SigningKey(kid, kind, ed25519.Ed25519PrivateKey.generate())
    return SigningKey(kid, kind, ec.generate_private_key(CURVES[kind]))


@dataclass
class Provider:
    url: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    up: bool = True
    cache_control: str = "max-age=300"
    jwks_fetches: int = 0
    discovery_fetches: int = 0

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/test"

    def key(self, kid: str) -> SigningKey:
        return next(k for k in self.keys if k.kid == kid)

    def token(self, sub: str, alg: str, kid: str, *, iat: float | None = None,
              ttl: float = 600, **claims: Any) -> str:
        now = time.time()
        body: dict[str, Any] = {"sub": sub, "iss": self.issuer, "exp": int(now + ttl),
                                "iat": int(now if iat is None else iat), **claims}
        return jwt.encode(body, self.key(kid).private, algorithm=alg, headers={"kid": kid})

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            self.discovery_fetches += 1
            if not self.up:
                return web.Response(status=503)
            return web.json_response({"issuer": self.issuer,
                                      "jwks_uri": f"{self.issuer}/protocol/certs"})

        async def certs(request: web.Request) -> web.Response:
            self.jwks_fetches += 1
            if not self.up:
                return web.Response(status=503)
            return web.json_response({"keys": [k.jwk() for k in self.keys]},
                                     headers={"Cache-Control": self.cache_control})

        app = web.Application()
        app.router.add_get("/realms/test/.well-known/openid-configuration", discovery)
        app.router.add_get("/realms/test/protocol/certs", certs)
        return app


@asynccontextmanager
async def serve_provider(keys: list[SigningKey]) -> AsyncIterator[Provider]:
    provider = Provider(keys=keys)
    runner = web.AppRunner(provider.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    provider.url = f"http://127.0.0.1:{port}"
    try:
        yield provider
    finally:
        await runner.cleanup()
