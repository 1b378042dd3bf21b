"""The opaque cursor of leaderboard pages: where the last page ended.

A cursor names the board, the period and the place the page's last entry held: its
score and the seq of the record that produced it. (score, seq) is unique on a board (one
record scores one user), so the next page starts right after that place whoever holds
it now, and users who did not change in between are neither repeated nor skipped
(`Ranking.after`). No user id is in it: a hidden user's would show through the base64.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

from scoreboard.core.ranking import MAX_SCORE

VERSION = 1
MAX_CURSOR = 512  # characters; a longer one is not ours


class CursorError(ValueError):
    """Not a cursor this service gave out."""


@dataclass(frozen=True, slots=True)
class Cursor:
    board: str
    period: str | None
    score: int
    seq: int

    def encode(self) -> str:
        raw = orjson.dumps([VERSION, self.board, self.period, self.score, self.seq])
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not text or len(text) > MAX_CURSOR:
            raise CursorError("cursor: not a cursor of this service")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            value = orjson.loads(raw)
        except (binascii.Error, ValueError):
            raise CursorError("cursor: not a cursor of this service") from None
        if not (isinstance(value, list) and len(value) == 5 and value[0] == VERSION
                and isinstance(value[1], str) and isinstance(value[2], str | None)
                and _integer(value[3], -MAX_SCORE, MAX_SCORE)
                and _integer(value[4], 0, 2**48 - 1)):
            raise CursorError("cursor: not a cursor of this service")
        return cls(value[1], value[2], value[3], value[4])


def _integer(value: object, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi
