"""Token verification and minting (JWT with pyjwt).

The algorithm is taken from an allow-list and tied to the key it belongs to (see
`scoreboard.auth.keyring`), so an HS256 token signed with a public key, or
`alg: none`, never verifies. Keys are configured PEMs and, with an identity provider,
the provider's published key set (`scoreboard.auth.provider`); with either, the
local HS256 secret verifies nothing unless `auth.local_tokens` is set.

Verified claims are cached until they expire so a busy client costs one signature
check, not one per request. Revocations ("log out everywhere": every token of a user
issued up to a moment) are checked on every call, cached or not, so the cache never
outlives one. Tokens are never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scoreboard.auth.claims import CONTROL, display_name, scopes
from scoreboard.auth.keyring import ASYMMETRIC, KeyRing, ring_from_pems
from scoreboard.settings.model import AuthSettings

SECRET_FILE = "jwt-secret"
MIN_SECRET_BYTES = 32  # HS256: a key shorter than the hash is refused (RFC 7518 §3.2)
# pyjwt, and cryptography under it, are imported inside the functions that use them
# (here, in proofs and in keyring), not at the top: their import is a tenth of a second
# that the way to ready does not need. The service imports it in a thread once it
# listens (`Service.start`), so the first token after a start seldom waits for it.
JWT_MODULE = "jwt"

log = logging.getLogger("scoreboard.auth")
MAX_SUB = 128


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    display_name: str | None
    scopes: frozenset[str]
    exp: float
    iat: float | None = None  # when the token was issued, if it says


class KeySource(Protocol):
    """A provider's published keys (`scoreboard.auth.provider.KeySource`)."""

    ring: KeyRing
    issuer: str | None

    def missing(self, kid: str) -> None: ...


