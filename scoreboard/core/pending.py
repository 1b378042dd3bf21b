"""A group being decided: changes accepted but not yet committed.

`Engine.decide` checks each command against the committed state plus this, so that two
commands of one group see each other (the second copy of a key is a replay, the quota
counts both). Nothing here is visible to readers; after the commit `Engine.apply` makes
the records part of the state and the `Pending` is dropped.

Groups may be decided while earlier ones are still committing (the writer's pipeline):
such a group's `prior` is the one decided before it, and every look-up here sees the
whole chain, newest first, as if the earlier groups were committed already. When the
oldest group commits and is applied, the next one is `detach`ed: what it saw in the
chain is committed state from then on, so nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

from scoreboard.core.records import LogRecord, UserRow

# A pending score: (board, user, score, reached seq), the row the batch writes as it is.
Score = tuple[str, str, int, int]
ROLLED: Score = ("", "", 0, -1)  # `Pending.score`: the board's period closed in the chain,
# or the user was taken off the board


@dataclass(slots=True)
class Pending:
    next_seq: int
    prior: Pending | None = None  # the group decided before this one, not yet committed
    records: list[LogRecord] = field(default_factory=list)
    # board → user → score: an action on followed boards adds one row per board and
    # no key tuple (see `put`)
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    users: dict[str, UserRow] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # → (fp, seq)
    quota_hits: dict[tuple[str, str], int] = field(default_factory=dict)
    jtis: set[str] = field(default_factory=set)
    # user → (minute, actions, points) counted by this group
    activity: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    rolled: set[str] = field(default_factory=set)  # boards whose period closed in this batch
    # Rows of a board whose period an administrator closed later in this group: written
    # as they are, never looked up again (`scores` holds what came after the close).
    superseded: list[Score] = field(default_factory=list)
    removed: set[tuple[str, str]] = field(default_factory=set)  # (board, user) taken off

    def __len__(self) -> int:
        return len(self.records)

    def then(self) -> Pending:
        """A new group decided on top of this one (which is not committed yet)."""
        return Pending(next_seq=self.next_seq, prior=self)

    def detach(self) -> None:
        """The group before this one was committed and applied: stop looking at it."""
        self.prior = None

    # Each look-up asks this group first, then the ones before it, newest first.

    def put(self, row: Score) -> None:
        """A decided score: (board, user, score, reached seq)."""
        board = self.scores.get(row[0])
        if board is None:
            board = self.scores[row[0]] = {}
        board[row[1]] = row

    def rows(self) -> tuple[Score, ...]:
        """This group's scores: one row per (board, user), and before them the rows
        that a close in the group superseded (a later row of the same board and user
        wins, as upserts one after another)."""
        rows = chain.from_iterable(board.values() for board in self.scores.values())
        return (*self.superseded, *rows) if self.superseded else tuple(rows)

    def close(self, board: str) -> None:
        """The board's period closed (in this group): its rows so far are the closed
        period's, and look-ups find the board's scores in the groups before this one
        no more (`ROLLED`)."""
        self.rolled.add(board)
        before = self.scores.pop(board, None)
        if before:
            self.superseded.extend(before.values())

    def score(self, board: str, user_id: str) -> Score | None:
        """The pending score of the user on the board, or `ROLLED` when a group of the
        chain closed the board's period after any score it holds (a close sets the
        group's rows so far aside: `close`) or took the user off the board after it."""
        group: Pending | None = self
        while group is not None:  # a loop, not a call per group: asked per board per action
            scores = group.scores.get(board)
            if scores is not None:
                hit = scores.get(user_id)
                if hit is not None:
                    return hit
            if board in group.rolled or (group.removed and (board, user_id) in group.removed):
                return ROLLED
            group = group.prior
        return None

    def has_rolled(self, board: str) -> bool:
        """Whether a group of the chain closed the board's period."""
        return board in self.rolled or (self.prior is not None and self.prior.has_rolled(board))

    def touched(self, board: str) -> set[str]:
        """The users whose standing on `board` the chain may have changed: scored, taken
        off, or frozen or unfrozen."""
        users = set(self.scores.get(board, ()))
        users.update(u for b, u in self.removed if b == board)
        users.update(self.users)
        return users if self.prior is None else users | self.prior.touched(board)

    def user(self, user_id: str) -> UserRow | None:
        group: Pending | None = self
        while group is not None:
            row = group.users.get(user_id)
            if row is not None:
                return row
            group = group.prior
        return None

    def key(self, key: tuple[str, str]) -> tuple[int, int] | None:
        """(fingerprint, seq) of the record a pending command with this key wrote."""
        group: Pending | None = self
        while group is not None:  # (loops, not a call per group: asked per action)
            hit = group.keys.get(key)
            if hit is not None:
                return hit
            group = group.prior
        return None

    def quota_used(self, key: tuple[str, str]) -> int:
        used = self.quota_hits.get(key, 0)
        group = self.prior
        while group is not None:
            used += group.quota_hits.get(key, 0)
            group = group.prior
        return used

    def spends(self, jti: str) -> bool:
        return jti in self.jtis or (self.prior is not None and self.prior.spends(jti))

    def activity_of(self, user_id: str, minute: int) -> tuple[int, int]:
        """(actions, points) the chain counted for the user in `minute`."""
        n = points = 0
        group: Pending | None = self
        while group is not None:
            hit = group.activity.get(user_id)
            if hit is not None and hit[0] == minute:
                n, points = n + hit[1], points + hit[2]
            group = group.prior
        return n, points
