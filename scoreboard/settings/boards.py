"""`[boards.<id>]`: the boards and how each ranks, scores and resets (SPEC §11). The keys
are declared here; what they mean together (a schedule that reads, `follows` that
names known boards without a cycle) is checked by the core's `BoardDef`/`check_boards`,
whose messages name the key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from scoreboard.core.boards import BoardDef, BoardError, check_boards, default_boards
from scoreboard.settings.section import Section, SettingsError, key

BOARD_KEYS = ("title", "sort", "operator", "follows", "reset", "timezone", "start", "end",
              "ranks")
INSTANT = "an RFC 3339 instant with its offset (or a TOML datetime with one)"
Instant = Annotated[datetime, msgspec.Meta(tz=True)]  # an offset is required


class BoardSettings(Section, frozen=True):
    """One board, `[boards.<id>]` (ids: 1-64 of a-z, 0-9, _ and -, starting with a letter
    or digit). `global` exists without a table; a table named `global` changes it. An
    action scores only on the board it names and on the boards that follow that one."""

    title: Annotated[str, key("The name shown for the board (default: its id).")] = ""
    sort: Annotated[Literal["desc", "asc"], key(
        "desc: higher is better; asc: lower is better (a lap time).")] = "desc"
    operator: Annotated[Literal["sum", "best", "latest"], key(
        "sum adds the rule's points; best keeps the better of the stored and the new "
        "value; latest replaces it (values come from proofs or trusted batches).")] = "sum"
    follows: Annotated[str | tuple[str, ...], key(
        "A board id or a list: every action scored on those boards also scores here, in "
        "the same record.", expected="a board id or a list of board ids")] = ()
    reset: Annotated[str, key(
        "never, daily, weekly (from Monday), monthly, or a 5-field cron expression.")] = "never"
    timezone: Annotated[str, key("The IANA time zone the schedule is read in.")] = "UTC"
    start: Annotated[Instant | None, key(
        "The board counts actions from this instant on.", expected=INSTANT)] = None
    end: Annotated[Instant | None, key(
        "The board counts actions before this instant, then is closed.",
        expected=INSTANT)] = None
    ranks: Annotated[Literal["ordinal", "competition"], key(
        "ordinal: ties go to whoever reached the score first; competition: equal scores "
        "share a rank (1, 2, 2, 4).")] = "ordinal"

    def definition(self, board_id: str) -> BoardDef:
        follows = (self.follows,) if isinstance(self.follows, str) else self.follows
        return BoardDef(
            board_id, self.title, self.sort, self.operator, tuple(follows), self.reset,
            self.timezone, None if self.start is None else self.start.timestamp(),
            None if self.end is None else self.end.timestamp(), self.ranks,
        )


def board_definitions(names: tuple[str, ...], tables: Mapping[str, BoardSettings]
                      ) -> dict[str, BoardDef]:
    """Every board: `global`, the names of the old `leaderboard.boards` list (each a
    default board) and the `[boards.<id>]` tables; a bad one raises `SettingsError`."""
    try:
        defs = default_boards(names)
        for board_id, table in tables.items():
            defs[board_id] = table.definition(board_id)
        check_boards(defs)
    except BoardError as exc:
        raise SettingsError(str(exc)) from None
    return defs
