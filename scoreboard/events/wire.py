"""A log record as other services receive it: one JSON object, on every transport.

The same object is an admin history entry, an SSE `data:` line and a JSON page entry
of `GET /api/v1/events`, and a NATS JetStream message body.
"""

from __future__ import annotations

from typing import Any

import orjson

from scoreboard.core.records import LogRecord
from scoreboard.read.views import iso


def record_json(r: LogRecord) -> dict[str, Any]:
    return {
        "seq": r.seq, "at": iso(r.at), "board": r.board, "userId": r.user_id, "kind": r.kind,
        "actionType": r.action_type, "clientActionId": r.client_action_id, "delta": r.delta,
        "prevScore": r.prev_score, "newScore": r.new_score, "displayName": r.display_name,
        "metadata": r.metadata, "actor": r.actor, "reason": r.reason, "proofJti": r.proof_jti,
    }


def record_bytes(r: LogRecord) -> bytes:
    return orjson.dumps(record_json(r))


def sse_events(records: list[LogRecord]) -> bytes:
    """Records as SSE: `id: <seq>`, `event: <kind>`, `data: <the record>` each."""
    return b"".join(
        b"id: %d\nevent: %s\ndata: %s\n\n" % (r.seq, r.kind.encode(), record_bytes(r))
        for r in records
    )
