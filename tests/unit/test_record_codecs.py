"""Record classes ↔ the log's rows and the event feed's JSON: every kind has an encoding,
and each encodes exactly as the flat record of earlier releases did (existing databases
and feed consumers read the same)."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoreboard.core import records
from scoreboard.core.boards import BoardDef
from scoreboard.core.engine import Engine
from scoreboard.core.records import (
    RECORD_TYPES,
    ActionRecord,
    AdjustRecord,
    BoardDefinedRecord,
    FlagRecord,
    FreezeRecord,
    HideNameRecord,
    Kind,
    LogRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    RevokeTokensRecord,
    ShowNameRecord,
    StandingRemovedRecord,
    UnflagRecord,
    UnfreezeRecord,
    kind_of,
)
from scoreboard.core.rules import RuleSet
from scoreboard.events import wire
from scoreboard.storage import rows
from scoreboard.storage.base import StoreUnavailable

AT = 1_700_000_000.25
ISO = "2023-11-14T22:13:20.250Z"
HEAD: dict[str, Any] = {"at": AT, "user_id": "amy", "display_name": "Amy"}
# Moderation and name records leave the score as it stood and show it: amy's global
# score after the adjustment below.
AS_IT_STOOD = {"prev_score": 10, "new_score": 10}
BY_ADMIN = {"board": "global", **AS_IT_STOOD, "actor": "admin-1", "reason": "spam"}

# One record of every kind, and the row an earlier release stored for it (moderation and
# name records with the user's score, as releases since the issue 20 fixes store it).
SAMPLES: list[tuple[LogRecord, tuple[Any, ...]]] = [
    (ActionRecord(seq=1, board="weekly", **HEAD, delta=10, prev_score=5, new_score=15,
                  client_action_id="c1", action_type="WIN", metadata={"level": 3},
                  proof_jti="j1", proof_exp=AT + 60),
     (1, AT, "weekly", "amy", "action", "WIN", "c1", 10, 5, 15, "Amy", '{"level":3}',
      None, None, "j1", AT + 60)),
    (AdjustRecord(seq=2, board="global", **HEAD, delta=-5, prev_score=15, new_score=10,
                  client_action_id="a1", actor="admin-1", reason="refund"),
     (2, AT, "global", "amy", "adjust", None, "a1", -5, 15, 10, "Amy", None,
      "admin-1", "refund", None, None)),
    *[(cls(seq=3, **HEAD, **BY_ADMIN),
       (3, AT, "global", "amy", kind, None, None, 0, 10, 10, "Amy", None, "admin-1", "spam",
        None, None))
      for cls, kind in [(FreezeRecord, "freeze"), (UnfreezeRecord, "unfreeze"),
                        (FlagRecord, "flag"), (UnflagRecord, "unflag"),
                        (RevokeTokensRecord, "revoke_tokens")]],
    (StandingRemovedRecord(seq=3, **HEAD, board="weekly", prev_score=10, new_score=0,
                           actor="admin-1", reason="spam"),
     (3, AT, "weekly", "amy", "standing_removed", None, None, 0, 10, 0, "Amy", None,
      "admin-1", "spam", None, None)),
    *[(cls(seq=4, board="global", **HEAD, **AS_IT_STOOD),
       (4, AT, "global", "amy", kind, None, None, 0, 10, 10, "Amy", None, None, None, None,
        None))
      for cls, kind in [(HideNameRecord, "hide_name"), (ShowNameRecord, "show_name")]],
    (PeriodExclusionRecord(seq=5, **HEAD, board="weekly", prev_score=10, new_score=10,
                           actor="admin-1", reason="cheat", period="2023-W46"),
     (5, AT, "weekly", "amy", "period_exclusion", None, None, 0, 10, 10, "Amy",
      '{"period":"2023-W46"}', "admin-1", "cheat", None, None)),
    (PeriodClosedRecord(seq=5, at=AT, board="weekly", user_id="", display_name=None,
                        period="2023-W46", starts_at=AT - 60, ends_at=AT, next_period="2023-W47",
                        next_starts_at=AT, next_ends_at=AT + 60, actor="admin-1", reason="r",
                        top=(("amy", 30, 1), ("bob", 30, 1), ("cy", 5, 3)), total_users=7),
     (5, AT, "weekly", "", "period_closed", None, None, 0, 0, 0, None,
      f'{{"period":"2023-W46","startsAt":{AT - 60},"endsAt":{AT},"next":"2023-W47",'
      f'"nextStartsAt":{AT},"nextEndsAt":{AT + 60},'
      '"top":[["amy",30,1],["bob",30,1],["cy",5,3]],"totalUsers":7}', "admin-1", "r",
      None, None)),
    (BoardDefinedRecord(seq=6, at=AT, board="laps", user_id="", display_name=None,
                        definition=BoardDef("laps", "Laps", "asc", "best", ("global",),
                                            "weekly", "Europe/Paris", None, AT, "competition"),
                        actor="admin-1", reason="new"),
     (6, AT, "laps", "", "board_defined", None, None, 0, 0, 0, None,
      '{"title":"Laps","sort":"asc","operator":"best","follows":["global"],"reset":"weekly",'
      f'"timezone":"Europe/Paris","start":null,"end":{AT},"ranks":"competition"}}',
      "admin-1", "new", None, None)),
]
IDS = [type(r).__name__ for r, _ in SAMPLES]


def leaf_record_classes() -> set[type[LogRecord]]:
    """The record classes nothing derives from: the kinds. (From the module, not from
    `__subclasses__`, which also lists what `dataclass(slots=True)` replaced.)"""
    found = {c for c in vars(records).values() if isinstance(c, type) and issubclass(c, LogRecord)}
    return {c for c in found if not any(o is not c and issubclass(o, c) for o in found)}


def test_every_record_class_is_a_kind_and_every_kind_a_class() -> None:
    assert set(RECORD_TYPES) == set(Kind)
    assert set(RECORD_TYPES.values()) == leaf_record_classes()
    assert {type(r) for r, _ in SAMPLES} == set(RECORD_TYPES.values())


@pytest.mark.parametrize("table", [rows.CODECS, wire.ENCODERS], ids=["rows", "events"])
def test_every_codec_encodes_every_record_class(table: dict[type, Any]) -> None:
    assert set(table) == set(RECORD_TYPES.values())


@pytest.mark.parametrize(("record", "row"), SAMPLES, ids=IDS)
def test_rows_are_those_of_the_flat_record(record: LogRecord, row: tuple[Any, ...]) -> None:
    """The earlier row plus the `also` column (schema 4), empty for these records."""
    assert rows.record_row(record) == (*row, None)
    assert rows.record_from_row((*row, None)) == record
    assert kind_of(record) == row[4]


class Named(NamedTuple):
    board: str
    prev: int
    new: int


def test_an_action_on_followed_boards_keeps_them_in_the_also_column() -> None:
    record = ActionRecord(seq=7, board="daily", **HEAD, delta=3, prev_score=0, new_score=3,
                          client_action_id="c7", action_type="WIN",
                          also=(("weekly", 5, 8), ("season", 0, 3)))
    row = rows.record_row(record)
    assert row[16] == '[["weekly",5,8],["season",0,3]]'
    assert rows.record_from_row(row) == record
    named = ActionRecord(**{**vars_of(record), "also": (Named("weekly", 5, 8),)})
    assert rows.record_row(named)[16] == '[["weekly",5,8]]'  # any sequence of three
    with pytest.raises(StoreUnavailable, match=r"also\.board contains a NUL"):
        rows.record_row(ActionRecord(**{**vars_of(record),
                                        "also": (("a\x00", 0, 1),)}))


@pytest.mark.parametrize(("also", "refusal"), [
    ((("w\udc00", 0, 1),), r"also\.board is not valid UTF-8"),
    ((("weekly", 2**63, 1),), r"also\.prev_score \d+ does not fit in 64 bits"),
    (((None, 0, 1),), r"also\.board is missing"),
    ((("weekly", 0, -(2**63) - 1),), r"also\.new_score -\d+ does not fit in 64 bits"),
])
def test_followers_values_are_checked_like_any_column(also: Any, refusal: str) -> None:
    record = ActionRecord(seq=7, board="daily", **HEAD, delta=3, prev_score=0, new_score=3,
                          client_action_id="c7", action_type="WIN", also=also)
    with pytest.raises(StoreUnavailable, match=refusal):
        rows.record_row(record)
    ok = ActionRecord(**{**vars_of(record), "also": (("wöchentlich", 0, 1),)})
    assert rows.record_from_row(rows.record_row(ok)) == ok  # not ASCII, and fine


@pytest.mark.parametrize(("row", "refusal"), [
    (("main", "u\x00", 1, 1), "user_id contains a NUL"),
    (("m\x00", "u1", 1, 1), "board contains a NUL"),
    (("main", "u\udc00", 1, 1), "user_id is not valid UTF-8"),
    (("main", "u1", 2**63, 1), "score 9223372036854775808 does not fit"),
    (("main", "u1", 1, -(2**63) - 1), "reached_seq -9223372036854775809 does not fit"),
    (("main", None, 1, 1), "user_id is missing"),
])
def test_score_rows_are_checked_field_by_field(row: Any, refusal: str) -> None:
    record = ActionRecord(seq=1, board="main", **HEAD, delta=1, prev_score=0, new_score=1,
                          client_action_id="c1", action_type="WIN")
    with pytest.raises(StoreUnavailable, match=refusal):
        rows.prepare(records.CommitBatch((record,), (row,), ()))
    kept = ("main", "u1", 1, 1)  # the last per key, kept as it is
    batch = records.CommitBatch((record,), (("main", "u1", 0, 1), kept, ("main", "ü", 2, 1)), ())
    assert rows.prepare(batch).scores == [kept, ("main", "ü", 2, 1)]  # not ASCII, valid
    assert rows.prepare(batch).scores[0] is kept


def vars_of(record: ActionRecord) -> dict[str, Any]:
    return {f: getattr(record, f) for f in record.__dataclass_fields__}


@pytest.mark.parametrize(("record", "row"), SAMPLES, ids=IDS)
def test_the_event_json_is_that_of_the_flat_record(record: LogRecord,
                                                   row: tuple[Any, ...]) -> None:
    seq, _, board, user, kind, action, key, delta, prev, new, name, meta, *who, jti, _ = row
    expected = {
        "seq": seq, "at": ISO, "board": board, "userId": user, "kind": kind,
        "actionType": action, "clientActionId": key, "delta": delta, "prevScore": prev,
        "newScore": new, "displayName": name, "metadata": meta and orjson.loads(meta),
        "actor": who[0], "reason": who[1], "proofJti": jti,
    }
    if isinstance(record, PeriodClosedRecord):  # the period as times, not in metadata
        expected["metadata"] = None
        expected["period"] = {"id": "2023-W46", "startsAt": "2023-11-14T22:12:20.250Z",
                              "endsAt": ISO}
        expected["next"] = {"id": "2023-W47", "startsAt": ISO,
                            "endsAt": "2023-11-14T22:14:20.250Z"}
        expected["top"] = [{"rank": 1, "userId": "amy", "score": 30},
                           {"rank": 1, "userId": "bob", "score": 30},
                           {"rank": 3, "userId": "cy", "score": 5}]
        expected["totalUsers"] = 7
    if isinstance(record, PeriodExclusionRecord):  # the period's id, not in metadata
        expected["metadata"] = None
        expected["period"] = "2023-W46"
    if isinstance(record, BoardDefinedRecord):  # the definition under a key of its own
        expected["metadata"] = None
        expected["definition"] = {**orjson.loads(meta), "end": ISO}
    assert wire.record_bytes(record) == orjson.dumps(expected)  # keys in the same order
    assert wire.sse_events([record]) == (
        f"id: {seq}\nevent: {kind}\ndata: ".encode() + orjson.dumps(expected) + b"\n\n")


def test_an_unknown_kind_is_refused_both_ways() -> None:
    with pytest.raises(StoreUnavailable, match="LogRecord is not a kind of record"):
        rows.record_row(LogRecord(seq=1, at=AT, board="global", user_id="amy",
                                  display_name=None))
    row = list(SAMPLES[0][1])
    row[4] = "teleport"
    with pytest.raises(ValueError, match="unknown kind 'teleport'"):
        rows.record_from_row(row)


def test_the_engine_applies_every_kind_and_refuses_an_unknown_class() -> None:
    engine = Engine(RuleSet.from_config({"WIN": {"points": 10}}), ("global", "weekly"))
    for record, _ in SAMPLES:
        engine.apply(record)
    assert engine.last_seq == 6 and engine.boards["global"].score("amy") == 10
    assert engine.defs["laps"].operator == "best" and engine.boards["laps"].ascending
    assert "amy" not in engine.boards["weekly"]  # its period closed: a fresh board
    with pytest.raises(TypeError, match="no way to apply a LogRecord"):
        engine.apply(LogRecord(seq=7, at=AT, board="global", user_id="amy", display_name=None))


def plain(seq: int, **fields: Any) -> ActionRecord:
    values: dict[str, Any] = {
        "seq": seq, "at": AT, "board": "global", "user_id": f"u{seq}", "display_name": None,
        "delta": 10, "prev_score": seq, "new_score": seq + 10,
        "client_action_id": f"c{seq}", "action_type": "WIN"}
    return ActionRecord(**{**values, **fields})


@pytest.mark.parametrize("odd", [
    {}, {"display_name": "Zoë"}, {"display_name": "Amy"}, {"at": 5}, {"user_id": "ü"},
    {"metadata": {"k": 1}}, {"also": (("weekly", 0, 10),)}, {"proof_jti": "j", "proof_exp": 9.0},
    {"also": (("daily", 5, 15), ("weekly", 0, 10))}, {"also": (("wöchentlich", 0, 10),)},
    {"also": [["weekly", 0, 10]]}, {"also": (("weekly", 0.5, 10),)},
])
def test_a_batch_of_plain_actions_is_encoded_as_record_by_record(odd: dict[str, Any]) -> None:
    """The whole-batch check of plain actions gives exactly the rows `record_row` gives,
    whatever one record of the batch carries."""
    batch = [plain(1), plain(2, **odd), plain(3, display_name="Bo", also=(("daily", 3, 13),))]
    prepared = rows.prepare(records.CommitBatch(tuple(batch), (), ()))
    assert prepared.records == [rows.record_row(r) for r in batch]
    assert [type(v) for v in prepared.records[1]] == [type(v) for v in rows.record_row(batch[1])]


@pytest.mark.parametrize(("odd", "refusal"), [
    ({"client_action_id": "c\x00"}, "client_action_id contains a NUL"),
    ({"display_name": "x\ud800"}, "display_name is not valid UTF-8"),
    ({"user_id": "u\x00"}, "user_id contains a NUL"),
    ({"board": None}, "board is missing"),
    ({"delta": 2**63}, "delta 9223372036854775808 does not fit"),
    ({"new_score": -(2**63) - 1}, "new_score -9223372036854775809 does not fit"),
    ({"also": (("week\x00ly", 0, 10),)}, "also.board contains a NUL"),
    ({"also": (("weekly", 0, 2**63),)}, "also.new_score 9223372036854775808 does not fit"),
    ({"also": ((None, 0, 10),)}, "also.board is missing"),
])
def test_a_batch_of_plain_actions_is_refused_as_record_by_record(
        odd: dict[str, Any], refusal: str) -> None:
    batch = (plain(1), plain(2, **odd), plain(3))
    with pytest.raises(StoreUnavailable, match=refusal):
        rows.prepare(records.CommitBatch(batch, (), ()))


SCORE_ROWS = st.lists(st.tuples(st.sampled_from(["main", "daily", "d\x00"]),
                                st.sampled_from(["u1", "u2", "ü", "u\udc00", "u\x00"]),
                                st.sampled_from([0, 5, 2**63 - 1, 2**63]),
                                st.sampled_from([1, 2, -(2**63) - 1])), max_size=12)


@given(SCORE_ROWS)
def test_score_rows_checked_at_once_or_row_by_row_come_out_the_same(rows_in: Any) -> None:
    """The whole-batch check (each board's rows in one run, unique users) gives what
    checking the last row of each (board, user) one at a time gives, or its refusal."""
    last = list({(r[0], r[1]): r for r in rows_in}.values())
    try:
        expected: Any = [rows._score_values(r) for r in last]
    except StoreUnavailable as exc:
        expected = str(exc)
    try:
        got: Any = rows._checked_scores(rows_in)
    except StoreUnavailable as exc:
        got = str(exc)
    assert got == expected
