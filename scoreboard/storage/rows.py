"""How records become database rows and back, shared by the three backends.

Everything here must give the same answer whichever backend runs it: the memory log
stores exactly the rows the SQL backends would, so a batch that PostgreSQL would refuse
(a NUL character, an integer beyond 64 bits, metadata that is not JSON) is refused by
all three, and metadata comes back as a fresh decoded copy everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, groupby, islice
from operator import itemgetter
from typing import Any, TypeVar

import orjson

from scoreboard.core.boards import BoardDef
from scoreboard.core.records import (
    RECORD_TYPES,
    ActionRecord,
    AdjustRecord,
    BoardDefinedRecord,
    BoardRecord,
    BoardScore,
    CommitBatch,
    FlagRecord,
    FreezeRecord,
    HideNameRecord,
    LogRecord,
    ModerationRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    RevokeTokensRecord,
    ShowNameRecord,
    StandingRecord,
    StandingRemovedRecord,
    UnflagRecord,
    UnfreezeRecord,
)
from scoreboard.storage.base import DuplicateAction, DuplicateProof, StoreUnavailable
from scoreboard.storage.schema import RECORD_COLUMNS

METADATA_INDEX = RECORD_COLUMNS.index("metadata")

# One record as stored: its kind's fields in column order, metadata as JSON text.
RecordRow = tuple[Any, ...]
ScoreValues = tuple[str, str, int, int]
UserValues = tuple[str, str | None, bool, bool, str | None, float | None]

INT64_MIN = -(2**63)  # also where a scan of the whole log starts
INT64_MAX = 2**63 - 1
# PostgreSQL refuses the \u0000 escape in jsonb; an escaped backslash before "u0000"
# is plain text, hence the even run of backslashes.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def _refuse(what: str) -> StoreUnavailable:
    return StoreUnavailable(f"the batch cannot be stored: {what}; nothing was written")


def _text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    # PostgreSQL text cannot hold NUL, and no backend can encode a lone surrogate.
    if "\x00" in value:
        raise _refuse(f"{field} contains a NUL character")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise _refuse(f"{field} is not valid UTF-8") from exc
    return value


def _required_text(value: str, field: str) -> str:
    checked = _text(value, field)
    if checked is None:
        raise _refuse(f"{field} is missing")
    return checked


def _int(value: int, field: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise _refuse(f"{field} {value} does not fit in 64 bits")
    return value


def encode_metadata(metadata: dict[str, Any] | None) -> str | None:
    if metadata is None:
        return None
    try:
        encoded = orjson.dumps(metadata).decode()
    except orjson.JSONEncodeError as exc:
        raise _refuse(f"metadata is not JSON ({exc})") from exc
    if "\\u0000" in encoded and _JSON_NUL.search(encoded):
        raise _refuse("metadata contains a NUL character")
    return encoded


def _row(
    r: LogRecord, kind: str, action_type: str | None, client_action_id: str | None,
    delta: int, prev_score: int, new_score: int, metadata: dict[str, Any] | None,
    actor: str | None, reason: str | None, proof_jti: str | None, proof_exp: float | None,
    also: Sequence[BoardScore] = (),
) -> RecordRow:
    """The checked row, in `RECORD_COLUMNS` order; a kind without a column stores its
    empty value there (NULL, or 0 for the score columns)."""
    return (
        _int(r.seq, "seq"),
        float(r.at),
        _required_text(r.board, "board"),
        _required_text(r.user_id, "user_id"),
        kind,
        _text(action_type, "action_type"),
        _text(client_action_id, "client_action_id"),
        _int(delta, "delta"),
        _int(prev_score, "prev_score"),
        _int(new_score, "new_score"),
        _text(r.display_name, "display_name"),
        encode_metadata(metadata),
        _text(actor, "actor"),
        _text(reason, "reason"),
        _text(proof_jti, "proof_jti"),
        None if proof_exp is None else float(proof_exp),
        _also_json(also),
    )


def _also_json(also: Sequence[BoardScore]) -> str | None:
    if not also:
        return None
    for b, prev, new in also:
        # ASCII without NUL needs no closer look (as in `_score_values`)
        if not (type(b) is str and b.isascii() and "\x00" not in b
                and INT64_MIN <= prev <= INT64_MAX and INT64_MIN <= new <= INT64_MAX):
            _required_text(b, "also.board")  # the one that is wrong raises
            _int(prev, "also.prev_score")
            _int(new, "also.new_score")
    try:
        return orjson.dumps(also).decode()  # plain tuples, as the engine makes them
    except orjson.JSONEncodeError:  # any other sequence of three
        return orjson.dumps([list(a) for a in also]).decode()


def _checked_scores(rows: Sequence[tuple[str, str, int, int]]) -> list[ScoreValues]:
    """The score rows checked, the last of each (board, user) only: a batch may carry
    several for one key, and the last is the current state, exactly as if they had
    been upserted one after another.

    An action writes one row per board it scores on, so the common case is checked for
    the whole batch at once, at C speed: plain tuples of four, each board's rows
    together (as `Pending.rows` gives them) with unique users, the ids ASCII without
    NUL and the integers inside 64 bits. Otherwise row by row, naming the field that is
    wrong."""
    if rows and set(map(type, rows)) == {tuple}:
        try:
            boards, users, scores, seqs = zip(*rows, strict=True)  # the columns
            ids = "".join(chain(boards, users))
            if ids.isascii() and "\x00" not in ids and INT64_MIN <= min(scores) \
                    and max(scores) <= INT64_MAX and INT64_MIN <= min(seqs) \
                    and max(seqs) <= INT64_MAX and _unique_per_board(boards, users):
                return list(rows)
        except (TypeError, ValueError):  # not text, or not numbers, or not four
            pass
    keys = list(map(_KEY, rows))
    if len(set(keys)) != len(keys):
        rows = list(dict(zip(keys, rows, strict=True)).values())
    return [_score_values(s) for s in rows]


def _unique_per_board(boards: Sequence[str], users: Sequence[str]) -> bool:
    """Whether each board's users come in one run, each user once: a set of users per
    board, not a (board, user) tuple per row."""
    runs = [(board, len(list(run))) for board, run in groupby(boards)]
    if len(runs) != len(set(boards)):
        return False
    start = 0
    for _, count in runs:
        if len(set(users[start:start + count])) != count:
            return False
        start += count
    return True


_KEY = itemgetter(0, 1)


def _score_values(row: tuple[str, str, int, int]) -> ScoreValues:
    """One checked score row (a plain tuple is kept as it is). Every action writes one
    per board it scores on: the common case (ASCII ids, values inside 64 bits) passes
    one test, anything else is checked field by field, naming the one that is wrong."""
    board, user_id, score, reached_seq = row
    if type(board) is str and type(user_id) is str and board.isascii() \
            and "\x00" not in board and user_id.isascii() and "\x00" not in user_id \
            and INT64_MIN <= score <= INT64_MAX and INT64_MIN <= reached_seq <= INT64_MAX:
        return row if type(row) is tuple else (board, user_id, score, reached_seq)
    return (_required_text(board, "board"), _required_text(user_id, "user_id"),
            _int(score, "score"), _int(reached_seq, "reached_seq"))


def _action_row(r: ActionRecord, kind: str) -> RecordRow:
    return _row(r, kind, r.action_type, r.client_action_id, r.delta, r.prev_score,
                r.new_score, r.metadata, None, None, r.proof_jti, r.proof_exp, r.also)


def _action(cls: type[ActionRecord], row: Sequence[Any]) -> ActionRecord:
    # Positional, in field order (the codec tests pin it): faster than keywords, and
    # a follower decodes every record of the log.
    metadata, also = row[11], row[16]
    return cls(row[0], row[1], row[2], row[3], row[10], row[7], row[8], row[9], row[6],
               row[5], None if metadata is None else orjson.loads(metadata), row[14], row[15],
               () if also is None else tuple(tuple(a) for a in orjson.loads(also)))


def _adjust_row(r: AdjustRecord, kind: str) -> RecordRow:
    return _row(r, kind, None, r.client_action_id, r.delta, r.prev_score, r.new_score,
                None, r.actor, r.reason, None, None)


def _adjust(cls: type[AdjustRecord], row: Sequence[Any]) -> AdjustRecord:
    return cls(row[0], row[1], row[2], row[3], row[10], row[7], row[8], row[9], row[6],
               row[12], row[13])


def _moderation_row(r: ModerationRecord, kind: str) -> RecordRow:
    return _row(r, kind, None, None, 0, r.prev_score, r.new_score, None, r.actor, r.reason,
                None, None)


def _moderation(cls: type[ModerationRecord], row: Sequence[Any]) -> ModerationRecord:
    return cls(row[0], row[1], row[2], row[3], row[10], row[8], row[9], row[12], row[13])


def _finite(t: float | None) -> float | None:
    return None if t is None or t == float("inf") else t


def _period_row(r: PeriodClosedRecord, kind: str) -> RecordRow:
    """The period's id and bounds (and the next one's) in the metadata column."""
    period = {"period": r.period, "startsAt": _finite(r.starts_at), "endsAt": _finite(r.ends_at),
              "next": r.next_period, "nextStartsAt": _finite(r.next_starts_at),
              "nextEndsAt": _finite(r.next_ends_at), "top": [list(e) for e in r.top],
              "totalUsers": r.total_users}
    return _row(r, kind, None, None, 0, 0, 0, period, r.actor, r.reason, None, None)


def _period(cls: type[PeriodClosedRecord], row: Sequence[Any]) -> PeriodClosedRecord:
    p = orjson.loads(row[11])
    inf = float("inf")
    return cls(
        seq=row[0], at=row[1], board=row[2], user_id=row[3], display_name=row[10],
        period=p["period"], starts_at=-inf if p["startsAt"] is None else p["startsAt"],
        ends_at=inf if p["endsAt"] is None else p["endsAt"], next_period=p["next"],
        next_starts_at=p["nextStartsAt"],
        next_ends_at=inf if p["next"] is not None and p["nextEndsAt"] is None
        else p["nextEndsAt"],
        actor=row[12], reason=row[13],
        top=tuple((u, s, rank) for u, s, rank in p.get("top", ())),
        total_users=p.get("totalUsers", 0),
    )


def _exclusion_row(r: PeriodExclusionRecord, kind: str) -> RecordRow:
    """A moderation row with the period's id in the metadata column."""
    return _row(r, kind, None, None, 0, r.prev_score, r.new_score, {"period": r.period},
                r.actor, r.reason, None, None)


