"""Token verification and minting (JWT with pyjwt).

The algorithm is taken from an allow-list and tied to the key it belongs to, so an
HS256 token signed with a public key, or `alg: none`, never verifies. Verified claims
are cached until they expire so a busy client costs one signature check, not one per
request. Tokens are never logged.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from scoreboard.settings import AuthSettings

SECRET_FILE = "jwt-secret"
MAX_SUB = 128
MAX_NAME = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    display_name: str | None
    scopes: frozenset[str]
    exp: float


class AuthError(Exception):
    """A token was refused. `reason` is a short label for metrics; `message` is for the client."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def load_or_create_secret(configured: str, data_dir: Path, name: str = SECRET_FILE) -> bytes:
    """An HS256 secret: configured, or generated once and kept in the data folder (0600)."""
    if configured:
        return configured.encode()
    path = data_dir / name
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its secret
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    return secret


def _clean_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    name = _CONTROL.sub("", value).strip()[:MAX_NAME]
    return name or None


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scopes = claims.get("scopes")
    if isinstance(scopes, list):
        return frozenset(s for s in scopes if isinstance(s, str))
    return frozenset()


class Authenticator:
    def __init__(self, settings: AuthSettings, secret: bytes) -> None:
        self.settings = settings
        self._secret = secret
        self._keys: dict[str, list[tuple[str | None, Any]]] = {}
        for pk in settings.public_keys:
            key = jwt.algorithms.get_default_algorithms()[pk.alg].prepare_key(pk.pem)
            self._keys.setdefault(pk.alg, []).append((pk.kid, key))
        self._allowed = set(settings.algorithms) | set(self._keys)
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    def _key_for(self, header: dict[str, Any]) -> tuple[str, Any]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise AuthError("algorithm", "token algorithm is not allowed")
        if alg == "HS256":
            return alg, self._secret
        candidates = self._keys.get(alg, [])
        kid = header.get("kid")
        for key_id, key in candidates:
            if kid is None or key_id is None or key_id == kid:
                return alg, key
        raise AuthError("unknown_key", "no key is configured for this token")

    def verify(self, token: str, now: float | None = None) -> Principal:
        """The principal of a valid token, or `AuthError`."""
        now = time.time() if now is None else now
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.exp + self.settings.leeway_seconds:
                return cached
            del self._cache[token]
            raise AuthError("expired", "token has expired")
        if len(token) > self.settings.max_token_bytes:
            raise AuthError("too_large", "token is too large")
        try:
            header = jwt.get_unverified_header(token)
            alg, key = self._key_for(header)
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options={"require": ["exp", "sub"], "verify_aud": bool(self.settings.audience)},
                audience=self.settings.audience or None,
                issuer=self.settings.issuer or None,
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
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB or _CONTROL.search(sub):
            raise AuthError("claims", "token subject must be a string of 1-128 characters")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise AuthError("claims", "token exp must be a number")
        principal = Principal(
            user_id=sub,
            display_name=_clean_name(claims.get("name")) or _clean_name(
                claims.get("preferred_username")
            ),
            scopes=_scopes(claims),
            exp=float(exp),
        )
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
        """An HS256 token for this server's settings (for `run.py token` and tests)."""
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
        if self.settings.issuer:
            claims["iss"] = self.settings.issuer
        if self.settings.audience:
            claims["aud"] = self.settings.audience
        return jwt.encode(claims, self._secret, algorithm="HS256")
