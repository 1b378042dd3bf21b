"""Boards an administrator changes at run time (SPEC §11 admin): a board created from
the same keys as `[boards.<id>]`, redefined only in its title or a later end, and a
user taken off a board's current period; each a record, so replay equals live."""

from __future__ import annotations

from typing import Any

import pytest

from scoreboard.core import errors
from scoreboard.core.commands import DefineBoard, ExcludeFromPeriod, RemoveStanding
from scoreboard.core.engine import Engine
from scoreboard.core.records import (
    BoardDefinedRecord,
    LogRecord,
    PeriodExclusionRecord,
    StandingRemovedRecord,
)
from tests.unit.test_engine_boards import RULES, T0, act, lap, run


def define(board: str, **keys: Any) -> DefineBoard:
    values: dict[str, Any] = {
        "title": "", "sort": "desc", "operator": "sum", "follows": "", "reset": "never",
        "timezone": "UTC", "start": None, "end": None, "ranks": "ordinal"}
    values.update(keys)
    return DefineBoard(user_id="", actor="root", board=board, reason="why", **values)


def test_a_board_created_at_run_time_ranks_by_its_own_keys_and_replays() -> None:
    engine, log = Engine(RULES), []  # type: list[LogRecord]
    out = run(engine, [define("laps", title="Laps", sort="asc", operator="best",
                              ranks="competition", reset="weekly")], log=log)
    assert isinstance(out[0], BoardDefinedRecord) and out[0].definition.title == "Laps"
    run(engine, [lap("a", "1", 70_000), lap("b", "1", 65_000), lap("c", "1", 65_000)], log=log)
    laps = engine.boards["laps"]
    assert laps.top(3) == [("b", 65_000), ("c", 65_000), ("a", 70_000)]
    assert [laps.rank(u) for u in "bca"] == [1, 1, 3]
    assert engine.periods["laps"] is not None and engine.periods["laps"].id == "2026-W49"
    replayed = Engine(RULES)
    for r in log:
        replayed.apply(r)
    assert replayed.state_digest() == engine.state_digest()


def test_only_the_title_and_a_later_end_may_change() -> None:
    engine = Engine(RULES)
    run(engine, [define("s", end=T0 + 100)])
    out = run(engine, [define("s", operator="best"), define("s", end=T0 + 50),
                       define("s", reset="daily"), define("s", title="Season", end=T0 + 200),
                       define("global", sort="asc"), define("global", title="Everyone")])
    assert [type(o) for o in out] == [errors.BoardConflict, errors.BoardConflict,
                                      errors.BoardConflict, BoardDefinedRecord,
                                      errors.BoardConflict, BoardDefinedRecord]
    assert engine.defs["s"].title == "Season" and engine.defs["s"].end == T0 + 200
    assert engine.defs["global"].title == "Everyone"


@pytest.mark.parametrize(("keys", "named"), [
    ({"follows": "nowhere"}, "boards.x.follows"),
    ({"timezone": "Mars/Olympus"}, "boards.x.timezone"),
    ({"reset": "fortnightly"}, "boards.x.reset"),
    ({"start": T0, "end": T0 - 1}, "boards.x.end"),
    ({"sort": "sideways"}, "boards.x.sort"),
])
def test_a_bad_definition_is_refused_naming_the_key(keys: dict[str, Any], named: str) -> None:
    engine = Engine(RULES)
    out = run(engine, [define("x", **keys)])
    assert isinstance(out[0], errors.InvalidCommand) and named in out[0].message
    assert "x" not in engine.defs


def test_a_follower_board_made_at_run_time_scores_with_the_board_it_follows() -> None:
    engine = Engine(RULES)
    run(engine, [define("weekly", follows="global", reset="weekly")])
    run(engine, [act("a", "1"), act("b", "1"), act("a", "2")])
    assert engine.boards["weekly"].top(2) == [("a", 20), ("b", 10)]


def test_a_user_taken_off_a_board_leaves_its_order_and_may_score_again() -> None:
    engine = Engine(RULES)
    run(engine, [act("a", "1"), act("b", "1"), act("b", "2")])
    out = run(engine, [RemoveStanding(user_id="b", actor="root", board="global", reason="cheat"),
                       act("b", "3"),
                       RemoveStanding(user_id="zed", actor="root", board="global", reason="x"),
                       RemoveStanding(user_id="a", actor="root", board="nope", reason="x")])
    assert isinstance(out[0], StandingRemovedRecord) and out[0].board == "global"
    assert isinstance(out[1], LogRecord) and out[1].new_score == 10  # from nothing again
    assert [type(o) for o in out[2:]] == [errors.NotFound, errors.NotFound]
    assert engine.boards["global"].top(3) == [("a", 10), ("b", 10)]


def test_an_exclusion_from_a_closed_period_is_logged_and_leaves_the_live_board() -> None:
    engine = Engine(RULES)
    run(engine, [act("a", "1"), act("b", "1")])
    before = engine.state_digest()
    out = run(engine, [ExcludeFromPeriod("a", actor="root", board="global", period="p1",
                                         score=40, reason="cheat"),
                       ExcludeFromPeriod("a", actor="root", board="nope", period="p1",
                                         score=40, reason="x")])
    assert isinstance(out[0], PeriodExclusionRecord)
    assert (out[0].period, out[0].prev_score, out[0].actor, out[0].reason) == (
        "p1", 40, "root", "cheat")
    assert type(out[1]) is errors.NotFound
    assert engine.boards["global"].top(3) == [("a", 10), ("b", 10)]
    assert engine.state_digest() != before and engine.last_seq == out[0].seq