def _exclusion(cls: type[PeriodExclusionRecord], row: Sequence[Any]) -> PeriodExclusionRecord:
    return cls(row[0], row[1], row[2], row[3], row[10], row[8], row[9], row[12], row[13],
               orjson.loads(row[11])["period"])


def _standing_row(r: StandingRecord, kind: str) -> RecordRow:
    return _row(r, kind, None, None, 0, r.prev_score, r.new_score, None, None, None, None,
                None)


def _board_row(r: BoardDefinedRecord, kind: str) -> RecordRow:
    """The definition's keys in the metadata column."""
    d = r.definition
    keys = {"title": d.title, "sort": d.sort, "operator": d.operator, "follows": d.follows,
            "reset": d.reset, "timezone": d.timezone, "start": d.start, "end": d.end,
            "ranks": d.ranks}
    return _row(r, kind, None, None, 0, 0, 0, keys, r.actor, r.reason, None, None)


def _board(cls: type[BoardDefinedRecord], row: Sequence[Any]) -> BoardDefinedRecord:
    keys = orjson.loads(row[11])
    keys["follows"] = tuple(keys["follows"])
    return cls(seq=row[0], at=row[1], board=row[2], user_id=row[3], display_name=row[10],
               definition=BoardDef(row[2], **keys), actor=row[12], reason=row[13])

