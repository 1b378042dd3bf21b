"""The one contract every `ActionLog` backend passes: memory, SQLite and a real
PostgreSQL, with the same tests. No mocks; no sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from scoreboard.core.commands import Command, SetFrozen, SetNameHidden, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.errors import Rejection
from scoreboard.core.records import (
    ActionRecord,
    AdjustRecord,
    CommitBatch,
    FreezeRecord,
    HideNameRecord,
    LogRecord,
    PeriodClosedRecord,
    RevokeTokensRecord,
    ScoreRow,
    Snapshot,
    UserRow,
)
from scoreboard.core.recovery import Restore
from scoreboard.core.rules import RuleSet
from scoreboard.storage import (
    ActionLog,
    DuplicateAction,
    DuplicateProof,
    MemoryLog,
    PostgresLog,
    SqliteLog,
    StoreUnavailable,
    WriterFenced,
    WriterLockHeld,
    open_store,
    schema,
)

BIG = 2**53 - 1


def rec(seq: int, user: str = "u1", **fields: Any) -> ActionRecord:
    values: dict[str, Any] = {
        "at": 1_000.0 + seq,
        "board": "main",
        "display_name": None,
        "action_type": "COMPLETE_LEVEL",
        "client_action_id": f"c{seq}",
        "delta": 10,
        "prev_score": 10 * (seq - 1),
        "new_score": 10 * seq,
    }
    values.update(fields)
    return ActionRecord(seq=seq, user_id=user, **values)


def adjust(seq: int, user: str = "u1", **fields: Any) -> AdjustRecord:
    values: dict[str, Any] = {
        "at": 1_000.0 + seq, "board": "main", "display_name": None, "delta": -5,
        "prev_score": 0, "new_score": -5, "client_action_id": f"adj{seq}",
        "actor": "admin-1", "reason": "cheating",
    }
    values.update(fields)
    return AdjustRecord(seq=seq, user_id=user, **values)


def batch(
    *records: LogRecord, scores: Sequence[ScoreRow] = (), users: Sequence[UserRow] = ()
) -> CommitBatch:
    return CommitBatch(records=tuple(records), scores=tuple(scores), users=tuple(users))


def by_key(rows: Sequence[ScoreRow]) -> list[ScoreRow]:
    return sorted(rows, key=lambda r: (r.board, r.user_id))


def by_user(rows: Sequence[UserRow]) -> list[UserRow]:
    return sorted(rows, key=lambda r: r.user_id)


async def everything(store: ActionLog, chunk: int = 10_000) -> list[LogRecord]:
    return [r async for part in store.scan(chunk=chunk) for r in part]


class Collected:
    """A snapshot sink that keeps every chunk it is handed, in order."""

    def __init__(self, on_chunk: Callable[[], None] = lambda: None) -> None:
        self.chunks: list[tuple[str, list[Any]]] = []
        self.ends: list[int] = []
        self.closes: list[PeriodClosedRecord] = []
        self.last_at = 0.0
        self._on_chunk = on_chunk

    def periods(self, closes: Sequence[PeriodClosedRecord], last_at: float) -> None:
        self.closes, self.last_at = list(closes), last_at

    def scores(self, rows: Sequence[Sequence[Any]]) -> None:
        self._keep("scores", [ScoreRow(*row) for row in rows])

    def users(self, rows: Sequence[Sequence[Any]]) -> None:
        self._keep("users", [UserRow(*row) for row in rows])

    def recent(self, records: Sequence[LogRecord]) -> None:
        self._keep("recent", list(records))

    def end(self, last_seq: int) -> None:
        self.ends.append(last_seq)

    def _keep(self, kind: str, rows: list[Any]) -> None:
        self.chunks.append((kind, rows))
        self._on_chunk()

    def snapshot(self) -> Snapshot:
        assert len(self.ends) == 1, "end() is called exactly once"
        parts: dict[str, list[Any]] = {"scores": [], "users": [], "recent": []}
        for kind, rows in self.chunks:
            parts[kind].extend(rows)
        return Snapshot(self.ends[0], parts["scores"], parts["users"], parts["recent"],
                        self.closes, self.last_at)


async def load(store: ActionLog, since: float, chunk: int = 10_000) -> Snapshot:
    sink = Collected()
    await store.load(since, into=sink, chunk=chunk)
    return sink.snapshot()


@dataclass
class Backend:
    name: str
    make: Callable[[], ActionLog]  # a new handle on the same database (not opened)
    exclusive: bool  # a second handle is refused while one is open
    dsn: str = ""  # PostgreSQL's, for a session of a test's own


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        shared = MemoryLog()  # its data lives in the instance, so "reopen" reuses it
        return Backend("memory", lambda: shared, exclusive=False)
    if request.param == "sqlite":
        path = tmp_path / "nested" / "dir" / "log.db"  # parents do not exist yet
        return Backend("sqlite", lambda: SqliteLog(path), exclusive=True)
    dsn: str = request.getfixturevalue("fresh_pg_dsn")
    return Backend("postgres", lambda: PostgresLog(dsn, pool_size=2), exclusive=True, dsn=dsn)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[ActionLog]:
    log = backend.make()
    await log.open()
    yield log
    await log.close()


FULL = rec(
    1,
    "alice",
    at=1_700_000_000.125,
    display_name="Alice",
    metadata={"level": 3, "path": ["a", "b"]},
    proof_jti="jti-1",
    proof_exp=1_700_000_060.5,
)


# -- basics -------------------------------------------------------------------------


async def test_an_empty_log(store: ActionLog) -> None:
    assert await store.last_seq() == 0
    assert await load(store, 0.0) == Snapshot(last_seq=0, scores=[], users=[], recent=[])
    assert await store.find_actions([("u1", "c1")]) == []
    assert await store.history("u1", before_seq=None, limit=10) == []
    assert await everything(store) == []
    assert await store.ping() is True


async def test_append_then_load_returns_the_same_records_and_rows(store: ActionLog) -> None:
    records = [
        FULL,
        adjust(2, "bob", display_name="Bob", reason="welcome bonus"),
        FreezeRecord(seq=3, at=1_003.0, board="global", user_id="alice", display_name="Alice",
                     prev_score=10, new_score=10, actor="admin-1",
                     reason="41 actions in a minute"),
        HideNameRecord(seq=4, at=1_004.0, board="global", user_id="bob", display_name=None,
                       prev_score=-5, new_score=-5),
        RevokeTokensRecord(seq=5, at=1_005.5, board="global", user_id="carl",
                           display_name=None, prev_score=0, new_score=0, actor="carl",
                           reason="logged out everywhere"),
    ]
    scores = [ScoreRow("main", "alice", 10, 1), ScoreRow("main", "bob", -5, 2)]
    users = [
        UserRow("alice", "Alice", True, False, flag="41 actions in a minute"),
        UserRow("bob", None, False, True),
    ]
    await store.append(batch(*records, scores=scores, users=users))

    snapshot = await load(store, 0.0)
    assert snapshot.last_seq == 5
    assert snapshot.recent == records
    assert by_key(snapshot.scores) == by_key(scores)
    assert by_user(snapshot.users) == by_user(users)
    assert await everything(store) == records


async def test_records_come_back_in_seq_order(store: ActionLog) -> None:
    await store.append(batch(rec(1), rec(2, "u2")))
    await store.append(batch(rec(3)))
    await store.append(batch(rec(4, "u2"), rec(5), rec(6, "u3")))
    assert [r.seq for r in await everything(store)] == [1, 2, 3, 4, 5, 6]
    assert [r.seq for r in (await load(store, 0.0)).recent] == [1, 2, 3, 4, 5, 6]
    assert await store.last_seq() == 6


async def test_last_seq_is_the_highest_committed(store: ActionLog) -> None:
    await store.append(batch(rec(1), rec(2)))
    assert await store.last_seq() == 2
    with pytest.raises(DuplicateAction):
        await store.append(batch(rec(3), rec(4, client_action_id="c1")))
    assert await store.last_seq() == 2


# -- atomicity and the unique guards ------------------------------------------------


async def test_a_batch_with_a_known_action_key_writes_nothing(store: ActionLog) -> None:
    await store.append(
        batch(
            rec(1, client_action_id="a"),
            scores=[ScoreRow("main", "u1", 10, 1)],
            users=[UserRow("u1", "One", False, False)],
        )
    )
    before = await load(store, 0.0)

    with pytest.raises(DuplicateAction) as caught:
        await store.append(
            batch(
                rec(2, "u2", client_action_id="b"),
                rec(3, "u1", client_action_id="a"),
                scores=[ScoreRow("main", "u1", 99, 3), ScoreRow("main", "u2", 10, 2)],
                users=[UserRow("u1", "Renamed", True, True), UserRow("u2", "Two", False, False)],
            )
        )
    assert caught.value.keys == [("u1", "a")]
    assert await load(store, 0.0) == before
    assert await store.find_actions([("u2", "b")]) == []
    # The refused batch's other key is still free.
    await store.append(batch(rec(2, "u2", client_action_id="b")))


async def test_an_action_key_twice_in_one_batch_is_refused(store: ActionLog) -> None:
    with pytest.raises(DuplicateAction) as caught:
        await store.append(batch(rec(1, client_action_id="x"), rec(2, client_action_id="x")))
    assert caught.value.keys == [("u1", "x")]
    assert await store.last_seq() == 0


async def test_the_same_client_action_id_for_another_user_is_fine(store: ActionLog) -> None:
    await store.append(batch(rec(1, "u1", client_action_id="same")))
    await store.append(batch(rec(2, "u2", client_action_id="same")))
    found = await store.find_actions([("u2", "same"), ("u1", "same")])
    assert [(r.seq, r.user_id) for r in found] == [(1, "u1"), (2, "u2")]


async def test_a_reused_proof_writes_nothing(store: ActionLog) -> None:
    await store.append(batch(rec(1, proof_jti="j1", proof_exp=2_000.0)))
    with pytest.raises(DuplicateProof) as caught:
        await store.append(
            batch(
                rec(2, proof_jti="j2", proof_exp=2_000.0),
                rec(3, "u2", proof_jti="j1", proof_exp=2_000.0),
                scores=[ScoreRow("main", "u1", 30, 3)],
            )
        )
    assert caught.value.jtis == ["j1"]
    assert await store.last_seq() == 1
    assert (await load(store, 0.0)).scores == []
    await store.append(batch(rec(2, proof_jti="j2", proof_exp=2_000.0)))


async def test_a_proof_twice_in_one_batch_is_refused(store: ActionLog) -> None:
    with pytest.raises(DuplicateProof) as caught:
        await store.append(batch(rec(1, proof_jti="p"), rec(2, "u2", proof_jti="p")))
    assert caught.value.jtis == ["p"]
    assert await store.last_seq() == 0


async def test_retrying_a_committed_batch_does_not_write_it_twice(store: ActionLog) -> None:
    first = batch(
        rec(1, proof_jti="j1", metadata={"k": [1, 2]}),
        rec(2),
        scores=[ScoreRow("main", "u1", 20, 2)],
    )
    await store.append(first)
    await store.append(first)  # as after an error whose outcome was unknown
    assert [r.seq for r in await everything(store)] == [1, 2]


async def test_a_different_record_at_a_used_seq_is_refused(store: ActionLog) -> None:
    await store.append(batch(rec(1), scores=[ScoreRow("main", "u1", 10, 1)]))
    with pytest.raises(StoreUnavailable):
        await store.append(
            batch(rec(1, client_action_id="other"), scores=[ScoreRow("main", "u1", 99, 1)])
        )
    snapshot = await load(store, 0.0)
    assert [r.client_action_id for r in snapshot.recent] == ["c1"]
    assert snapshot.scores == [ScoreRow("main", "u1", 10, 1)]


@pytest.mark.parametrize(
    "bad",
    [
        rec(2, "u\x00nul"),
        rec(2, metadata={"note": "a\x00b"}),
        rec(2, metadata={"not json": {1, 2}}),
        rec(2, delta=2**63),
        adjust(2, reason="lone \ud800 surrogate"),
    ],
    ids=["nul-in-text", "nul-in-metadata", "not-json", "int-over-64-bits", "surrogate"],
)
async def test_values_no_backend_can_store_are_refused_alike(
    store: ActionLog, bad: LogRecord
) -> None:
    await store.append(batch(rec(1)))
    with pytest.raises(StoreUnavailable):
        await store.append(batch(bad, scores=[ScoreRow("main", "u1", 5, 2)]))
    assert await store.last_seq() == 1
    assert (await load(store, 0.0)).scores == []


# -- reads --------------------------------------------------------------------------


async def test_load_since_keeps_recent_records_and_unexpired_proofs(store: ActionLog) -> None:
    await store.append(
        batch(
            rec(1, at=100.0, proof_jti="still-valid", proof_exp=1_000.0),
            rec(2, at=110.0, proof_jti="expired", proof_exp=200.0),
            rec(3, at=120.0),
            rec(4, at=250.0),
            rec(5, at=300.0, proof_jti="recent", proof_exp=310.0),
            scores=[ScoreRow("main", "u1", 50, 5)],
            users=[UserRow("u1", None, False, False)],
        )
    )
    snapshot = await load(store, 250.0)
    assert [r.seq for r in snapshot.recent] == [1, 4, 5]
    assert snapshot.last_seq == 5
    assert snapshot.scores == [ScoreRow("main", "u1", 50, 5)]
    assert snapshot.users == [UserRow("u1", None, False, False)]
    assert (await load(store, 10_000.0)).recent == []


async def test_load_streams_one_snapshot_in_chunks(store: ActionLog) -> None:
    names = [f"u{i}" for i in range(5)]
    await store.append(batch(
        *(rec(i + 1, u) for i, u in enumerate(names)),
        scores=[ScoreRow(b, u, 10 * i, i + 1) for i, u in enumerate(names) for b in ("m", "s")],
        users=[UserRow(u, u.upper(), i == 0, i == 1, "why" if i == 2 else None)
               for i, u in enumerate(names)],
    ))
    whole = await load(store, 0.0)
    sink = Collected()
    await store.load(0.0, into=sink, chunk=2)
    assert [kind for kind, _ in sink.chunks] == ["scores"] * 5 + ["users"] * 3 + ["recent"] * 3
    assert all(1 <= len(rows) <= 2 for _, rows in sink.chunks)
    chunked = sink.snapshot()
    assert chunked.last_seq == whole.last_seq == 5
    assert by_key(chunked.scores) == by_key(whole.scores) and len(whole.scores) == 10
    assert by_user(chunked.users) == by_user(whole.users) and len(whole.users) == 5
    assert chunked.recent == whole.recent == await everything(store)


async def test_load_refuses_a_chunk_below_one(store: ActionLog) -> None:
    await store.append(batch(rec(1), scores=[ScoreRow("main", "u1", 10, 1)]))
    sink = Collected()
    with pytest.raises(ValueError):
        await store.load(0.0, into=sink, chunk=0)
    assert sink.chunks == [] and sink.ends == []


async def test_an_engine_restored_from_the_log_equals_the_live_one(store: ActionLog) -> None:
    rules = RuleSet.from_config({"WIN": {"points": 7, "limit": 4, "window": "1h"}})
    live = Engine(rules, ("global", "weekly"))
    batches: list[list[Command]] = [
        [SubmitAction(f"p{i % 5}", f"P{i % 5}", ("global", "weekly")[i % 2], "WIN", f"c{i}")
         for i in range(12)],
        [SetFrozen("p1", actor="adm", frozen=True, reason="r"), SetNameHidden("p2", hidden=True)],
        [SubmitAction(f"p{i % 5}", None, "global", "WIN", f"d{i}") for i in range(12)],
    ]
    for i, commands in enumerate(batches):
        pending = live.new_pending()
        for command in commands:
            with contextlib.suppress(Rejection):
                live.decide(command, 1_700_000_000.0 + i, pending)
        await store.append(live.batch(pending))
        for r in pending.records:
            live.apply(r)
    restored = Engine(rules, ("global", "weekly"))
    await store.load(0.0, into=Restore(restored), chunk=3)
    assert restored.state_digest() == live.state_digest()
    assert restored.memory_digest() == live.memory_digest()
    assert restored.boards["global"].top(3) and "p1" in restored.frozen


async def test_find_actions_returns_the_keys_records_in_seq_order(store: ActionLog) -> None:
    await store.append(batch(rec(1, "u1", client_action_id="a"), rec(2, "u2")))
    await store.append(
        batch(rec(3, "u1", client_action_id="b"), rec(4, "u2", client_action_id="a"))
    )
    found = await store.find_actions(
        [("u1", "b"), ("nobody", "a"), ("u1", "a"), ("u1", "b"), ("u2", "zzz")]
    )
    assert [r.seq for r in found] == [1, 3]
    assert found[0] == rec(1, "u1", client_action_id="a")
    assert await store.find_actions([]) == []


async def test_history_pages_newest_first(store: ActionLog) -> None:
    await store.append(batch(*(rec(s, "u1" if s % 2 else "u2") for s in range(1, 11))))
    page = await store.history("u1", before_seq=None, limit=2)
    assert [r.seq for r in page] == [9, 7]
    page = await store.history("u1", before_seq=page[-1].seq, limit=2)
    assert [r.seq for r in page] == [5, 3]
    page = await store.history("u1", before_seq=page[-1].seq, limit=2)
    assert [r.seq for r in page] == [1]
    assert await store.history("u1", before_seq=1, limit=2) == []
    assert [r.seq for r in await store.history("u2", before_seq=9, limit=100)] == [8, 6, 4, 2]
    assert await store.history("u1", before_seq=None, limit=0) == []
    assert page[0] == rec(1, "u1")


async def test_scan_in_chunks_covers_everything_in_order(store: ActionLog) -> None:
    records = [rec(s, f"u{s % 3}") for s in range(1, 11)]
    await store.append(batch(*records[:4]))
    await store.append(batch(*records[4:]))
    chunks = [chunk async for chunk in store.scan(chunk=3)]
    assert [[r.seq for r in c] for c in chunks] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert [r for c in chunks for r in c] == records
    assert [len(c) async for c in store.scan()] == [10]
    assert await everything(store, chunk=10) == records
    after_7 = [chunk async for chunk in store.scan(after=7, chunk=2)]
    assert [[r.seq for r in c] for c in after_7] == [[8, 9], [10]]
    assert [chunk async for chunk in store.scan(after=10)] == []


async def test_metadata_round_trips(store: ActionLog) -> None:
    metadata: list[dict[str, Any] | None] = [
        {"nested": {"deeper": {"list": [1, 2.5, None, True, False, "x"], "empty": {}}}},
        {"unicode": "日本語 \u2013 Ünïcödé \u2013 🏆", 'quote"key': "back\\slash\nnew line\ttab"},
        {"not a nul": "\\u0000 is just text here", "big": BIG, "small": -BIG},
        {},
        None,
    ]
    records = [rec(i + 1, metadata=m) for i, m in enumerate(metadata)]
    await store.append(batch(*records))
    assert [r.metadata for r in (await load(store, 0.0)).recent] == metadata
    assert [r.metadata for r in await everything(store)] == metadata
    assert (await store.history("u1", before_seq=2, limit=1))[0].metadata == metadata[0]


async def test_text_and_doubles_round_trip_exactly(store: ActionLog) -> None:
    odd = 'q"uote \\back\\slash\\ {brace},comma NULL\nnew\tline\x01 日本 🏆 \u2028'
    records = [
        rec(1, user=odd, board=odd, action_type=odd, client_action_id=odd, display_name=odd,
            proof_jti=odd, at=0.1 + 0.2, proof_exp=1e-300),
        rec(2, user="NULL", display_name="", at=1_750_000_000.123456789, proof_exp=-0.0),
        rec(3, at=float("inf"), proof_exp=float("-inf")),
        adjust(4, user=odd, board=odd, actor=odd, reason=odd),
    ]
    scores = [ScoreRow(odd, odd, 1, 1), ScoreRow("main", "NULL", 2, 2)]
    users = [UserRow(odd, odd, True, False, odd, 0.1 + 0.2), UserRow("NULL", None, False, True)]
    await store.append(batch(*records, scores=scores, users=users))
    snapshot = await load(store, float("-inf"))
    assert snapshot.recent == records
    assert await everything(store) == records
    assert by_key(snapshot.scores) == by_key(scores)
    assert by_user(snapshot.users) == by_user(users)


async def test_large_integers_round_trip(store: ActionLog) -> None:
    records = [
        rec(1, delta=BIG, prev_score=-BIG, new_score=BIG),
        rec(BIG, delta=-BIG, prev_score=BIG, new_score=-BIG),
    ]
    scores = [ScoreRow("main", "u1", BIG, BIG), ScoreRow("main", "u2", -BIG, 1)]
    await store.append(batch(*records, scores=scores))
    snapshot = await load(store, 0.0)
    assert snapshot.recent == records
    assert by_key(snapshot.scores) == by_key(scores)
    assert await store.last_seq() == BIG


async def test_upserts_overwrite_rows(store: ActionLog) -> None:
    await store.append(
        batch(
            rec(1),
            rec(2, "u2", board="weekly"),
            scores=[ScoreRow("main", "u1", 10, 1), ScoreRow("weekly", "u2", 10, 2)],
            users=[UserRow("u1", "One", False, False), UserRow("u2", "Two", False, False, "x")],
        )
    )
    await store.append(
        batch(
            rec(3),
            scores=[ScoreRow("main", "u1", 5, 2), ScoreRow("main", "u1", 25, 3)],  # last wins
            users=[UserRow("u1", None, True, True, "flagged"), UserRow("u2", "Two", False, False)],
        )
    )
    snapshot = await load(store, 0.0)
    assert by_key(snapshot.scores) == [
        ScoreRow("main", "u1", 25, 3),
        ScoreRow("weekly", "u2", 10, 2),
    ]
    assert by_user(snapshot.users) == [
        UserRow("u1", None, True, True, "flagged"),
        UserRow("u2", "Two", False, False, None),  # a flag cleared
    ]


# -- lifecycle ----------------------------------------------------------------------


async def test_reopening_keeps_everything(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    await first.append(
        batch(
            FULL,
            rec(2),
            scores=[ScoreRow("main", "alice", 7, 1)],
            users=[UserRow("u1", "U", False, True)],
        )
    )
    before = await load(first, 0.0)
    await first.close()

    again = backend.make()
    await again.open()
    try:
        assert await load(again, 0.0) == before
        await again.append(batch(rec(3)))
        assert [r.seq for r in await everything(again)] == [1, 2, 3]
    finally:
        await again.close()


async def test_a_second_writer_is_refused_until_the_first_closes(backend: Backend) -> None:
    if not backend.exclusive:
        pytest.skip(f"{backend.name} has no database shared between handles")
    first = backend.make()
    await first.open()
    second = backend.make()
    try:
        with pytest.raises(WriterLockHeld) as caught:
            await second.open()
        if isinstance(first, SqliteLog):
            assert f"{first.path}.lock" in str(caught.value)
        assert "writer" in str(caught.value)
        await first.append(batch(rec(1)))  # the first keeps working
    finally:
        await first.close()
    await second.open()
    try:
        assert await second.last_seq() == 1
        await second.append(batch(rec(2)))
    finally:
        await second.close()


async def test_close_twice_is_fine_and_a_closed_log_refuses_work(backend: Backend) -> None:
    log = backend.make()
    await log.open()
    assert await log.ping() is True
    await log.close()
    await log.close()
    assert await log.ping() is False
    with pytest.raises(StoreUnavailable):
        await log.append(batch(rec(1)))
    with pytest.raises(StoreUnavailable):
        await log.last_seq()


# -- backend specifics --------------------------------------------------------------


async def test_sqlite_migrates_a_version_1_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as old:
        for statement in schema.migrations(schema.SQLITE)[1]:
            old.execute(statement)
        old.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
        old.execute("INSERT INTO schema_version VALUES (1)")
        old.execute("INSERT INTO users VALUES ('u1', 'One', 0, 1)")
    log = SqliteLog(path)
    await log.open()
    try:
        assert (await load(log, 0.0)).users == [UserRow("u1", "One", False, True, None)]
        await log.append(batch(rec(1), users=[UserRow("u1", "One", False, True, "why")]))
        assert (await load(log, 0.0)).users == [UserRow("u1", "One", False, True, "why")]
    finally:
        await log.close()


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as newer:
        newer.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
        newer.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(StoreUnavailable, match="schema version 99"):
        await SqliteLog(path).open()
    with closing(sqlite3.connect(path, isolation_level=None)) as newer:
        newer.execute("DELETE FROM schema_version")
    log = SqliteLog(path)
    await log.open()  # the failed open released its lock
    await log.close()


@pytest.mark.postgres
async def test_postgres_migrates_a_version_1_database(fresh_pg_dsn: str) -> None:
    old = await asyncpg.connect(fresh_pg_dsn)
    try:
        for statement in schema.migrations(schema.POSTGRES)[1]:
            await old.execute(statement)
        await old.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
            "INSERT INTO schema_version (version) VALUES (1);"
            "INSERT INTO users VALUES ('u1', 'One', false, true)"
        )
    finally:
        await old.close()
    log = PostgresLog(fresh_pg_dsn, pool_size=1)
    await log.open()
    try:
        assert (await load(log, 0.0)).users == [UserRow("u1", "One", False, True, None)]
        await log.append(batch(rec(1), users=[UserRow("u1", "One", False, True, "why")]))
        assert (await load(log, 0.0)).users == [UserRow("u1", "One", False, True, "why")]
    finally:
        await log.close()


@pytest.mark.postgres
@pytest.mark.parametrize("from_version", [0, 5])
async def test_postgres_stores_snapshot_bodies_uncompressed(fresh_pg_dsn: str,
                                                            from_version: int) -> None:
    """A fresh database and one made by version 5 both store snapshot bodies (zlib
    already) out of line without TOAST's compression."""
    old = await asyncpg.connect(fresh_pg_dsn)
    try:
        steps = schema.migrations(schema.POSTGRES)
        for version in range(1, from_version + 1):
            for statement in steps[version]:
                await old.execute(statement)
        if from_version:
            await old.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
                f"INSERT INTO schema_version (version) VALUES ({from_version})")
    finally:
        await old.close()
    log = PostgresLog(fresh_pg_dsn, pool_size=1)
    await log.open()
    await log.close()
    conn = await asyncpg.connect(fresh_pg_dsn)
    try:
        storage = await conn.fetchval(
            "SELECT attstorage FROM pg_attribute"
            " WHERE attrelid = 'snapshots'::regclass AND attname = 'body'")
        assert storage == b"e"
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_refuses_a_newer_schema(fresh_pg_dsn: str) -> None:
    newer = await asyncpg.connect(fresh_pg_dsn)
    try:
        await newer.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY);"
            "INSERT INTO schema_version VALUES (99)"
        )
    finally:
        await newer.close()
    with pytest.raises(StoreUnavailable, match="schema version 99"):
        await PostgresLog(fresh_pg_dsn).open()