class AuthError(Exception):
    """A token was refused. `reason` is a short label for metrics; `message` is for the client."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SecretFileError(ValueError):
    """A secret file too short to sign with; the message names the file."""


def read_secret_file(path: Path) -> bytes:
    """The secret kept in `path`; an empty or short one is refused, never used."""
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        size = f"{len(secret)} bytes" if secret else "empty"
        raise SecretFileError(
            f"the secret file {path.resolve()} is {size}; HS256 needs at least "
            f"{MIN_SECRET_BYTES}. Write a longer secret into it, or delete it to have one "
            "generated (tokens signed with the old one are then refused)"
        )
    return secret


def load_or_create_secret(configured: str, data_dir: Path, name: str = SECRET_FILE) -> bytes:
    """An HS256 secret: configured, or generated once and kept in the data folder (0600).
    Says which (never the secret) in the log."""
    if configured:
        log.info("secret %s: configured (settings, environment or config file)", name)
        return configured.encode()
    path = data_dir / name
    try:
        secret = read_secret_file(path)
    except FileNotFoundError:
        pass
    else:
        log.info("secret %s: read from %s", name, path.resolve())
        return secret
    data_dir.mkdir(0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its secret
        return read_secret_file(path)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    log.info("secret %s: generated and kept in %s", name, path.resolve())
    return secret


class Authenticator:
    def __init__(self, settings: AuthSettings, secret: bytes, *,
                 source: KeySource | None = None,
                 revoked: Mapping[str, float] | None = None) -> None:
        self.settings = settings
        self._secret = secret
        self._static = ring_from_pems(settings.public_keys)
        self.source = source
        # user → the moment before which (inclusive) their tokens are refused
        self.revoked: Mapping[str, float] = {} if revoked is None else revoked
        provider = settings.provider or source is not None
        self._local = "HS256" in settings.algorithms and (settings.local_tokens or not provider)
        # Asymmetric algorithms: those of the keys, narrowed by `auth.algorithms` when
        # it names any.
        asym = set(self._static.algorithms) | (set(ASYMMETRIC) if source else set())
        listed = set(settings.algorithms) & ASYMMETRIC
        self._allowed = (asym & listed if listed else asym) | ({"HS256"} if self._local else set())
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    @property
    def issuer(self) -> str:
        """The expected `iss`: the discovered OpenID issuer, else `auth.issuer`."""
        source = self.source
        return (source.issuer if source is not None else None) or self.settings.issuer

    def _key_for(self, header: dict[str, Any]) -> tuple[str, Any]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise AuthError("algorithm", "token algorithm is not allowed")
        if alg == "HS256":
            return alg, self._secret
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed", "token kid must be a string")
        key = self._static.find(alg, kid)
        source = self.source
        if key is None and source is not None:
            ring = source.ring
            key = ring.find(alg, kid)
            if key is None and kid is not None and kid not in ring.kids:
                source.missing(kid)  # a re-fetch, rate-limited; this token is refused now
                raise AuthError("unknown_key",
                                "the token's key is unknown; if it is new, retry shortly")
        if key is None:
            raise AuthError("unknown_key", "no key is configured for this token")
        return alg, key

    def _check_revoked(self, p: Principal) -> None:
        at = self.revoked.get(p.user_id)
        if at is not None and (p.iat is None or p.iat <= at):
            raise AuthError("revoked", "token has been revoked")

    def verify(self, token: str, now: float | None = None) -> Principal:
        """The principal of a valid token, or `AuthError`."""
        now = time.time() if now is None else now
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.exp + self.settings.leeway_seconds:
                if self.revoked:
                    self._check_revoked(cached)
                return cached
            del self._cache[token]
            raise AuthError("expired", "token has expired")
        if len(token) > self.settings.max_token_bytes:
            raise AuthError("too_large", "token is too large")
        import jwt  # here, not at the top: see JWT_MODULE

        try:
            header = jwt.get_unverified_header(token)
            alg, key = self._key_for(header)
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options={"require": ["exp", "sub"], "verify_aud": bool(self.settings.audience)},
                audience=self.settings.audience or None,
                issuer=self.issuer or None,
                leeway=self.settings.leeway_seconds,
            )
        except AuthError:
            raise
        except jwt.ExpiredSignatureError:
            raise AuthError("expired", "token has expired") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise AuthError("claims", "token audience or issuer is wrong") from None
        except jwt.InvalidSignatureError:
            raise AuthError("signature", "token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError("claims", f"token lacks the {exc.claim!r} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError("malformed", "token is malformed or invalid") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB or CONTROL.search(sub):
            raise AuthError("claims", "token subject must be a string of 1-128 characters")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise AuthError("claims", "token exp must be a number")
        iat = claims.get("iat")  # anything but a number counts as no iat: revocable
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            iat = None
        principal = Principal(
            user_id=sub,
            display_name=display_name(claims, self.settings.name_claim),
            scopes=scopes(claims, self.settings.scope_claim),
            exp=float(exp),
            iat=None if iat is None else float(iat),
        )
        if self.revoked:
            self._check_revoked(principal)
        if self.settings.claims_cache_size:
            self._cache[token] = principal
            if len(self._cache) > self.settings.claims_cache_size:
                self._cache.popitem(last=False)
        return principal

    def mint(
        self,
        sub: str,
        *,
        name: str | None = None,
        scopes: tuple[str, ...] = (),
        ttl: float | None = None,
        now: float | None = None,
    ) -> str:
        """An HS256 token for this server's settings (for `run.py token` and tests);
        with an identity provider it verifies only if `auth.local_tokens` is set."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "sub": sub,
            "iat": int(now),
            "exp": int(now + (ttl if ttl is not None else self.settings.token_ttl_seconds)),
        }
        if name:
            claims["name"] = name
        if scopes:
            claims["scope"] = " ".join(scopes)
        if self.issuer:
            claims["iss"] = self.issuer
        if self.settings.audience:
            claims["aud"] = self.settings.audience
        import jwt

        return jwt.encode(claims, self._secret, algorithm="HS256")
