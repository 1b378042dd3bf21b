"""An action on a board that others follow (SPEC §11): decided once, scored on every
follower by its own operator and order, in one record. Checked against a plain model
of the operators, with groups decided on top of groups still committing (the writer's
pipeline), and the log, through the store's row codec, replays to the same state."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.core import errors
from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import (
    AdjustScore,
    Command,
    RemoveStanding,
    ResetBoard,
    SetFrozen,
    SetNameHidden,
    SubmitAction,
)
from scoreboard.core.engine import Engine
from scoreboard.core.records import ActionRecord, LogRecord
from scoreboard.core.rules import RuleSet
from scoreboard.storage import rows
from tests.unit.test_engine_boards import T0, at

RULES = RuleSet.from_config({"LAP": {"value": "proof", "min": -50, "max": 1000}})
BOARDS = [
    BoardDef("weekly", reset="weekly", follows=("global",)),
    BoardDef("best", operator="best", follows=("global",), ranks="competition"),
    BoardDef("fastest", sort="asc", operator="latest", follows=("best",)),  # via `best`
    BoardDef("season", start=at(2026, 12, 1), end=at(2026, 12, 31), follows=("global",)),
    BoardDef("over", end=at(2026, 12, 1), follows=("global",)),  # its season has ended
]
OPERATORS = {"global": ("sum", False), "weekly": ("sum", False), "best": ("best", False),
             "fastest": ("latest", True), "season": ("sum", False)}
SCORES_ON = {"global": ["global", "weekly", "best", "fastest", "season"],
             "weekly": ["weekly"], "best": ["best", "fastest"], "fastest": ["fastest"]}

action = st.tuples(st.sampled_from(sorted(SCORES_ON)), st.sampled_from("abc"),
                   st.integers(-50, 1000))


def lap(board: str, user: str, value: int, cid: str) -> SubmitAction:
    return SubmitAction(user, None, board, "LAP", cid, value=value)


def model(actions: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """Every board's scores after `actions`, by the operators alone."""
    boards: dict[str, dict[str, int]] = {b: {} for b in OPERATORS}
    for board, user, value in actions:
        for b in SCORES_ON[board]:
            operator, ascending = OPERATORS[b]
            old = boards[b].get(user)
            if old is None or operator == "latest":
                boards[b][user] = value
            elif operator == "sum":
                boards[b][user] = old + value
            else:
                boards[b][user] = min(old, value) if ascending else max(old, value)
    return boards


def decide(engine: Engine, cmds: list[Command], after: Any = None) -> Any:
    pending = engine.new_pending(after)
    engine.roll(T0, pending)
    for cmd in cmds:
        engine.decide(cmd, T0, pending)
    return pending


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(action, min_size=1, max_size=5), min_size=1, max_size=6))
def test_followers_score_by_their_operators_and_replay_the_same(
        groups: list[list[tuple[str, str, int]]]) -> None:
    live = Engine(RULES, BOARDS)
    log: list[LogRecord] = []
    n = 0
    # Groups decided in pairs: the second on top of the first before it commits.
    pairs = [(groups[i], groups[i + 1] if i + 1 < len(groups) else []) for i in
             range(0, len(groups), 2)]
    for first, second in pairs:
        cmds = []
        for group in (first, second):
            cmds.append([lap(b, u, v, str(n := n + 1)) for b, u, v in group])
        head = decide(live, cmds[0])
        tail = decide(live, cmds[1], head)
        for pending in (head, tail):
            batch = live.batch(pending)
            for r in pending.records:
                live.apply(r)
            tail.detach()
            log.extend(pending.records)
            for board, user, score, seq in batch.scores:  # the rows the store writes
                ranking = live.boards[board]
                assert (ranking.score(user), ranking.reached_seq(user)) == (score, seq)

    want = model([a for g in groups for a in g])
    for board, scores in want.items():
        assert {u: s for u, s, _ in live.boards[board].rows()} == scores, board
    assert len(live.boards["over"]) == 0  # a season that ended scores nothing
    for r in log:
        assert isinstance(r, ActionRecord)
        assert [b for b, _, _ in r.also] == SCORES_ON[r.board][1:]

    replayed = Engine(RULES, BOARDS)
    for r in log:
        replayed.apply(rows.record_from_row(rows.record_row(r)))
    assert replayed.state_digest() == live.state_digest()