async def test_memory_fail_next_refuses_then_recovers() -> None:
    log = MemoryLog()
    await log.open()
    log.fail_next(2)
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await log.append(batch(rec(1)))
    assert await log.last_seq() == 0
    await log.append(batch(rec(1)))

    log.fail_next(after_commit=True)  # written, but the caller hears a failure
    with pytest.raises(StoreUnavailable):
        await log.append(batch(rec(2)))
    await log.append(batch(rec(2)))  # the retry
    assert [r.seq for r in await everything(log)] == [1, 2]


async def test_sqlite_file_is_wal_and_the_lock_file_names_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.db"
    log = SqliteLog(path)
    await log.open()
    try:
        await log.append(batch(rec(1)))
        lock = await asyncio.to_thread(Path(f"{path}.lock").read_text)
        assert lock.strip() == str(os.getpid())
        with closing(sqlite3.connect(path)) as plain:
            assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert plain.execute("SELECT max(version) FROM schema_version").fetchone()[0] == (
                schema.SCHEMA_VERSION
            )
    finally:
        await log.close()


async def _terminate_backends(dsn: str, *, wait_ms: int = 0) -> int:
    """End every other session on the test database, as an operator would."""
    admin = await asyncpg.connect(dsn)
    try:
        ended = await admin.fetch(
            "SELECT pg_terminate_backend(pid, $1) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            wait_ms,
        )
        return len(ended)
    finally:
        await admin.close()


