"""Trusted backends report many users' actions at once (SPEC §4 "Trusted backends").

`POST /api/v1/scores/actions/batch` with a service-scope token and
`{"actions": [{"userId", "actionType", "clientActionId", "board"?, "displayName"?,
"metadata"?}, ...]}`. Each action is checked like a single one and becomes the same
command; the writer takes them as one unit, decides them in order and commits them in
one transaction, so rules, quotas, frozen users, abuse flags and idempotency per
`(userId, clientActionId)` hold exactly as for single actions.

The answer lists, in request order, each action's single-action reply or its own
refusal (an unknown action or board, a frozen user, a quota, an idempotency conflict)
with the status a single action would have had. A malformed request (not a list, too
many actions, an action that is not a well-formed action object, a token without the
scope, too big a body) is refused whole, before anything is decided, and so is a batch
the writer could not take or commit (503): nothing in it was acknowledged, and sending
it again is safe, since every action already committed comes back as a replay.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.core.errors import Refused
from scoreboard.http import contract as c
from scoreboard.http import validation as v
from scoreboard.http.envelope import Routes, json_response
from scoreboard.http.errors import BadRequest, describe
from scoreboard.http.public import Gatekeeper, action_json
from scoreboard.writer import Writer, WriterError


def item_error(exc: Refused) -> bytes:
    """One action's refusal: its code and message, and the status it would have had."""
    status, code, message, headers = describe(exc)
    out: dict[str, Any] = {"error": {"code": code, "message": message}, "status": status}
    if "Retry-After" in headers:
        out["retryAfter"] = int(headers["Retry-After"])
    return orjson.dumps(out)


class BatchApi:
    def __init__(self, gate: Gatekeeper, writer: Writer) -> None:
        self.gate = gate
        self.settings = gate.settings
        self.metrics = gate.metrics
        self.writer = writer

    def add_routes(self, routes: Routes) -> None:
        routes.add_post(c.BATCH_PATH, self.post_batch)

    def command(self, item: Any) -> SubmitAction:
        if not isinstance(item, dict):
            raise BadRequest("each action must be a JSON object")
        v.reject_unknown(item, c.BATCH_ITEM_FIELDS)
        user_id = v.string(item, "userId", required=True)
        action_type = v.string(item, "actionType", required=True, max_len=c.MAX_ACTION_TYPE)
        client_action_id = v.string(item, "clientActionId", required=True)
        board = v.board_name(v.string(item, "board", required=False, max_len=c.MAX_BOARD))
        name = v.string(item, "displayName", required=False, max_len=c.MAX_NAME)
        metadata = v.metadata(item, self.settings.limits.max_metadata_bytes)
        assert user_id is not None and action_type is not None
        assert client_action_id is not None
        return SubmitAction(user_id, name, board, action_type, client_action_id, metadata)

    async def post_batch(self, request: web.Request) -> web.Response:
        gate = self.gate
        limits = self.settings.limits
        principal = gate.scoped(request, self.settings.auth.service_scope)
        verdict = gate.limit(request, principal.user_id)
        body = await gate.json_body(request, cap=limits.max_batch_body_bytes)
        v.reject_unknown(body, c.BATCH_FIELDS)
        items = body.get("actions")
        if not isinstance(items, list):
            raise BadRequest("actions must be a list")
        if not 1 <= len(items) <= limits.max_batch_actions:
            raise BadRequest(f"actions must hold 1 to {limits.max_batch_actions} actions")
        commands: list[SubmitAction] = []
        for i, item in enumerate(items):
            try:
                commands.append(self.command(item))
            except BadRequest as exc:
                raise BadRequest(f"actions[{i}]: {exc.message}") from None
        parts: list[bytes] = []
        for out in await self.writer.submit_many(commands):
            if isinstance(out, WriterError):
                raise out  # not taken or not committed: the whole batch may be sent again
            if isinstance(out, Refused):
                self.metrics.action(out.code)
                parts.append(item_error(out))
            else:
                assert isinstance(out, ActionResult)
                self.metrics.action("REPLAYED" if out.replayed else "ACCEPTED")
                parts.append(action_json(out))
        return json_response(b'{"results":[' + b",".join(parts) + b"]}",
                             headers=verdict.headers() if verdict else None)
