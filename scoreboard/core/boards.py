"""What a board is (SPEC §11): its order, operator, rank style, the boards it follows and
its schedule. Definitions come from `[boards.<id>]` in the settings or from an admin at
run time; `check_boards` refuses a set with an unknown or circular `follows`, naming the
key. Pure: times are seconds since the epoch, passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scoreboard.core.periods import SEASON, Period, PeriodError, Schedule, zone

BOARD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
GLOBAL = "global"
SORTS = ("desc", "asc")
OPERATORS = ("sum", "best", "latest")
RANKS = ("ordinal", "competition")


class BoardError(ValueError):
    """A board definition that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class BoardDef:
    id: str
    title: str = ""
    sort: str = "desc"
    operator: str = "sum"
    follows: tuple[str, ...] = ()
    reset: str = "never"
    timezone: str = "UTC"
    start: float | None = None
    end: float | None = None
    ranks: str = "ordinal"
    schedule: Schedule = field(init=False, compare=False, repr=False)
    # Whether `start` or `end` bounds the board (`open_at` can be False): decided once,
    # asked for each board an action scores on.
    seasonal: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = f"boards.{self.id}"
        if not BOARD_ID.match(self.id):
            raise BoardError(f"{where}: board ids are 1-64 of a-z, 0-9, _ and -, "
                             "starting with a letter or digit")
        for name, allowed in (("sort", SORTS), ("operator", OPERATORS), ("ranks", RANKS)):
            value = getattr(self, name)
            if value not in allowed:
                raise BoardError(f"{where}.{name}: expected {' or '.join(allowed)}, got {value!r}")
        try:
            zone(self.timezone)
        except PeriodError as exc:
            raise BoardError(f"{where}.timezone: {exc}") from None
        try:
            schedule = Schedule.parse(self.reset, self.timezone)
        except PeriodError as exc:
            raise BoardError(f"{where}.reset: {exc}") from None
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise BoardError(f"{where}.end: must be after start")
        for other in self.follows:
            if other == self.id:
                raise BoardError(f"{where}.follows: a board cannot follow itself")
        object.__setattr__(self, "title", self.title or self.id)
        object.__setattr__(self, "schedule", schedule)
        object.__setattr__(self, "seasonal", self.start is not None or self.end is not None)

    @property
    def ascending(self) -> bool:
        return self.sort == "asc"

    @property
    def competition(self) -> bool:
        return self.ranks == "competition"

    @property
    def has_periods(self) -> bool:
        return self.schedule.resets or self.start is not None or self.end is not None

    def open_at(self, t: float) -> bool:
        """Whether an action committed at `t` counts: inside `[start, end)`."""
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def period_at(self, t: float) -> Period | None:
        """The period holding `t` by the schedule, clipped to the season; None for a board
        without periods."""
        if not self.has_periods:
            return None
        start = float("-inf") if self.start is None else self.start
        end = float("inf") if self.end is None else self.end
        scheduled = self.schedule.period_at(t)
        if scheduled is None:
            return Period(SEASON, start, end)
        return Period(scheduled.id, max(scheduled.starts_at, start), min(scheduled.ends_at, end))

    def same_kind(self, other: BoardDef) -> bool:
        """What may not change once a board exists: how it orders and scores."""
        return (self.sort, self.operator, self.follows, self.ranks) == (
            other.sort, other.operator, other.follows, other.ranks)

    def may_become(self, new: BoardDef, *, ended: bool) -> bool:
        """Whether this existing board may take the definition `new` (an administrator's
        PUT): only its title and a later end may change (no end is the latest), and a
        season that is over stays over."""
        same = self.same_kind(new) and (self.reset, self.timezone, self.start) == (
            new.reset, new.timezone, new.start)
        if not same or self.end == new.end:
            return same
        later = new.end is None or (self.end is not None and new.end > self.end)
        return later and not ended


def check_boards(defs: Mapping[str, BoardDef]) -> dict[str, tuple[str, ...]]:
    """Refuse an unknown or circular `follows`; return, for every board, the boards an
    action on it also scores on (followers of followers included), in definition order."""
    for d in defs.values():
        for other in d.follows:
            if other not in defs:
                raise BoardError(f"boards.{d.id}.follows: unknown board {other!r}")
    followers: dict[str, list[str]] = {b: [] for b in defs}
    for d in defs.values():
        for other in d.follows:
            followers[other].append(d.id)
    closure: dict[str, tuple[str, ...]] = {}
    for board in defs:
        seen: list[str] = []
        stack = list(reversed(followers[board]))
        while stack:
            b = stack.pop()
            if b == board:
                raise BoardError(f"boards.{board}.follows: a cycle leads back to {board!r}")
            if b not in seen:
                seen.append(b)
                stack.extend(reversed(followers[b]))
        closure[board] = tuple(seen)
    return closure


def default_boards(names: Iterable[str]) -> dict[str, BoardDef]:
    """Boards named without a definition (the old `leaderboard.boards` list), `global`
    first: each a default board, a sum in descending order that never resets."""
    defs = {GLOBAL: BoardDef(GLOBAL)}
    for name in names:
        defs.setdefault(name, BoardDef(name))
    return defs