async def _append_with_retries(log: ActionLog, b: CommitBatch, attempts: int = 3) -> int:
    """Append like the writer does after StoreUnavailable; returns the attempts used."""
    for attempt in range(1, attempts + 1):
        try:
            await log.append(b)
            return attempt
        except StoreUnavailable:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


@pytest.mark.postgres
async def test_postgres_survives_terminated_backends(fresh_pg_dsn: str) -> None:
    log = PostgresLog(fresh_pg_dsn, pool_size=2)
    await log.open()
    try:
        await log.append(batch(rec(1), scores=[ScoreRow("main", "u1", 10, 1)]))
        assert await log.history("u1", before_seq=None, limit=5)  # a pooled session too
        assert await _terminate_backends(fresh_pg_dsn) >= 2

        async with asyncio.timeout(30):
            second = batch(rec(2), rec(3, "u2"), scores=[ScoreRow("main", "u1", 20, 2)])
            assert await _append_with_retries(log, second) <= 2
            await _append_with_retries(log, second)  # a retry of a committed batch is a no-op
            assert [r.seq for r in await log.history("u1", before_seq=None, limit=5)] == [2, 1]
            assert await log.ping() is True

            assert await _terminate_backends(fresh_pg_dsn) >= 1
            assert (await load(log, 0.0)).scores == [ScoreRow("main", "u1", 20, 2)]
            await _append_with_retries(log, batch(rec(4)))
            assert [r.seq for r in await everything(log)] == [1, 2, 3, 4]
    finally:
        await log.close()


