"""Trusted backends report many users' actions at once (SPEC §4 "Trusted backends").

`POST /api/v1/scores/actions/batch` with a service-scope token and
`{"actions": [{"userId", "actionType", "clientActionId", "board"?, "displayName"?,
"metadata"?, "value"?}, ...]}`; `value` is what a rule with `value = "proof"` scores (SPEC
§11), which a user's own body may never carry. Each action is checked like a single one
and becomes the same command; the writer takes them as one unit, decides them in order
and commits them in one transaction, so rules, quotas, frozen users, abuse flags and
idempotency per `(userId, clientActionId)` hold exactly as for single actions.

The answer lists, in request order, each action's single-action reply or its own
refusal (an unknown action or board, a frozen user, a quota, an idempotency conflict)
with the status a single action would have had. A malformed request (not a list, too
many actions, an action that is not a well-formed action object, a token without the
scope, too big a body) is refused whole, before anything is decided, and so is a batch
the writer could not take or commit (503): nothing in it was acknowledged, and sending
it again is safe, since every action already committed comes back as a replay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.core.errors import Refused
from scoreboard.core.names import INVISIBLE, visible
from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.bodies import BatchAction, BatchRequest
from scoreboard.edge.envelope import Routes, json_response
from scoreboard.edge.errors import BadRequest, describe
from scoreboard.http.public import Gatekeeper, action_fields
from scoreboard.read.views import iso
from scoreboard.runtime.metrics import Metrics
from scoreboard.writer.actor import Result, Submitter, WriterError

BATCH_BODY = v.BodyReader(BatchRequest, printable_at_once=True)


def item_error(exc: Refused) -> dict[str, Any]:
    """One action's refusal: its code and message, and the status it would have had."""
    status, code, message, headers = describe(exc)
    out: dict[str, Any] = {"error": {"code": code, "message": message}, "status": status}
    if "Retry-After" in headers:
        out["retryAfter"] = int(headers["Retry-After"])
    return out


def results_body(outcomes: Sequence[Result | Refused], metrics: Metrics) -> bytes:
    """`{"results": [...]}` in request order, one `orjson.dumps` for the whole reply;
    counted per outcome in the action metrics, up to a `WriterError`, which is raised."""
    counts: Counter[str] = Counter()  # refusals by code
    accepted = replayed = 0
    stamps: dict[float, str] = {}  # a batch's records share their time, mostly
    results: list[dict[str, Any]] = []
    append = results.append
    try:
        for out in outcomes:
            if out.__class__ is ActionResult:  # nearly every outcome
                assert isinstance(out, ActionResult)
                if out.replayed:
                    replayed += 1
                else:
                    accepted += 1
                at = stamps.get(out.at)
                if at is None:
                    at = stamps[out.at] = iso(out.at)
                append(action_fields(out, at))
            elif isinstance(out, WriterError):
                raise out  # not taken or not committed: the whole batch may be sent again
            else:
                assert isinstance(out, Refused)
                counts[out.code] += 1
                append(item_error(out))
    finally:
        counts["ACCEPTED"] += accepted
        counts["REPLAYED"] += replayed
        for code, count in counts.items():
            if count:
                metrics.action(code, count)
    return orjson.dumps({"results": results})


class BatchApi:
    def __init__(self, gate: Gatekeeper, writer: Submitter) -> None:
        self.gate = gate
        self.settings = gate.settings
        self.metrics = gate.metrics
        self.writer = writer

    def add_routes(self, routes: Routes) -> None:
        routes.add_post(c.BATCH_PATH, self.post_batch)

    def command(self, item: BatchAction, i: int) -> SubmitAction:
        """One decoded action as the command a single action would become."""
        metadata = item.metadata
        if metadata is not None:  # (the path is spelled only when it is checked)
            metadata = v.metadata(metadata, self.settings.limits.max_metadata_bytes,
                                  f"actions[{i}].metadata")
        name = item.display_name
        if name is not None and INVISIBLE.search(name):
            name = visible(name) or None  # as a token's name claim: bidi and zero-width go
        return SubmitAction(item.user_id, name, item.board or c.DEFAULT_BOARD,
                            item.action_type, item.client_action_id, metadata,
                            value=item.value)

    def commands(self, items: Sequence[BatchAction]) -> list[SubmitAction]:
        """`command` of each item; one with no name or metadata (most) written out."""
        commands: list[SubmitAction] = []
        append, default_board = commands.append, c.DEFAULT_BOARD
        for i, item in enumerate(items):
            if item.metadata is None and item.display_name is None:
                append(SubmitAction(item.user_id, None, item.board or default_board,
                                    item.action_type, item.client_action_id, None, None,
                                    item.value))
            else:
                append(self.command(item, i))
        return commands

    async def post_batch(self, request: web.Request) -> web.Response:
        gate = self.gate
        limits = self.settings.limits
        principal = gate.scoped(request, self.settings.auth.service_scope)
        verdict = gate.limit(request, principal.user_id)
        body = BATCH_BODY.read(await gate.json_body(request, cap=limits.max_batch_body_bytes))
        if len(body.actions) > limits.max_batch_actions:
            raise BadRequest(f"actions: must hold at least 1 and at most "
                             f"{limits.max_batch_actions} items")
        commands = self.commands(body.actions)
        reply = results_body(await self.writer.submit_many(commands), self.metrics)
        return json_response(reply, headers=verdict.headers() if verdict else None)
