"""Board definitions (`[boards.<id>]`) and their schedules: what reads, what is refused
(naming the key), and how periods are named and bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scoreboard.core.boards import BoardDef, BoardError, check_boards
from scoreboard.core.periods import Schedule, next_id
from scoreboard.settings.model import SettingsError, load_settings


def settings_of(tmp_path: Path, toml: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return load_settings(config_file=path, environ={})


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(("toml", "message"), [
    ('[boards.weekly]\nreset = "fortnightly"\n',
     "boards.weekly.reset: expected never, daily, weekly, monthly or a 5-field cron "
     "expression, got 'fortnightly'"),
    ('[boards.w]\nreset = "0 25 * * *"\n', "boards.w.reset: expected never"),
    ('[boards.w]\nsort = "up"\n', "boards.w.sort: expected one of asc, desc, got 'up'"),
    ('[boards.w]\noperator = "max"\n', "boards.w.operator: expected one of"),
    ('[boards.w]\nranks = "dense"\n', "boards.w.ranks: expected one of"),
    ('[boards.w]\ntimezone = "Mars/Base"\n', "boards.w.timezone: expected an IANA time zone"),
    ('[boards.w]\nstart = 2026-01-01T00:00:00\n', "boards.w.start: expected an RFC 3339"),
    ('[boards.w]\nstart = "soon"\n', "boards.w.start: expected an RFC 3339"),
    ('[boards.w]\nstart = 2026-02-01T00:00:00Z\nend = 2026-01-01T00:00:00Z\n',
     "boards.w.end: must be after start"),
    ('[boards.w]\nfollows = "nowhere"\n', "boards.w.follows: unknown board 'nowhere'"),
    ('[boards.a]\nfollows = "b"\n[boards.b]\nfollows = ["a"]\n',
     "boards.a.follows: a cycle leads back to 'a'"),
    ('[boards.w]\nfollows = 3\n', "boards.w.follows: expected a board id or a list"),
    ('[boards.w]\ncolour = "red"\n', "boards.w: object contains unknown field `colour`"),
    ('[boards."Big Board"]\n', "boards.Big Board: board ids are 1-64 of a-z"),
])
def test_a_bad_definition_stops_start_up_naming_the_key(
        tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings_of(tmp_path, toml)
    assert str(info.value).startswith(message), info.value


def test_definitions_read_from_a_file_the_old_list_and_variables(tmp_path: Path) -> None:
    s = settings_of(tmp_path, """
[leaderboard]
boards = ["daily_old"]
[boards.laps]
title = "Lap times"
sort = "asc"
operator = "best"
ranks = "competition"
follows = "daily_old"
start = 2026-12-01T00:00:00Z
end = "2027-01-01T00:00:00+01:00"
""")
    defs = s.board_definitions()
    assert list(defs) == ["global", "daily_old", "laps"]
    assert defs["global"] == BoardDef("global") and defs["daily_old"] == BoardDef("daily_old")
    laps = defs["laps"]
    assert (laps.title, laps.sort, laps.operator, laps.ranks, laps.follows) == (
        "Lap times", "asc", "best", "competition", ("daily_old",))
    assert (laps.start, laps.end) == (at(2026, 12, 1), at(2026, 12, 31, 23))
    env = {"SCOREBOARD_BOARDS__WEEKLY__RESET": "weekly",
           "SCOREBOARD_BOARDS__WEEKLY__TIMEZONE": "Europe/Paris"}
    weekly = load_settings({"boards.weekly.follows": "global"}, environ=env).boards["weekly"]
    assert (weekly.reset, weekly.timezone, weekly.follows) == ("weekly", "Europe/Paris", "global")


def test_followers_are_transitive_and_in_definition_order() -> None:
    defs = {d.id: d for d in (BoardDef("global"), BoardDef("a", follows=("global",)),
                              BoardDef("b", follows=("a",)), BoardDef("c", follows=("global",)))}
    assert check_boards(defs) == {"global": ("a", "b", "c"), "a": ("b",), "b": (), "c": ()}
    with pytest.raises(BoardError, match="cannot follow itself"):
        BoardDef("x", follows=("x",))


NOON = at(2026, 12, 4, 12)  # a Friday


@pytest.mark.parametrize(("reset", "tz", "pid", "start", "end"), [
    ("daily", "UTC", "2026-12-04", at(2026, 12, 4), at(2026, 12, 5)),
    ("daily", "Pacific/Kiritimati", "2026-12-05", at(2026, 12, 4, 10), at(2026, 12, 5, 10)),
    ("weekly", "UTC", "2026-W49", at(2026, 11, 30), at(2026, 12, 7)),
    ("monthly", "Europe/Paris", "2026-12", at(2026, 11, 30, 23), at(2026, 12, 31, 23)),
    ("0 18 * * *", "UTC", "2026-12-03T18:00Z", at(2026, 12, 3, 18), at(2026, 12, 4, 18)),
    ("0 12 * * *", "UTC", "2026-12-04T12:00Z", at(2026, 12, 4, 12), at(2026, 12, 5, 12)),
])
def test_periods_are_named_and_bounded_by_the_schedule(
        reset: str, tz: str, pid: str, start: float, end: float) -> None:
    period = Schedule.parse(reset, tz).period_at(NOON)
    assert period is not None and (period.id, period.starts_at, period.ends_at) == (pid, start, end)
    assert period.holds(NOON) and not period.holds(end)


def test_iso_weeks_cross_the_year_and_dst_keeps_local_midnight() -> None:
    week = Schedule.parse("weekly").period_at(at(2027, 1, 1))
    assert week is not None and week.id == "2026-W53"
    day = Schedule.parse("daily", "Europe/Paris").period_at(at(2026, 3, 29, 12))
    assert day is not None and day.ends_at - day.starts_at == 23 * 3600  # spring forward


def test_a_season_and_a_clipped_schedule() -> None:
    season = BoardDef("s", start=at(2026, 1, 1), end=at(2026, 2, 1))
    p = season.period_at(at(2026, 1, 10))
    assert p is not None and (p.id, p.starts_at, p.ends_at) == ("season", at(2026, 1, 1),
                                                               at(2026, 2, 1))
    assert season.open_at(at(2026, 1, 1)) and not season.open_at(at(2026, 2, 1))
    assert not season.open_at(at(2025, 12, 31))
    clipped = BoardDef("c", reset="monthly", end=at(2026, 1, 15)).period_at(at(2026, 1, 10))
    assert clipped is not None and (clipped.id, clipped.ends_at) == ("2026-01", at(2026, 1, 15))
    assert BoardDef("g").period_at(NOON) is None


def test_a_manual_reset_takes_the_next_suffix() -> None:
    assert next_id("2026-W49", "2026-W49") == "2026-W49.2"
    assert next_id("2026-W49", "2026-W49.2") == "2026-W49.3"
    assert next_id("2026-W50", "2026-W49.3") == "2026-W50.2"
