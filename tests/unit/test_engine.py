"""decide / apply: acceptance rules, idempotency, quotas, proofs, freezing, replay."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.core import errors
from scoreboard.core.commands import (
    AdjustScore,
    ClearFlag,
    Command,
    ProofClaims,
    SetFrozen,
    SetNameHidden,
    SubmitAction,
)
from scoreboard.core.engine import ANONYMOUS, Engine, Replay
from scoreboard.core.ranking import MAX_SCORE
from scoreboard.core.records import (
    ActionRecord,
    AdjustRecord,
    FlagRecord,
    FreezeRecord,
    HideNameRecord,
    LogRecord,
    ScoreRow,
    Snapshot,
    StandingRecord,
    UnflagRecord,
    UnfreezeRecord,
    UserRow,
)
from scoreboard.core.recovery import Restore, restore
from scoreboard.core.rules import AbuseLimits, RuleSet

RULES = RuleSet.from_config({
    "COMPLETE_LEVEL": {"points": 10},
    "WIN_MATCH": {"points": 20, "limit": 3, "window": "1h"},
    "DAILY_LOGIN_BONUS": {"points": 5, "limit": 1, "window": "24h"},
    "BOSS_DEFEAT": {"points": 100, "proof": "required"},
})
T0 = 1_700_000_000.0


def act(user: str, cid: str, action: str = "COMPLETE_LEVEL", **kw: Any) -> SubmitAction:
    return SubmitAction(user_id=user, display_name=kw.pop("name", user.title()),
                        board=kw.pop("board", "global"), action_type=action,
                        client_action_id=cid, **kw)


Outcome = LogRecord | Replay | Exception


def run(engine: Engine, cmds: list[Command], now: float = T0,
        log: list[LogRecord] | None = None) -> list[Outcome]:
    """Decide a batch, then apply what it produced, as the writer does after a commit;
    `log` gets every record the batch appends (the monitor's flags and freezes too, and
    first the periods the clock `now` closed)."""
    pending = engine.new_pending()
    engine.roll(now, pending)
    out: list[Outcome] = []
    for c in cmds:
        try:
            out.append(engine.decide(c, now, pending))
        except errors.Rejection as exc:
            out.append(exc)
    for r in pending.records:
        engine.apply(r)
    if log is not None:
        log.extend(pending.records)
    return out


def records(out: list[Any]) -> list[LogRecord]:
    return [o for o in out if isinstance(o, LogRecord)]


@pytest.fixture
def engine() -> Engine:
    return Engine(RULES, ("global", "weekly"))


def test_points_come_from_the_rule(engine: Engine) -> None:
    (r,) = run(engine, [act("alice", "1")])
    assert isinstance(r, ActionRecord)
    assert (r.seq, r.delta, r.prev_score, r.new_score) == (1, 10, 0, 10)
    (r2,) = run(engine, [act("alice", "2", "WIN_MATCH")])
    assert isinstance(r2, LogRecord) and (r2.seq, r2.prev_score, r2.new_score) == (2, 10, 30)
    assert engine.boards["global"].score("alice") == 30


def test_decide_changes_nothing_until_apply(engine: Engine) -> None:
    pending = engine.new_pending()
    engine.decide(act("alice", "1"), T0, pending)
    assert engine.boards["global"].score("alice") is None
    assert engine.last_seq == 0 and not engine.keys


def test_unknown_action_and_board(engine: Engine) -> None:
    out = run(engine, [act("a", "1", "FLY"), act("a", "2", board="nope")])
    assert isinstance(out[0], errors.UnknownAction)
    assert str(out[0]) == ('unknown actionType "FLY"; known: BOSS_DEFEAT, COMPLETE_LEVEL, '
                           "DAILY_LOGIN_BONUS, WIN_MATCH")
    assert isinstance(out[1], errors.NotFound) and str(out[1]) == "no board 'nope'"
    assert engine.last_seq == 0


def test_same_key_same_payload_is_a_replay(engine: Engine) -> None:
    first = records(run(engine, [act("a", "k")]))[0]
    (again,) = run(engine, [act("a", "k")])
    assert again == Replay(first.seq)
    assert engine.boards["global"].score("a") == 10


def test_same_key_in_one_batch_is_a_replay(engine: Engine) -> None:
    out = run(engine, [act("a", "k"), act("a", "k")])
    assert isinstance(out[0], LogRecord) and out[1] == Replay(out[0].seq)


def test_same_key_other_payload_conflicts(engine: Engine) -> None:
    run(engine, [act("a", "k")])
    (out,) = run(engine, [act("a", "k", "WIN_MATCH")])
    assert isinstance(out, errors.IdempotencyConflict)
    (out,) = run(engine, [act("a", "k", metadata={"level": 2})])
    assert isinstance(out, errors.IdempotencyConflict)


def test_keys_are_per_user(engine: Engine) -> None:
    out = run(engine, [act("a", "k"), act("b", "k")])
    assert all(isinstance(o, LogRecord) for o in out)


def test_quota_over_a_rolling_window(engine: Engine) -> None:
    out = run(engine, [act("a", str(i), "WIN_MATCH") for i in range(4)])
    assert [type(o).__name__ for o in out] == ["ActionRecord"] * 3 + ["QuotaExceeded"]
    exc = out[3]
    assert isinstance(exc, errors.QuotaExceeded) and 3599 <= exc.retry_after <= 3600
    (later,) = run(engine, [act("a", "x", "WIN_MATCH")], now=T0 + 1800)
    assert isinstance(later, errors.QuotaExceeded)
    (after,) = run(engine, [act("a", "y", "WIN_MATCH")], now=T0 + 3601)
    assert isinstance(after, LogRecord)
    (other,) = run(engine, [act("b", "z", "WIN_MATCH")], now=T0 + 3601)
    assert isinstance(other, LogRecord)


def test_daily_bonus_once_a_day(engine: Engine) -> None:
    assert isinstance(run(engine, [act("a", "d1", "DAILY_LOGIN_BONUS")])[0], LogRecord)
    assert isinstance(run(engine, [act("a", "d2", "DAILY_LOGIN_BONUS")], now=T0 + 86399)[0],
                      errors.QuotaExceeded)
    assert isinstance(run(engine, [act("a", "d3", "DAILY_LOGIN_BONUS")], now=T0 + 86401)[0],
                      LogRecord)


def proof(sub: str = "a", act_: str = "BOSS_DEFEAT", jti: str = "n1",
          exp: float = T0 + 60) -> ProofClaims:
    return ProofClaims(sub=sub, act=act_, jti=jti, exp=exp)


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        (None, errors.ProofInvalid),
        (proof(sub="b"), errors.ProofInvalid),
        (proof(act_="WIN_MATCH"), errors.ProofInvalid),
        (proof(exp=T0 - 1), errors.ProofInvalid),
    ],
)
def test_proof_required(engine: Engine, claims: ProofClaims | None, error: type) -> None:
    (out,) = run(engine, [act("a", "1", "BOSS_DEFEAT", proof=claims)])
    assert isinstance(out, error)
    assert engine.boards["global"].score("a") is None


def test_a_proof_is_spent_once(engine: Engine) -> None:
    out = run(engine, [act("a", "1", "BOSS_DEFEAT", proof=proof()),
                       act("a", "2", "BOSS_DEFEAT", proof=proof())])
    assert isinstance(out[0], ActionRecord) and out[0].proof_jti == "n1"
    assert isinstance(out[1], errors.ProofReused)
    (later,) = run(engine, [act("a", "3", "BOSS_DEFEAT", proof=proof())])
    assert isinstance(later, errors.ProofReused)


def test_frozen_users_cannot_score_and_leave_every_board(engine: Engine) -> None:
    run(engine, [act("a", "1"), act("a", "2", board="weekly"), act("b", "3")])
    run(engine, [SetFrozen("a", actor="admin", frozen=True, reason="cheating")])
    assert engine.boards["global"].top(10) == [("b", 10)]
    assert engine.boards["weekly"].top(10) == []
    (out,) = run(engine, [act("a", "4")])
    assert isinstance(out, errors.UserFrozen)
    run(engine, [SetFrozen("a", actor="admin", frozen=False, reason="appeal")])
    assert engine.boards["global"].top(10) == [("a", 10), ("b", 10)]


def test_user_records_show_the_score_as_it_stood(engine: Engine) -> None:
    run(engine, [act("a", "1"), act("a", "2")])
    log: list[LogRecord] = []
    run(engine, [SetFrozen("a", actor="admin", frozen=True, reason="r"),
                 SetFrozen("a", actor="admin", frozen=False, reason="r"),
                 ClearFlag("a", actor="admin", reason="r"), SetNameHidden("a", hidden=True)],
        log=log)
    assert [(type(r), r.prev_score, r.new_score) for r in log
            if isinstance(r, StandingRecord)] == [
        (FreezeRecord, 20, 20), (UnfreezeRecord, 20, 20),
        (UnflagRecord, 20, 20), (HideNameRecord, 20, 20),
    ]
    assert len(log) == 4
    assert engine.boards["global"].score("a") == 20


def test_adjustments(engine: Engine) -> None:
    run(engine, [act("a", "1")])
    (r,) = run(engine, [AdjustScore("a", actor="admin", board="global", delta=-4,
                                    reason="refund", client_action_id="adj-1")])
    assert isinstance(r, AdjustRecord) and (r.new_score, r.actor) == (6, "admin")
    (zero,) = run(engine, [AdjustScore("a", actor="admin", board="global", delta=0,
                                       reason="x", client_action_id="adj-2")])
    assert isinstance(zero, errors.InvalidCommand)


def test_adjusting_a_user_never_seen_needs_create(engine: Engine) -> None:
    def adjust(cid: str, **kw: Any) -> AdjustScore:
        return AdjustScore("typo", actor="admin", board="global", delta=5, reason="r",
                           client_action_id=cid, **kw)

    (missing,) = run(engine, [adjust("adj-1")])
    assert isinstance(missing, errors.NotFound) and '"create": true' in str(missing)
    assert "typo" not in engine.boards["global"] and engine.last_seq == 0
    (made,) = run(engine, [adjust("adj-2", create=True)])
    assert isinstance(made, LogRecord) and made.new_score == 5
    (again,) = run(engine, [adjust("adj-3")])  # known now
    assert isinstance(again, LogRecord) and again.new_score == 10


def test_scores_stay_in_the_exact_range(engine: Engine) -> None:
    run(engine, [AdjustScore("a", actor="admin", board="global", delta=MAX_SCORE - 5,
                             reason="x", client_action_id="big", create=True)])
    (out,) = run(engine, [act("a", "1")])
    assert isinstance(out, errors.InvalidCommand)
    assert engine.boards["global"].score("a") == MAX_SCORE - 5


def test_hidden_name_shows_as_anonymous(engine: Engine) -> None:
    run(engine, [act("a", "1", name="Alice")])
    run(engine, [SetNameHidden("a", hidden=True)])
    assert engine.display_name("a") == ANONYMOUS
    assert engine.names["a"] == "Alice"
    run(engine, [SetNameHidden("a", hidden=False)])
    assert engine.display_name("a") == "Alice"


def test_expire_forgets_old_keys_but_not_recent_ones() -> None:
    e = Engine(RULES, retention=100.0)
    run(e, [act("a", "old")], now=T0)
    run(e, [act("a", "new")], now=T0 + 150)
    e.expire(T0 + 150)
    assert ("a", "old") not in e.keys and ("a", "new") in e.keys


def test_key_memory_is_capped() -> None:
    e = Engine(RULES, max_keys=5)
    run(e, [act("a", str(i)) for i in range(20)])
    assert len(e.keys) == 5


def test_fingerprints_without_metadata_match_the_digest_and_tell_types_apart() -> None:
    # Plain (kind, board, what) fingerprints are memoised; they must stay the digest a
    # snapshot of another process holds, and 1, 1.0 and True must stay apart.
    from scoreboard.core import idempotency as idem

    for what in ("COMPLETE_LEVEL", 1, 1.0, True, -7):
        for extra in (None, {}):
            assert idem.fingerprint("action", "global", what, extra) \
                == idem._digest("action", "global", what, None)
    assert len({idem.fingerprint("adjust", "global", w, None) for w in (1, 1.0, True)}) == 3
    assert idem.fingerprint("action", "global", "A", {"k": 1}) \
        != idem.fingerprint("action", "global", "A", None)


def rows_of(engine: Engine, users: list[str]) -> Snapshot:
    """What storage would hold for the engine: current rows, no recent records."""
    return Snapshot(
        last_seq=engine.last_seq,
        scores=[ScoreRow(b, u, s, q) for b, rk in engine.boards.items() for u, s, q in rk.rows()],
        users=[UserRow(u, engine.names.get(u), u in engine.frozen, u in engine.anonymous)
               for u in users],
        recent=[],
    )


def test_restore_from_rows_equals_live_state(engine: Engine) -> None:
    run(engine, [act("a", "1"), act("b", "2", "WIN_MATCH"), act("c", "3")])
    run(engine, [SetFrozen("c", actor="x", frozen=True, reason="r")])
    other = Engine(RULES, ("global", "weekly"))
    restore(other, rows_of(engine, ["a", "b", "c"]))
    assert other.state_digest() == engine.state_digest()


def test_restore_in_chunks_equals_restore_at_once(engine: Engine) -> None:
    run(engine, [act(u, b, board=b) for u in "abcdefg" for b in ("global", "weekly")])
    run(engine, [SetFrozen("c", actor="x", frozen=True, reason="r"), SetNameHidden("d", True)])
    snap = rows_of(engine, list("abcdefg"))
    at_once, chunked = Engine(RULES, ("global", "weekly")), Engine(RULES, ("global", "weekly"))
    restore(at_once, snap)
    sink = Restore(chunked)
    for i in range(0, len(snap.scores), 3):
        sink.scores(snap.scores[i:i + 3])
    for i in range(0, len(snap.users), 2):
        sink.users(snap.users[i:i + 2])
    sink.end(snap.last_seq)
    assert chunked.state_digest() == at_once.state_digest() == engine.state_digest()
    assert (sink.score_rows, sink.user_rows) == (14, 7)
    # names and rankings share one string per user
    global_ids = {id(u) for u, _, _ in chunked.boards["global"].rows()}
    assert all(id(u) in global_ids for u in chunked.names)


def test_a_frozen_user_stays_off_a_board_they_join_after_a_restore(engine: Engine) -> None:
    run(engine, [act("a", "1"), act("b", "2")])
    run(engine, [SetFrozen("a", actor="x", frozen=True, reason="r")])
    other = Engine(RULES, ("global", "weekly"))
    restore(other, rows_of(engine, ["a", "b"]))
    for e in (engine, other):  # an administrator may still adjust a frozen user
        run(e, [AdjustScore("a", actor="adm", board="weekly", delta=5, reason="r",
                            client_action_id="adj")])
    assert other.boards["weekly"].top(5) == engine.boards["weekly"].top(5) == []
    assert other.state_digest() == engine.state_digest()


def test_restore_needs_an_empty_engine(engine: Engine) -> None:
    run(engine, [act("a", "1")])
    with pytest.raises(ValueError):
        Restore(engine)


def test_abuse_flag_trips_at_its_threshold() -> None:
    e = Engine(RULES, abuse=AbuseLimits(actions_per_minute=3))
    out = run(e, [act("a", str(i)) for i in range(3)], now=T0)
    assert all(type(o) is ActionRecord for o in out)
    assert "a" not in e.flags
    out = run(e, [act("a", "3")], now=T0 + 1)
    assert isinstance(out[0], LogRecord)
    assert [type(r) for r in e_records(e, out)] == [ActionRecord]
    assert e.flags["a"].startswith("4 actions within a minute")
    assert "a" not in e.frozen  # flag only: auto_freeze is off
    run(e, [act("a", "4")], now=T0 + 2)  # already flagged: no second flag record
    assert e.last_seq == 6


def e_records(e: Engine, out: list[Outcome]) -> list[LogRecord]:
    return records(out)


def test_abuse_auto_freeze_and_clear() -> None:
    e = Engine(RULES, abuse=AbuseLimits(points_per_minute=25, auto_freeze=True))
    pending = e.new_pending()
    for i in range(3):
        e.decide(act("a", str(i)), T0, pending)
    kinds = [type(r) for r in pending.records]
    assert kinds == [ActionRecord, ActionRecord, ActionRecord, FlagRecord, FreezeRecord]
    for r in pending.records:
        e.apply(r)
    assert "a" in e.frozen and "30 points" in e.flags["a"]
    assert e.boards["global"].top(5) == []
    (out,) = run(e, [act("a", "x")], now=T0 + 120)
    assert isinstance(out, errors.UserFrozen)
    run(e, [ClearFlag("a", actor="admin", reason="ok"),
            SetFrozen("a", actor="admin", frozen=False, reason="ok")], now=T0 + 120)
    assert "a" not in e.flags and "a" not in e.frozen
    assert e.boards["global"].top(5) == [("a", 30)]


def test_abuse_counters_are_per_minute() -> None:
    e = Engine(RULES, abuse=AbuseLimits(actions_per_minute=2))
    run(e, [act("a", "1"), act("a", "2")], now=T0)
    run(e, [act("a", "3"), act("a", "4")], now=T0 + 60)
    assert "a" not in e.flags
    e.expire(T0 + 180)
    assert e.abuse is not None and len(e.abuse) == 0


# -- the log is the state ---------------------------------------------------------------

users = st.sampled_from(["ann", "bob", "cyd", "dee"])
commands = st.one_of(
    st.builds(lambda u, c, a, b: act(u, str(c), a, board=b), users, st.integers(0, 12),
              st.sampled_from(["COMPLETE_LEVEL", "WIN_MATCH", "DAILY_LOGIN_BONUS", "FLY"]),
              st.sampled_from(["global", "weekly"])),
    st.builds(lambda u, d, c, n: AdjustScore(u, actor="adm", board="global", delta=d,
                                             reason="r", client_action_id=f"adj{c}", create=n),
              users, st.integers(-30, 30), st.integers(0, 5), st.booleans()),
    st.builds(lambda u, f: SetFrozen(u, actor="adm", frozen=f, reason="r"), users, st.booleans()),
    st.builds(lambda u, h: SetNameHidden(u, hidden=h), users, st.booleans()),
    st.builds(lambda u: ClearFlag(u, actor="adm", reason="r"), users),
)
ABUSE = AbuseLimits(actions_per_minute=4, points_per_minute=60, auto_freeze=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(commands, min_size=1, max_size=6), max_size=12),
       st.lists(st.floats(0, 4000), min_size=12, max_size=12))
def test_replaying_the_log_rebuilds_the_live_state(
    batches: list[list[Command]], gaps: list[float]
) -> None:
    live = Engine(RULES, ("global", "weekly"), abuse=ABUSE)
    log: list[LogRecord] = []
    now = T0
    for batch, gap in zip(batches, gaps, strict=False):
        now += gap
        run(live, batch, now, log)
    replayed = Engine(RULES, ("global", "weekly"), abuse=ABUSE)
    for r in log:
        replayed.apply(r)
    assert replayed.state_digest() == live.state_digest()
    assert replayed.keys.digest() == live.keys.digest()
    # what later decisions depend on is the same once both forget what has lapsed
    live.expire(now)
    replayed.expire(now)
    assert replayed.memory_digest() == live.memory_digest()
    assert [r.seq for r in log] == list(range(1, len(log) + 1))
    for ranking in live.boards.values():
        rows = [(u, s, q) for u, s, q in ranking.rows() if u not in live.frozen]
        expected = [u for u, _, _ in sorted(rows, key=lambda t: (-t[1], t[2]))]
        assert [u for u, _ in ranking.top(100)] == expected


def test_privacy_set_before_the_first_score_applies_from_it(engine: Engine) -> None:
    log: list[LogRecord] = []
    (hide,) = run(engine, [SetNameHidden("zed", hidden=True)], log=log)
    assert isinstance(hide, HideNameRecord)
    assert "zed" in engine.anonymous and "zed" not in engine.boards["global"]
    (first,) = run(engine, [act("zed", "1", name="Zed")], log=log)
    assert isinstance(first, LogRecord) and first.display_name == "Zed"  # the log keeps it
    assert engine.display_name("zed") == ANONYMOUS and engine.names["zed"] == "Zed"
    # freezing still needs a user the service knows
    (unknown,) = run(engine, [SetFrozen("nobody", actor="x", frozen=True, reason="r")])
    assert isinstance(unknown, errors.NotFound)
    replayed = Engine(RULES, ("global", "weekly"))
    for r in log:
        replayed.apply(r)
    assert replayed.state_digest() == engine.state_digest()
    assert replayed.display_name("zed") == ANONYMOUS


def test_a_first_score_without_a_name_writes_no_user_row(engine: Engine) -> None:
    """A missing users row reads as no name and no standing: a nameless user's first
    score writes none, yet the groups decided on top of it know the user."""
    pending = engine.new_pending()
    first = engine.decide(act("zed", "1", name=None), T0, pending)
    named = engine.decide(act("amy", "1", name="Amy"), T0, pending)
    assert isinstance(first, LogRecord) and isinstance(named, LogRecord)
    assert engine.batch(pending).users == (UserRow("amy", "Amy", False, False),)
    later = engine.new_pending(pending)  # decided while the first group commits
    assert isinstance(engine.decide(SetFrozen("zed", actor="x", frozen=True, reason="r"),
                                    T0, later), FreezeRecord)
    for r in [*pending.records, *later.records]:
        engine.apply(r)
    other = Engine(RULES, ("global", "weekly"))
    restore(other, rows_of(engine, ["zed", "amy"]))
    assert other.state_digest() == engine.state_digest()


def test_privacy_before_the_first_score_survives_a_restore(engine: Engine) -> None:
    pending = engine.new_pending()
    engine.decide(SetNameHidden("zed", hidden=True), T0, pending)
    stored = engine.batch(pending).users  # the row storage writes with the record
    assert stored == (UserRow("zed", None, False, True),)
    for r in pending.records:
        engine.apply(r)
    other = Engine(RULES, ("global", "weekly"))
    restore(other, Snapshot(engine.last_seq, [], list(stored), []))
    assert other.state_digest() == engine.state_digest()
    for e in (engine, other):
        run(e, [act("zed", "1", name="Zed")])
        assert e.display_name("zed") == ANONYMOUS
    assert other.state_digest() == engine.state_digest()
