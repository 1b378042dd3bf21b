"""Verification keys and the algorithms each may verify.

A key verifies only algorithms of its own family: an RSA key RS*/PS*, an EC key the ES*
of its curve, an OKP key EdDSA; a key published with an `alg` only that one. HMAC is
never among them, so a token "signed" with a public key as an HS256 secret, or
`alg: none`, finds no key. Nothing here does I/O: a JWKS document or PEMs go in, a
`KeyRing` comes out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoreboard.settings.model import PublicKey

RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
ASYMMETRIC = RSA_ALGS | frozenset(EC_ALGS.values()) | {"EdDSA"}
MAX_KEYS = 100  # a key set bigger than this is a mistake or an attack; the rest is ignored
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


class KeySetError(ValueError):
    """A key set that holds no usable key, or is not a JWKS at all."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    kid: str | None
    algs: frozenset[str]
    key: Any  # a cryptography public key object, ready for pyjwt


class KeyRing:
    """Keys by kid, and by algorithm for tokens without a kid."""

    __slots__ = ("_by_alg", "_by_kid", "algorithms", "kids", "size")

    def __init__(self, keys: Iterable[VerifyKey] = ()) -> None:
        self._by_kid: dict[str, list[VerifyKey]] = {}
        self._by_alg: dict[str, VerifyKey] = {}
        listed = list(keys)
        self.size = len(listed)
        for k in listed:
            if k.kid is not None:
                self._by_kid.setdefault(k.kid, []).append(k)
            for alg in sorted(k.algs):
                self._by_alg.setdefault(alg, k)
        self.algorithms = frozenset(self._by_alg)
        self.kids = frozenset(self._by_kid)

    def __len__(self) -> int:
        return self.size

    def find(self, alg: str, kid: str | None) -> Any | None:
        """The key for a token's `alg` and `kid`, or None."""
        if kid is None:
            k = self._by_alg.get(alg)
            return None if k is None else k.key
        for k in self._by_kid.get(kid, ()):
            if alg in k.algs:
                return k.key
        return None


EMPTY = KeyRing()


def _family(jwk: Mapping[str, Any]) -> frozenset[str]:
    kty = jwk.get("kty")
    if kty == "RSA":
        return RSA_ALGS
    if kty == "EC":
        alg = EC_ALGS.get(str(jwk.get("crv")))
        return frozenset() if alg is None else frozenset({alg})
    if kty == "OKP" and jwk.get("crv") in ("Ed25519", "Ed448"):
        return frozenset({"EdDSA"})
    return frozenset()  # "oct" (a shared secret) never belongs in a public key set


def key_from_jwk(jwk: Mapping[str, Any]) -> VerifyKey | None:
    """One JWK as a verification key, or None when it cannot verify signatures here."""
    if jwk.get("use", "sig") != "sig":
        return None
    algs = _family(jwk)
    alg = jwk.get("alg")
    if alg is not None:
        algs = algs & {alg}  # published for one algorithm: only that one
    kid = jwk.get("kid")
    if not algs or (kid is not None and not isinstance(kid, str)):
        return None
    import jwt  # see scoreboard.auth.tokens: imported where used

    try:
        key = jwt.PyJWK(dict(jwk), algorithm=sorted(algs)[0]).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    return VerifyKey(kid, algs, key)


def ring_from_jwks(document: Any) -> tuple[KeyRing, int]:
    """A key ring from a JWKS document, and how many of its keys were skipped."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeySetError("not a JWK set: no 'keys' list")
    usable = [k for k in (key_from_jwk(j) for j in keys[:MAX_KEYS] if isinstance(j, dict)) if k]
    if not usable:
        raise KeySetError(f"none of the {len(keys)} published keys can verify signatures")
    return KeyRing(usable), len(keys) - len(usable)


def ring_from_pems(public_keys: Iterable[PublicKey]) -> KeyRing:
    """Configured PEMs: each verifies exactly the algorithm it is configured for.

    Raises `KeySetError` for a PEM that is not a key of that algorithm's family."""
    import jwt

    out = []
    for pk in public_keys:
        try:
            key = jwt.algorithms.get_default_algorithms()[pk.alg].prepare_key(pk.pem)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise KeySetError(f"the {pk.alg} public key {pk.kid or ''} is unusable: {exc}"
                              ) from None
        if pk.alg.startswith("ES") and EC_ALGS.get(_curve(key)) != pk.alg:
            raise KeySetError(f"the {pk.alg} public key {pk.kid or ''} is on another curve")
        out.append(VerifyKey(pk.kid, frozenset({pk.alg}), key))
    return KeyRing(out)


def _curve(key: Any) -> str:
    names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
    curve = getattr(key, "curve", None)
    return names.get(getattr(curve, "name", ""), "")


def max_age(cache_control: str | None) -> float | None:
    """Seconds from a Cache-Control header's max-age; 0 for no-cache / no-store."""
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return None if match is None else float(match.group(1))
