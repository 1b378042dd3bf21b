"""Recovery: an empty engine rebuilt from the stored current rows and recent records.

`Restore` is the `SnapshotSink` that `ActionLog.load` streams into, a chunk at a time,
so recovering a million users holds one chunk of rows beside the engine, never all of
them: temporary rows spread among the engine's long-lived objects would keep the
process's memory high long after they are gone.

Score rows come first and go straight into the rankings, unordered; each ranking is
sorted once at the end (one sort, not a million inserts). User rows come next: a name
goes into the slot the global ranking gave its user, and the few sets (frozen,
anonymous, flagged) take the rankings' own string for each id, not a second copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from scoreboard.core.engine import Engine
from scoreboard.core.ranking import Ranking
from scoreboard.core.records import (
    BoardDefinedRecord,
    BoardRecord,
    LogRecord,
    PeriodClosedRecord,
    Snapshot,
    StandingRemovedRecord,
)


class Restore:
    """Feeds an empty engine; counts what it was given (for the log line)."""

    __slots__ = ("_closed_at", "_engine", "_removed_at", "recent_records", "score_rows",
                 "user_rows")

    def __init__(self, engine: Engine) -> None:
        if engine.last_seq:
            raise ValueError("recovery needs an empty engine")
        self._engine = engine
        self._closed_at: dict[str, int] = {}  # board → the seq of its last period_closed
        # (board, user) → the seq of the last removal of the user from the board
        self._removed_at: dict[tuple[str, str], int] = {}
        self.score_rows = self.user_rows = self.recent_records = 0

    def periods(self, closes: Sequence[BoardRecord], last_at: float) -> None:
        """Boards defined at run time, and each board's current period: the one its last
        close opened, or (for a board that never closed) the one holding the last record,
        which was committed before the board's period ended (else the writer would have
        closed it first). Removals: which stored rows no longer stand."""
        engine = self._engine
        for r in closes:
            if isinstance(r, BoardDefinedRecord):
                engine.define(r.definition, r.seq)
            elif isinstance(r, StandingRemovedRecord):
                self._removed_at[(r.board, r.user_id)] = r.seq
            elif isinstance(r, PeriodClosedRecord):
                self._closed_at[r.board] = r.seq
                engine.follow(r)
        engine.last_at = max(engine.last_at, last_at)

    def scores(self, rows: Sequence[Sequence[Any]]) -> None:
        """(board, user_id, score, reached_seq) rows; rows of a closed period (reached
        before the board's last close) stay in the archive, not on the current board."""
        if self._closed_at:
            closed_at = self._closed_at
            rows = [row for row in rows if row[3] > closed_at.get(row[0], 0)]
        if self._removed_at:  # a row the user reached before being taken off is gone
            removed_at = self._removed_at
            rows = [row for row in rows if row[3] > removed_at.get((row[0], row[1]), 0)]
        if not rows:
            return
        self.score_rows += len(rows)
        boards = set(map(itemgetter(0), rows))
        if len(boards) == 1:  # the common case: one board
            self._ranking(boards.pop()).load_stored(rows)
            return
        by_board: dict[str, list[Sequence[Any]]] = {}
        for row in rows:
            by_board.setdefault(row[0], []).append(row)
        for board, part in by_board.items():
            self._ranking(board).load_stored(part)

    def users(self, rows: Sequence[Sequence[Any]]) -> None:
        """(user_id, display_name, frozen, hidden, flag, tokens_revoked_at) rows."""
        engine = self._engine
        names, frozen, anonymous, flags, revoked = (
            engine.names, engine.frozen, engine.anonymous, engine.flags, engine.revoked
        )
        on_global = engine.boards["global"]
        user_at = on_global.user_at
        elsewhere = [r.canonical_id for r in engine.boards.values() if r is not on_global]
        self.user_rows += len(rows)
        # Nearly everyone is on the global board with only a name: named in bulk by slot.
        slots = on_global.slots_of([row[0] for row in rows])
        names.load_at(slots, [row[1] for row in rows])
        for (user_id, name, is_frozen, is_anonymous, flag, revoked_at), slot in zip(
            rows, slots, strict=True
        ):
            if slot is not None:
                if not (is_frozen or is_anonymous or flag is not None
                        or revoked_at is not None):
                    continue
                user_id = user_at(slot)
            else:
                for canonical_id in elsewhere:
                    own = canonical_id(user_id)
                    if own is not None:
                        user_id = own
                        break
                if name is not None:
                    names[user_id] = name
            if is_frozen:
                frozen.add(user_id)
            if is_anonymous:
                anonymous.add(user_id)
            if flag is not None:
                flags[user_id] = flag
            if revoked_at is not None:
                revoked[user_id] = float(revoked_at)

    def recent(self, records: Sequence[LogRecord]) -> None:
        """Recent records, in seq order: what decisions must remember of them."""
        engine = self._engine
        self.recent_records += len(records)
        for r in records:
            engine.remember(r)
            engine.last_at = max(engine.last_at, r.at)

    def end(self, last_seq: int) -> None:
        engine = self._engine
        for ranking in engine.boards.values():  # empty boards too: see Ranking.version
            # Every board, as a freeze applies to every board: a frozen user who later
            # scores on a board new to them must stay out of its order there too.
            ranking.frozen |= engine.frozen
            ranking.sort_loaded(last_seq)
        for board, period in engine.periods.items():
            if period is None and board not in engine.ended and len(engine.boards[board]):
                engine.periods[board] = engine.defs[board].period_at(engine.last_at)
        engine.last_seq = last_seq

    def _ranking(self, board: str) -> Ranking:
        boards = self._engine.boards
        ranking = boards.get(board)
        if ranking is None:  # a board removed from the config keeps its history
            ranking = boards[board] = Ranking(board)
        return ranking


def restore(engine: Engine, snapshot: Snapshot) -> None:
    """Rebuild an empty engine from a snapshot held in memory (tests, tools)."""
    snapshot.feed(Restore(engine))
