"""Spent proofs: the one-time action proofs already used, kept until they expire.

A rule may require a proof: a token the game's backend minted for one user, one action
and one use. Its signature was checked at the edge; here it is checked against the
command (same user, same action, not expired) and against the proofs already spent. A
proof past its expiry is refused anyway, so it need not be remembered any longer. The
log's unique index on the proof id is the final guard behind this memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from scoreboard.core import errors
from scoreboard.core.commands import ProofClaims, SubmitAction
from scoreboard.core.pending import Pending
from scoreboard.core.records import ActionRecord, LogRecord


class SpentProofs:
    __slots__ = ("_expiry",)

    def __init__(self) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()  # jti → exp, as spent

    def __contains__(self, jti: object) -> bool:
        return jti in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def check(self, cmd: SubmitAction, now: float, pending: Pending) -> ProofClaims:
        """The command's proof, when it is valid for it and unspent; else raises
        `ProofInvalid` or `ProofReused`."""
        proof = cmd.proof
        if proof is None:
            raise errors.ProofInvalid(f"{cmd.action_type} requires an action proof")
        if proof.sub != cmd.user_id or proof.act != cmd.action_type:
            raise errors.ProofInvalid("the proof was issued for another user or action")
        if proof.exp < now:
            raise errors.ProofInvalid("the proof has expired")
        if proof.jti in self._expiry or pending.spends(proof.jti):
            raise errors.ProofReused("this proof was already used")
        return proof

    @staticmethod
    def hold(jti: str, pending: Pending) -> None:
        """The proof is spent by the batch: another command of it may not use it."""
        pending.jtis.add(jti)

    def remember(self, r: LogRecord) -> None:
        if isinstance(r, ActionRecord) and r.proof_jti is not None and r.proof_exp is not None:
            self._expiry[r.proof_jti] = r.proof_exp

    def add(self, jti: str, exp: float) -> None:
        """Spend a proof the log knows but memory had forgotten."""
        self._expiry[jti] = exp

    def expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            jti, exp = next(iter(expiry.items()))
            if exp >= now:
                break
            del expiry[jti]

    def digest(self) -> list[tuple[str, float]]:
        """The spent proofs in memory, in order (tests: a replay must hold the same)."""
        return list(self._expiry.items())

    export = digest  # the same plain values make a snapshot

    def load(self, spent: Iterable[Sequence[Any]]) -> None:
        """Take back what `export` gave, into an empty memory."""
        self._expiry = OrderedDict((jti, exp) for jti, exp in spent)
