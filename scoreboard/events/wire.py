"""A log record as other services receive it: one JSON object, on every transport.

The same object is an admin history entry, an SSE `data:` line and a JSON page entry
of `GET /api/v1/events`, and a NATS JetStream message body. Every kind has every key,
in one order: a kind without a field gives its empty value (null, or 0 for the score
fields), so a consumer reads one shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from scoreboard.core.records import (
    RECORD_TYPES,
    ActionRecord,
    AdjustRecord,
    BoardDefinedRecord,
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
from scoreboard.read.views import iso


def _json(
    r: LogRecord, kind: str, action_type: str | None, client_action_id: str | None,
    delta: int, prev_score: int, new_score: int, metadata: dict[str, Any] | None,
    actor: str | None, reason: str | None, proof_jti: str | None,
) -> dict[str, Any]:
    return {
        "seq": r.seq, "at": iso(r.at), "board": r.board, "userId": r.user_id, "kind": kind,
        "actionType": action_type, "clientActionId": client_action_id, "delta": delta,
        "prevScore": prev_score, "newScore": new_score, "displayName": r.display_name,
        "metadata": metadata, "actor": actor, "reason": reason, "proofJti": proof_jti,
    }


def _action(r: ActionRecord, kind: str) -> dict[str, Any]:
    body = _json(r, kind, r.action_type, r.client_action_id, r.delta, r.prev_score,
                 r.new_score, r.metadata, None, None, r.proof_jti)
    if r.also:
        body["also"] = [{"board": b, "prevScore": p, "newScore": n} for b, p, n in r.also]
    return body


def _when(t: float | None) -> str | None:
    return None if t is None or t in (float("inf"), float("-inf")) else iso(t)


def _period(r: PeriodClosedRecord, kind: str) -> dict[str, Any]:
    body = _json(r, kind, None, None, 0, 0, 0, None, r.actor, r.reason, None)
    body["period"] = {"id": r.period, "startsAt": _when(r.starts_at), "endsAt": _when(r.ends_at)}
    body["next"] = None if r.next_period is None else {
        "id": r.next_period, "startsAt": _when(r.next_starts_at),
        "endsAt": _when(r.next_ends_at)}
    body["top"] = [{"rank": rank, "userId": u, "score": score} for u, score, rank in r.top]
    body["totalUsers"] = r.total_users
    return body


def _board(r: BoardDefinedRecord, kind: str) -> dict[str, Any]:
    body = _json(r, kind, None, None, 0, 0, 0, None, r.actor, r.reason, None)
    d = r.definition
    body["definition"] = {
        "title": d.title, "sort": d.sort, "operator": d.operator, "follows": list(d.follows),
        "reset": d.reset, "timezone": d.timezone, "start": _when(d.start), "end": _when(d.end),
        "ranks": d.ranks}
    return body


def _adjust(r: AdjustRecord, kind: str) -> dict[str, Any]:
    return _json(r, kind, None, r.client_action_id, r.delta, r.prev_score, r.new_score,
                 None, r.actor, r.reason, None)


def _moderation(r: ModerationRecord, kind: str) -> dict[str, Any]:
    return _json(r, kind, None, None, 0, r.prev_score, r.new_score, None, r.actor, r.reason,
                 None)


def _exclusion(r: PeriodExclusionRecord, kind: str) -> dict[str, Any]:
    body = _moderation(r, kind)
    body["period"] = r.period
    return body


def _standing(r: StandingRecord, kind: str) -> dict[str, Any]:
    return _json(r, kind, None, None, 0, r.prev_score, r.new_score, None, None, None, None)


# How each record class is written; every class of `RECORD_TYPES` must have an entry
# (checked here at import and by the codec tests).
ENCODERS: dict[type[LogRecord], Callable[[Any, str], dict[str, Any]]] = {
    ActionRecord: _action,
    AdjustRecord: _adjust,
    FreezeRecord: _moderation,
    UnfreezeRecord: _moderation,
    FlagRecord: _moderation,
    UnflagRecord: _moderation,
    RevokeTokensRecord: _moderation,
    HideNameRecord: _standing,
    ShowNameRecord: _standing,
    PeriodClosedRecord: _period,
    BoardDefinedRecord: _board,
    StandingRemovedRecord: _moderation,
    PeriodExclusionRecord: _exclusion,
}
_BY_CLASS = {cls: (kind.value, ENCODERS[cls]) for kind, cls in RECORD_TYPES.items()}


def record_json(r: LogRecord) -> dict[str, Any]:
    kind, encode = _BY_CLASS[type(r)]
    return encode(r, kind)


def record_bytes(r: LogRecord) -> bytes:
    return orjson.dumps(record_json(r))


def sse_events(records: list[LogRecord]) -> bytes:
    """Records as SSE: `id: <seq>`, `event: <kind>`, `data: <the record>` each."""
    out = []
    for r in records:
        body = record_json(r)
        out.append(b"id: %d\nevent: %s\ndata: %s\n\n"
                   % (r.seq, body["kind"].encode(), orjson.dumps(body)))
    return b"".join(out)