def test_a_refused_action_scores_on_no_follower() -> None:
    engine = Engine(RULES, BOARDS)
    pending = engine.new_pending()
    with pytest.raises(errors.InvalidCommand):
        engine.decide(lap("global", "a", 5000, "1"), T0, pending)  # over the rule's max
    assert not pending.scores and not pending.records


# -- a committed group applied at once ------------------------------------------------------

def command(kind: str, user: str, value: int, n: int) -> Command:
    """One command of the kinds whose order within a group could matter to a followed
    board: actions (some renaming the user), adjustments, freezes, hidden names, resets
    and a user taken off a board."""
    cid = str(n)
    match kind:
        case "global" | "weekly" | "best" | "fastest":
            return SubmitAction(user, f"{user}-{value % 3}" if value % 2 else None, kind,
                                "LAP", cid, value=value)
        case "adjust":
            return AdjustScore(user, "admin", "weekly", value or 1, "test", cid, create=True)
        case "freeze" | "unfreeze":
            return SetFrozen(user, "admin", kind == "freeze", "test")
        case "hide" | "show":
            return SetNameHidden(user, kind == "hide")
        case "reset":
            return ResetBoard("", "admin", "weekly", "test")
        case _:
            return RemoveStanding(user, "admin", "best", "test")


KINDS = [*SCORES_ON, *SCORES_ON, "adjust", "freeze", "unfreeze", "hide", "show", "reset",
         "remove"]
step = st.tuples(st.sampled_from(KINDS), st.sampled_from("abcd"), st.integers(-50, 1000))


def standing(engine: Engine) -> dict[str, Any]:
    """The state, with what `state_digest` leaves out: each board's version, and its
    users in the order they joined it (slots)."""
    return {"digest": engine.state_digest(),
            "boards": {b: (r.version, r.export()) for b, r in engine.boards.items()}}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(step, max_size=8), min_size=1, max_size=8),
       st.lists(st.integers(0, 4 * 86_400), min_size=8, max_size=8))
def test_a_group_applied_at_once_equals_one_applied_record_by_record(
        groups: list[list[tuple[str, str, int]]], waits: list[int]) -> None:
    at_once, by_record = Engine(RULES, BOARDS), Engine(RULES, BOARDS)
    now, n = T0, 0
    # Groups decided in pairs (the second on top of the first before it commits), each
    # engine on its own state: they decide alike only while their states agree.
    for i in range(0, len(groups), 2):
        now += waits[i]
        cmds = []
        for group in groups[i:i + 2]:
            cmds.append([command(k, u, v, n := n + 1) for k, u, v in group])
        decided = []
        for engine in (at_once, by_record):
            head = engine.new_pending()
            engine.roll(now, head)
            for cmd in cmds[0]:
                with contextlib.suppress(errors.Rejection):
                    engine.decide(cmd, now, head)
            tail = engine.new_pending(head)
            engine.roll(now, tail)
            for cmd in cmds[1] if len(cmds) > 1 else []:
                with contextlib.suppress(errors.Rejection):
                    engine.decide(cmd, now, tail)
            decided.append((head, tail))
        for (a, b) in zip(*decided, strict=True):
            assert a.records == b.records
            at_once.apply_group(a.records, a)
            at_once.settle()
            for r in b.records:
                by_record.apply(r)
            by_record.settle()
            for _, tail in decided:
                tail.detach()
            assert standing(at_once) == standing(by_record)


def test_a_reset_within_a_group_hides_the_scores_before_it() -> None:
    """An administrator's reset between two actions of one user, in one group and in
    the group decided on top of it: the second scores on the new period from nothing."""
    for split in (False, True):
        engine = Engine(RULES, BOARDS)
        first = [lap("global", "a", 7, "1"), ResetBoard("", "admin", "weekly", "test")]
        second = [lap("global", "a", 5, "2")]
        if split:
            head = decide(engine, first)
            tail = decide(engine, second, head)
        else:
            head = tail = decide(engine, first + second)
        (action,) = [r for r in tail.records if isinstance(r, ActionRecord) and r.seq > 2]
        assert dict((b, (old, new)) for b, old, new in action.also)["weekly"] == (0, 5)
        for pending in (head,) if head is tail else (head, tail):
            engine.apply_group(pending.records, pending)
            tail.detach()
        assert engine.boards["weekly"].score("a") == 5
        assert engine.boards["global"].score("a") == 12