def _standing(cls: type[StandingRecord], row: Sequence[Any]) -> StandingRecord:
    return cls(row[0], row[1], row[2], row[3], row[10], row[8], row[9])


# How each record class is stored: its row and back. Every class of `RECORD_TYPES`
# must have an entry (checked here at import and by the codec tests).
_Encode = Callable[[Any, str], RecordRow]
_Decode = Callable[[Any, Sequence[Any]], LogRecord]
CODECS: dict[type[LogRecord], tuple[_Encode, _Decode]] = {
    ActionRecord: (_action_row, _action),
    AdjustRecord: (_adjust_row, _adjust),
    FreezeRecord: (_moderation_row, _moderation),
    UnfreezeRecord: (_moderation_row, _moderation),
    FlagRecord: (_moderation_row, _moderation),
    UnflagRecord: (_moderation_row, _moderation),
    RevokeTokensRecord: (_moderation_row, _moderation),
    HideNameRecord: (_standing_row, _standing),
    ShowNameRecord: (_standing_row, _standing),
    PeriodClosedRecord: (_period_row, _period),
    BoardDefinedRecord: (_board_row, _board),
    StandingRemovedRecord: (_moderation_row, _moderation),
    PeriodExclusionRecord: (_exclusion_row, _exclusion),
}
_ENCODERS = {cls: (kind.value, CODECS[cls][0]) for kind, cls in RECORD_TYPES.items()}
_DECODERS = {kind.value: (cls, CODECS[cls][1]) for kind, cls in RECORD_TYPES.items()}