@pytest.mark.postgres
async def test_postgres_load_that_loses_its_session_part_way_hands_nothing_twice(
    fresh_pg_dsn: str,
) -> None:
    log = PostgresLog(fresh_pg_dsn, pool_size=2)
    await log.open()
    try:
        users = ("u1", "u2", "u3")
        await log.append(batch(
            *(rec(i, u) for i, u in enumerate(users, 1)),
            scores=[ScoreRow("main", u, 10, i) for i, u in enumerate(users, 1)],
        ))
        ended: list[int] = []

        def end_sessions_once() -> None:
            # From inside the stream, before the next chunk is asked for: blocking on
            # another thread's loop makes the order certain.
            if not ended:
                with ThreadPoolExecutor(1) as pool:
                    coro = _terminate_backends(fresh_pg_dsn, wait_ms=5_000)
                    ended.append(pool.submit(asyncio.run, coro).result(timeout=30))

        sink = Collected(on_chunk=end_sessions_once)
        with pytest.raises(StoreUnavailable):
            await log.load(0.0, into=sink, chunk=1)
        assert ended[0] >= 1
        assert [kind for kind, _ in sink.chunks] == ["scores"] and sink.ends == []
        async with asyncio.timeout(30):
            assert len((await load(log, 0.0)).scores) == 3  # a fresh start works
    finally:
        await log.close()


