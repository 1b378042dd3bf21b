"""When a board's periods start and end, and what each one is called (SPEC §11).

A schedule reads its `reset` in the board's time zone: `daily` periods are named by their
local date (`2026-12-04`), `weekly` ones (from Monday) by ISO week (`2026-W49`), `monthly`
ones by month (`2026-12`), and cron ones by their start in UTC (`2026-12-04T18:00Z`). A
board with only `start`/`end` has one period, the `season`. Pure: every question takes
the moment it is asked about (seconds since the epoch); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

RESETS = ("never", "daily", "weekly", "monthly")
EXPECTED_RESET = "expected never, daily, weekly, monthly or a 5-field cron expression"
SEASON = "season"
FOREVER = float("inf")


class PeriodError(ValueError):
    """A schedule that cannot be read; the message says what was expected (the caller
    names the key)."""


@dataclass(frozen=True, slots=True)
class Period:
    id: str
    starts_at: float  # seconds since the epoch
    ends_at: float  # FOREVER for a season without an end

    def holds(self, t: float) -> bool:
        return self.starts_at <= t < self.ends_at


def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or name.startswith(("/", ".")):
        raise PeriodError(f"expected an IANA time zone name such as Europe/Paris, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"expected an IANA time zone name such as Europe/Paris, got {name!r}"
                          ) from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """`reset` read in `tz`; `cron` is set for a cron expression."""

    reset: str
    tz: ZoneInfo
    cron: str | None = None

    @classmethod
    def parse(cls, reset: str, timezone: str = "UTC") -> Schedule:
        tz = zone(timezone)
        if not isinstance(reset, str):
            raise PeriodError(f"{EXPECTED_RESET}, got {reset!r}")
        if reset in RESETS:
            return cls(reset, tz)
        fields = reset.split()
        if len(fields) != 5:
            raise PeriodError(f"{EXPECTED_RESET}, got {reset!r}")
        try:
            next(CronSim(reset, datetime(2000, 1, 1, tzinfo=tz)))
        except (CronSimError, StopIteration):
            raise PeriodError(f"{EXPECTED_RESET}, got {reset!r}") from None
        return cls(reset, tz, " ".join(fields))

    @property
    def resets(self) -> bool:
        return self.reset != "never"

    def period_at(self, t: float) -> Period | None:
        """The scheduled period holding the moment `t`, or None for `never`."""
        local = datetime.fromtimestamp(t, self.tz)
        if self.cron is not None:
            start = _cron_start(self.cron, local)
            end = next(CronSim(self.cron, start))
            return Period(f"{start.astimezone(UTC):%Y-%m-%dT%H:%MZ}", start.timestamp(),
                          end.timestamp())
        if self.reset == "daily":
            day = local.date()
            return self._calendar(day.isoformat(), day, day + timedelta(days=1))
        if self.reset == "weekly":
            monday = local.date() - timedelta(days=local.weekday())
            year, week, _ = monday.isocalendar()
            return self._calendar(f"{year}-W{week:02d}", monday, monday + timedelta(days=7))
        if self.reset == "monthly":
            first = local.date().replace(day=1)
            after = (first + timedelta(days=32)).replace(day=1)
            return self._calendar(f"{first:%Y-%m}", first, after)
        return None

    def _calendar(self, pid: str, first: date, after: date) -> Period:
        """A period from local midnight of `first` to local midnight of `after`."""
        return Period(pid, _midnight(first, self.tz), _midnight(after, self.tz))


def _midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _cron_start(expr: str, local: datetime) -> datetime:
    """The latest firing at or before `local`."""
    exact = local.replace(microsecond=0)
    if exact == local:
        after = next(CronSim(expr, exact - timedelta(seconds=1)))
        if after == exact:
            return exact
    return next(CronSim(expr, local, reverse=True))


def next_id(scheduled: str, taken: str) -> str:
    """The id of a period opened by a manual reset: the schedule's id with the next free
    suffix (`2026-W49.2`, `2026-W49.3`, …), given the id of the period it replaces."""
    base, _, n = taken.partition(".")
    if base != scheduled:
        return f"{scheduled}.2"
    return f"{base}.{int(n or 1) + 1}"
