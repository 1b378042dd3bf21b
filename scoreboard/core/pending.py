"""The batch being decided: changes accepted but not yet committed.

`Engine.decide` checks each command against the committed state plus this, so that two
commands of one batch see each other (the second copy of a key is a replay, the quota
counts both). Nothing here is visible to readers; after the commit `Engine.apply` makes
the records part of the state and the `Pending` is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scoreboard.core.records import LogRecord, UserRow


@dataclass(slots=True)
class Pending:
    next_seq: int
    records: list[LogRecord] = field(default_factory=list)
    scores: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    users: dict[str, UserRow] = field(default_factory=dict)
    keys: dict[tuple[str, str], int] = field(default_factory=dict)  # key → fingerprint
    quota_hits: dict[tuple[str, str], int] = field(default_factory=dict)
    jtis: set[str] = field(default_factory=set)
    activity: dict[str, tuple[int, int]] = field(default_factory=dict)  # user → (n, points)
    rolled: set[str] = field(default_factory=set)  # boards whose period closed in this batch
    removed: set[tuple[str, str]] = field(default_factory=set)  # (board, user) taken off

    def __len__(self) -> int:
        return len(self.records)
