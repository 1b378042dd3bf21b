"""Boards with time in the engine (SPEC §11): operators, values from trusted sources,
follows, periods closed by the writer's clock, closed boards; replay equals live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.core import errors
from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import Command, ProofClaims, ResetBoard, SetFrozen, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.records import ActionRecord, LogRecord, PeriodClosedRecord
from scoreboard.core.rules import RuleSet
from tests.unit.test_engine import run as run_batch

RULES = RuleSet.from_config({
    "WIN": {"points": 10},
    "LAP": {"value": "proof", "min": 1, "max": 600_000},
})


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


T0 = at(2026, 12, 4, 12)


def run(engine: Engine, cmds: list[Command], now: float = T0,
        log: list[LogRecord] | None = None) -> list[Any]:
    """One batch as the writer runs it (periods the clock passed close first), at T0."""
    return run_batch(engine, cmds, now, log)


def act(user: str, cid: str, action: str = "WIN", board: str = "global", **kw: Any
        ) -> SubmitAction:
    return SubmitAction(user_id=user, display_name=None, board=board, action_type=action,
                        client_action_id=cid, **kw)


def lap(user: str, cid: str, ms: int, board: str = "laps") -> SubmitAction:
    return act(user, cid, "LAP", board, proof=ProofClaims(user, "LAP", f"j-{user}-{cid}",
                                                           T0 + 10**9, val=ms))


def test_best_and_latest_in_both_orders() -> None:
    engine = Engine(RULES, [BoardDef("laps", sort="asc", operator="best"),
                            BoardDef("high", operator="best"),
                            BoardDef("last", sort="asc", operator="latest")])
    run(engine, [lap("a", "1", 70_000), lap("b", "1", 65_000), lap("a", "2", 80_000),
                 lap("a", "3", 64_000, "high"), lap("a", "4", 60_000, "high"),
                 lap("a", "5", 70_000, "last"), lap("a", "6", 90_000, "last")])
    assert engine.boards["laps"].top(2) == [("b", 65_000), ("a", 70_000)]  # lower is better
    assert engine.boards["high"].top(1) == [("a", 64_000)]
    assert engine.boards["last"].top(1) == [("a", 90_000)]


def test_an_unchanged_best_keeps_who_reached_it_first() -> None:
    engine = Engine(RULES, [BoardDef("laps", sort="asc", operator="best")])
    run(engine, [lap("a", "1", 60_000), lap("b", "1", 60_000)])
    run(engine, [lap("a", "2", 61_000)])  # no better: a keeps the earlier seq
    assert engine.boards["laps"].top(2) == [("a", 60_000), ("b", 60_000)]


def test_values_come_from_a_proof_or_a_trusted_batch_within_bounds() -> None:
    engine = Engine(RULES, [BoardDef("laps", sort="asc", operator="best")])
    no_value, too_big, trusted = run(engine, [
        act("a", "1", "LAP", "laps"), lap("b", "1", 700_000),
        act("c", "1", "LAP", "laps", value=55_000)])
    assert isinstance(no_value, errors.InvalidCommand) and "needs a proof" in str(no_value)
    assert isinstance(too_big, errors.InvalidCommand) and "from 1 to 600000" in str(too_big)
    assert isinstance(trusted, ActionRecord) and trusted.new_score == 55_000


def test_competition_ranks_in_the_engine() -> None:
    engine = Engine(RULES, [BoardDef("c", ranks="competition")])
    run(engine, [act(u, "1", board="c") for u in "abc"] + [act("a", "2", board="c")])
    assert [engine.boards["c"].rank(u) for u in "abc"] == [1, 2, 2]


def test_one_action_scores_on_every_follower_in_the_same_record() -> None:
    engine = Engine(RULES, [BoardDef("weekly", reset="weekly", follows=("global",)),
                            BoardDef("laps", sort="asc", operator="best"),
                            BoardDef("season", follows=("weekly",))])
    (record,) = run(engine, [act("a", "1")])
    assert isinstance(record, ActionRecord) and record.board == "global"
    assert [b for b, _, _ in record.also] == ["weekly", "season"]
    assert {b: engine.boards[b].score("a") for b in ("global", "weekly", "season")} == {
        "global": 10, "weekly": 10, "season": 10}
    assert engine.boards["global"].reached_seq("a") == engine.boards["season"].reached_seq("a")
    assert "a" not in engine.boards["laps"]


def test_the_clock_closes_a_period_and_the_next_starts_empty() -> None:
    engine = Engine(RULES, [BoardDef("daily", reset="daily")])
    run(engine, [act("a", "1", board="daily"), act("b", "1", board="daily")])
    assert engine.periods["daily"] is not None and engine.periods["daily"].id == "2026-12-04"
    log: list[LogRecord] = []
    (after,) = run(engine, [act("a", "2", board="daily")], at(2026, 12, 5, 0, 0, 1), log)
    closed = log[0]
    assert isinstance(closed, PeriodClosedRecord) and closed.period == "2026-12-04"
    assert closed.next_period == "2026-12-05" and closed.seq < after.seq
    assert after.prev_score == 0 and engine.boards["daily"].top(5) == [("a", 10)]
    ((record, final),) = engine.take_closed()
    assert record is closed and list(final.ranks()) == [("a", 10, 1), ("b", 10, 2)]
    assert engine.take_closed() == []


def test_a_close_records_the_final_top_with_groups_still_committing() -> None:
    """The standings in the record count the groups decided before the close and not
    yet committed: their scores, and who they froze."""
    engine = Engine(RULES, [BoardDef("c", ranks="competition")])
    run(engine, [act(u, "1", board="c") for u in "abcd"] + [act("a", "2", board="c")])
    first = engine.new_pending()
    engine.decide(act("b", "2", board="c"), T0, first)
    engine.decide(act("e", "1", board="c"), T0, first)
    engine.decide(SetFrozen("d", actor="adm", frozen=True, reason="r"), T0, first)
    second = first.then()
    closed = engine.decide(ResetBoard("", "adm", "c", "end"), T0 + 1, second)
    assert isinstance(closed, PeriodClosedRecord)
    assert closed.top == (("a", 20, 1), ("b", 20, 1), ("c", 10, 3), ("e", 10, 3))
    assert closed.total_users == 4


def test_a_season_refuses_before_start_and_closes_at_end() -> None:
    engine = Engine(RULES, [BoardDef("cup", start=at(2026, 12, 1), end=at(2026, 12, 10))])
    (early,) = run(engine, [act("a", "1", board="cup")], at(2026, 11, 30))
    assert isinstance(early, errors.BoardClosed) and early.code == "BOARD_CLOSED"
    run(engine, [act("a", "2", board="cup")])
    assert engine.periods["cup"] is not None and engine.periods["cup"].id == "season"
    log: list[LogRecord] = []
    (late,) = run(engine, [act("a", "3", board="cup")], at(2026, 12, 10), log)
    assert isinstance(late, errors.BoardClosed)
    assert isinstance(log[0], PeriodClosedRecord) and log[0].next_period is None
    assert "cup" in engine.ended and len(engine.boards["cup"]) == 0


def test_a_manual_reset_takes_a_suffix_and_ends_with_the_schedule() -> None:
    engine = Engine(RULES, [BoardDef("weekly", reset="weekly")])
    run(engine, [act("a", "1", board="weekly")])
    (first,) = run(engine, [ResetBoard("", "admin", "weekly", "test")], T0 + 60)
    (second,) = run(engine, [ResetBoard("", "admin", "weekly", "again")], T0 + 120)
    assert (first.period, first.next_period, second.next_period) == (
        "2026-W49", "2026-W49.2", "2026-W49.3")
    assert second.next_ends_at == at(2026, 12, 7) and first.reason == "test"


# -- replay equals live, across rollovers --------------------------------------------------

BOARDS = [BoardDef("daily", reset="daily", follows=("global",), ranks="competition"),
          BoardDef("laps", sort="asc", operator="best", reset="0 */6 * * *"),
          BoardDef("cup", start=at(2026, 12, 4), end=at(2026, 12, 6), operator="latest")]
step = st.tuples(
    st.integers(0, 20 * 3600),  # seconds the clock moves on before the batch
    st.lists(st.tuples(st.sampled_from(["global", "daily", "laps", "cup"]),
                       st.sampled_from("abcd"), st.integers(1, 1000)), max_size=4),
    st.booleans(),  # an administrator resets the daily board
)


@settings(max_examples=60, deadline=None)
@given(st.lists(step, max_size=12))
def test_replaying_the_log_equals_live_state_across_rollovers(steps: list[Any]) -> None:
    live = Engine(RULES, BOARDS)
    log: list[LogRecord] = []
    now, n = T0, 0
    for wait, actions, reset in steps:
        now += wait
        cmds: list[Command] = []
        for board, user, v in actions:
            n += 1
            cmds.append(act(user, str(n), "LAP", board, value=v) if board in ("laps", "cup")
                        else act(user, str(n), board=board))
        if reset:
            cmds.append(ResetBoard("", "admin", "daily", "replay"))
        run(live, cmds, now, log)
    replayed = Engine(RULES, BOARDS)
    for r in log:
        replayed.apply(r)
    assert replayed.state_digest() == live.state_digest()
    assert [r.seq for r in log] == list(range(1, len(log) + 1))


def test_a_snapshot_keeps_periods_ended_seasons_and_an_ascending_board() -> None:
    from scoreboard.core import image
    from scoreboard.storage import snapshots

    defs = [BoardDef("laps", sort="asc", operator="best", reset="daily"),
            BoardDef("cup", end=T0 + 60)]
    engine = Engine(RULES, defs)
    run(engine, [lap("a", "1", 70_000), lap("b", "1", 65_000), act("a", "2", board="cup")])
    run(engine, [lap("c", "1", 90_000)], now=T0 + 120)  # the cup's season ends first
    assert "cup" in engine.ended and engine.periods["laps"] is not None
    again = Engine(RULES, defs)
    stored = snapshots.encode(image.take(engine), created_at=T0)
    image.restore(again, snapshots.decode(stored))
    engine.take_closed()
    assert again.state_digest() == engine.state_digest()
    assert again.boards["laps"].top(3) == [("b", 65_000), ("a", 70_000), ("c", 90_000)]
