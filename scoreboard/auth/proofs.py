"""Action proofs: short-lived one-time JWS from a trusted backend.

A proof binds `sub` (the user), `act` (the actionType), `jti` (a nonce) and `exp`, and
may name the one board it is good for (`board`) and the integer value a `value = "proof"`
rule scores (`val`, SPEC §11). This
module checks the signature and shape; whether the jti is still unspent, and whether it
matches the caller and the action, is decided by the engine inside the writer, so that
concurrent reuse has exactly one winner and spent proofs survive restarts.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from scoreboard.core.commands import ProofClaims
from scoreboard.core.errors import ProofInvalid
from scoreboard.core.rules import MAX_VALUE
from scoreboard.settings.model import ProofSettings

PROOF_TYP = "scoreboard-proof"


class ProofAuthority:
    """Verifies proofs with the proof key (never the user-token key) and mints them."""

    def __init__(self, settings: ProofSettings, secret: bytes, leeway: float = 5.0) -> None:
        self.settings = settings
        self._secret = secret
        self.leeway = leeway
        self._keys: dict[str, Any] = {}
        import jwt  # see scoreboard.auth.tokens: imported where used

        for pk in settings.public_keys:
            algo = jwt.algorithms.get_default_algorithms()[pk.alg]
            self._keys[pk.alg] = algo.prepare_key(pk.pem)
        self._allowed = set(settings.algorithms) | set(self._keys)

    def verify(self, token: str, now: float | None = None, *,
               board: str | None = None) -> ProofClaims:
        """The proof's claims; refused if it names a board other than `board`."""
        import jwt

        now = time.time() if now is None else now
        try:
            alg = jwt.get_unverified_header(token).get("alg")
            if not isinstance(alg, str) or alg not in self._allowed:
                raise ProofInvalid("proof algorithm is not allowed")
            key = self._secret if alg == "HS256" else self._keys.get(alg)
            if key is None:
                raise ProofInvalid("no key is configured for this proof")
            claims = jwt.decode(
                token, key, algorithms=[alg],
                options={"require": ["exp", "sub", "act", "jti"], "verify_aud": False},
                leeway=self.leeway,
            )
        except ProofInvalid:
            raise
        except jwt.ExpiredSignatureError:
            raise ProofInvalid("the proof has expired") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise ProofInvalid("the proof is invalid") from None
        sub, act, jti, exp = claims["sub"], claims["act"], claims["jti"], claims["exp"]
        if not all(isinstance(x, str) and 0 < len(x) <= 128 for x in (sub, act, jti)):
            raise ProofInvalid("proof claims sub, act and jti must be short strings")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise ProofInvalid("proof exp must be a number")
        if exp - now > self.settings.max_ttl_seconds + self.leeway:
            raise ProofInvalid("the proof lives longer than allowed")
        bound = claims.get("board")
        if bound is not None and (not isinstance(bound, str) or bound != board):
            raise ProofInvalid(f"the proof is for board {str(bound)[:64]!r}, "
                               f"not {str(board)[:64]!r}")
        val = claims.get("val")
        if val is not None and (isinstance(val, bool) or not isinstance(val, int)
                                or abs(val) > MAX_VALUE):
            raise ProofInvalid("proof claim val must be an integer within ±(2^53-1)")
        return ProofClaims(sub=sub, act=act, jti=jti, exp=float(exp), val=val)

    def mint(self, sub: str, act: str, *, ttl: float | None = None,
             now: float | None = None, board: str | None = None,
             value: int | None = None) -> str:
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "sub": sub,
            "act": act,
            "jti": secrets.token_urlsafe(16),
            "iat": int(now),
            "exp": int(now + (ttl if ttl is not None else self.settings.ttl_seconds)),
        }
        if board is not None:
            claims["board"] = board
        if value is not None:
            claims["val"] = value
        import jwt

        return jwt.encode(claims, self._secret, algorithm="HS256", headers={"typ": PROOF_TYP})
