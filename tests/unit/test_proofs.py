"""Action proofs: the optional integer claim `val` a `value = "proof"` rule scores."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from scoreboard.auth.proofs import PROOF_TYP, ProofAuthority
from scoreboard.core.errors import ProofInvalid
from scoreboard.settings.auth import ProofSettings

SECRET = b"a-test-proof-secret-long-enough-for-hs256"


def authority() -> ProofAuthority:
    return ProofAuthority(ProofSettings(), SECRET)


def signed(**extra: Any) -> str:
    claims = {"sub": "ann", "act": "LAP_TIME", "jti": "n-1", "exp": int(time.time()) + 60,
              **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"typ": PROOF_TYP})


def test_a_minted_value_comes_back_as_val() -> None:
    proofs = authority()
    assert proofs.verify(proofs.mint("ann", "LAP_TIME", value=65_000)).val == 65_000
    assert proofs.verify(proofs.mint("ann", "LAP_TIME", value=-(2**53 - 1))).val == -(2**53 - 1)
    assert proofs.verify(proofs.mint("ann", "LAP_TIME")).val is None
    assert "val" not in jwt.decode(proofs.mint("ann", "X"), SECRET, algorithms=["HS256"])


@pytest.mark.parametrize("val", [1.5, 65_000.0, "65000", True, 2**53, -(2**53), [1], {}])
def test_a_val_that_is_not_a_safe_integer_is_refused(val: object) -> None:
    with pytest.raises(ProofInvalid, match="val must be an integer"):
        authority().verify(signed(val=val))


def test_a_null_val_is_no_value() -> None:
    assert authority().verify(signed(val=None)).val is None