def record_row(record: LogRecord) -> RecordRow:
    """The checked row for one record, in `RECORD_COLUMNS` order."""
    try:
        kind, encode = _ENCODERS[type(record)]
    except KeyError:
        raise _refuse(f"{type(record).__name__} is not a kind of record") from None
    return encode(record, kind)


def record_from_row(row: Sequence[Any]) -> LogRecord:
    """A record from a row in `RECORD_COLUMNS` order (a tuple or an asyncpg Record)."""
    try:
        cls, decode = _DECODERS[row[4]]
    except KeyError:
        raise ValueError(f"record {row[0]} is of an unknown kind {row[4]!r}") from None
    return decode(cls, row)


def records_from_rows(rows: Iterable[Sequence[Any]]) -> list[LogRecord]:
    return [record_from_row(row) for row in rows]


def last_closes(rows: Iterable[Sequence[Any]]) -> list[BoardRecord]:
    """The rows recovery reads of boards (`SnapshotSink.periods`) as records."""
    return [r for r in records_from_rows(rows)
            if isinstance(r, PeriodClosedRecord | BoardDefinedRecord | StandingRemovedRecord)]


def _last_per_key(items: Iterable[T], key: Any) -> list[T]:
    # A batch may carry several rows for one key; the last one is the current state,
    # exactly as if they had been upserted one after another.
    latest: dict[Any, T] = {}
    for item in items:
        latest[key(item)] = item
    return list(latest.values())


def repeated(items: Iterable[K]) -> list[K]:
    """Items that occur more than once, each listed once, in first-seen order."""
    seen: set[K] = set()
    twice: dict[K, None] = {}
    for item in items:
        if item in seen:
            twice[item] = None
        seen.add(item)
    return list(twice)