@pytest.mark.postgres
async def test_postgres_writer_that_lost_its_lock_to_another_stops(fresh_pg_dsn: str) -> None:
    first = PostgresLog(fresh_pg_dsn, pool_size=1)
    await first.open()
    second = PostgresLog(fresh_pg_dsn, pool_size=1)
    try:
        await first.append(batch(rec(1)))
        await _terminate_backends(fresh_pg_dsn, wait_ms=5_000)  # the lock is free now
        await second.open()
        with pytest.raises(WriterFenced, match="another process"):
            await first.append(batch(rec(2)))
        await second.close()  # the lock is free again, yet the fenced writer stays fenced
        with pytest.raises(WriterFenced):
            await first.append(batch(rec(2)))
        second = PostgresLog(fresh_pg_dsn, pool_size=1)
        await second.open()
        await second.append(batch(rec(2, client_action_id="from-second")))
        assert [r.client_action_id for r in await everything(second)] == ["c1", "from-second"]
    finally:
        await first.close()
        await second.close()


async def test_postgres_refuses_when_unreachable() -> None:
    log = PostgresLog("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(StoreUnavailable):
        await log.open()
    assert await log.ping() is False


def test_open_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    default = open_store(None, tmp_path)
    assert isinstance(default, SqliteLog) and default.path == tmp_path / "scoreboard.db"
    assert isinstance(open_store("", tmp_path), SqliteLog)
    for url in (f"sqlite://{tmp_path}/x/y.db", f"sqlite:///{tmp_path}/x/y.db"):
        explicit = open_store(url, tmp_path / "elsewhere")
        assert isinstance(explicit, SqliteLog) and explicit.path == tmp_path / "x" / "y.db"
    relative = open_store("sqlite:rel.db", tmp_path)
    assert isinstance(relative, SqliteLog) and relative.path == tmp_path / "rel.db"
    assert isinstance(open_store("postgresql://u@h/db", tmp_path), PostgresLog)
    assert isinstance(open_store("postgres://u@h/db", tmp_path), PostgresLog)
    assert isinstance(open_store("memory:", tmp_path), MemoryLog)
    with pytest.raises(ValueError, match="'mysql'"):
        open_store("mysql://u@h/db", tmp_path)