def unique(items: Iterable[K]) -> list[K]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch checked and encoded once, before any backend touches its database."""

    records: list[RecordRow]
    scores: list[ScoreValues]
    users: list[UserValues]
    action_keys: list[tuple[str, str]]
    proof_jtis: list[str]

    @property
    def seqs(self) -> list[int]:
        return [row[0] for row in self.records]

    def normalized_records(self) -> list[LogRecord]:
        """The records as a read would return them, in seq order."""
        return sorted(records_from_rows(self.records), key=lambda r: r.seq)


def _plain_action_rows(records: Sequence[LogRecord]) -> list[RecordRow] | None:
    """The rows of a batch made only of plain actions (no metadata or proof: what
    trusted backends send, and what boards that follow others score), checked for the
    whole batch at once, at C speed, like the score rows (`_checked_scores`): the text
    valid UTF-8 without NUL and the integers inside 64 bits. None when a record is of
    another shape or a value needs `record_row`'s field by field look (which then names
    the one that is wrong)."""
    kind = _ACTION_KIND
    rows: list[RecordRow] = []
    append = rows.append
    followed: list[BoardScore] = []  # every (board, prev, new) of the followed boards
    try:
        for r in records:
            if r.__class__ is not ActionRecord or r.metadata is not None \
                    or r.proof_jti is not None or r.proof_exp is not None:
                return None
            also: str | None = None
            if r.also:
                followed += r.also
                also = orjson.dumps(r.also).decode()
            append((r.seq, float(r.at), r.board, r.user_id, kind, r.action_type,
                    r.client_action_id, r.delta, r.prev_score, r.new_score, r.display_name,
                    None, None, None, None, None, also))
        if followed:  # the columns of the (board, prev, new) triples, at C speed
            if set(map(len, followed)) != {3}:
                return None
            boards, prevs, news = zip(*followed, strict=True)
        else:
            boards = prevs = news = ()
        text = "".join(chain(chain.from_iterable(map(_IDS, rows)),
                             [row[10] for row in rows if row[10] is not None], boards))
        numbers = list(chain(chain.from_iterable(map(_INTEGERS, rows)), prevs, news))
        if not text.isascii():
            text.encode()  # no lone surrogate (names are often not ASCII)
    except (TypeError, IndexError, UnicodeEncodeError, orjson.JSONEncodeError):
        return None  # the row by row check says which
    if "\x00" in text or not INT64_MIN <= min(numbers) <= max(numbers) <= INT64_MAX:
        return None
    return rows


_ACTION_KIND = _ENCODERS[ActionRecord][0]
_IDS = itemgetter(2, 3, 5, 6)  # board, user_id, action_type, client_action_id
_INTEGERS = itemgetter(0, 7, 8, 9)  # seq, delta, prev_score, new_score


def prepare(batch: CommitBatch) -> PreparedBatch:
    """Check and encode a batch; raises `StoreUnavailable` for values no backend can
    store (nothing is written)."""
    records = _plain_action_rows(batch.records) if len(batch.records) > 1 else None
    if records is None:
        records = [record_row(r) for r in batch.records]
    scores = _checked_scores(batch.scores)
    users: list[UserValues] = [
        (
            _required_text(u.user_id, "user_id"),
            _text(u.display_name, "display_name"),
            bool(u.frozen),
            bool(u.hidden),
            _text(u.flag, "flag"),
            None if u.tokens_revoked_at is None else float(u.tokens_revoked_at),
        )
        for u in _last_per_key(batch.users, lambda u: u.user_id)
    ]
    return PreparedBatch(
        records=records,
        scores=scores,
        users=users,
        action_keys=[(row[3], row[6]) for row in records if row[6] is not None],
        proof_jtis=[row[14] for row in records if row[14] is not None],
    )


def raise_conflicts(
    batch: PreparedBatch,
    taken_keys: Collection[tuple[str, str]],
    taken_jtis: Collection[str],
) -> None:
    """Raise `DuplicateAction` or `DuplicateProof` for keys already in the log or
    repeated within the batch itself; return when there are none."""
    keys = unique([k for k in batch.action_keys if k in taken_keys] + repeated(batch.action_keys))
    if keys:
        raise DuplicateAction(keys)
    jtis = unique([j for j in batch.proof_jtis if j in taken_jtis] + repeated(batch.proof_jtis))
    if jtis:
        raise DuplicateProof(jtis)


def already_committed(batch: PreparedBatch, stored: Sequence[LogRecord]) -> bool:
    """True when every record of the batch is in the log exactly as given.

    Transactions are atomic, so this means an earlier attempt whose outcome looked
    unknown (the connection died during COMMIT) did commit, rows included.
    """
    return bool(batch.records) and list(stored) == batch.normalized_records()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` items, in order."""
    if size < 1:
        raise ValueError("chunk must be >= 1")
    it = iter(items)
    while part := list(islice(it, size)):
        yield part
