"""Administration and anti-cheat endpoints: adjustments, freezing, history, abuse
flags, action proofs and the user's own privacy switch.

Every change here is an ordinary command to the writer, so it lands in the log with
who made it, survives restarts and reaches live viewers like any score change.
"""

from __future__ import annotations

import time
from typing import TypeVar

import msgspec
import orjson
from aiohttp import web
from msgspec import UNSET

from scoreboard.auth.proofs import ProofAuthority
from scoreboard.auth.tokens import Principal
from scoreboard.core.commands import (
    ActionResult,
    AdjustScore,
    ClearFlag,
    RevokeTokens,
    SetFrozen,
    SetNameHidden,
    UserResult,
)
from scoreboard.core.engine import Engine
from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.bodies import AdjustRequest, PrivacyRequest, ProofRequest, ReasonRequest
from scoreboard.edge.envelope import Routes, json_response
from scoreboard.edge.errors import BadRequest, UnknownResource
from scoreboard.events.wire import record_json
from scoreboard.http.public import Gatekeeper, action_json
from scoreboard.read.views import iso
from scoreboard.storage.base import ActionLog
from scoreboard.writer.actor import Submitter

B = TypeVar("B", bound=msgspec.Struct)
ADJUST_BODY = v.BodyReader(AdjustRequest)
REASON_BODY = v.BodyReader(ReasonRequest)
PROOF_BODY = v.BodyReader(ProofRequest)
PRIVACY_BODY = v.BodyReader(PrivacyRequest)


def user_json(r: UserResult) -> bytes:
    return orjson.dumps({"userId": r.user_id, "frozen": r.frozen, "hidden": r.hidden,
                         "flag": r.flag, "seq": r.seq, "at": iso(r.at)})


class AdminApi:
    def __init__(self, gate: Gatekeeper, writer: Submitter, engine: Engine, store: ActionLog,
                 proofs: ProofAuthority) -> None:
        self.gate = gate
        self.settings = gate.settings
        self.writer = writer
        self.engine = engine
        self.store = store
        self.proofs = proofs

    def add_routes(self, routes: Routes) -> None:
        routes.add_post(c.ADJUST_PATH, self.adjust)
        routes.add_post(c.FREEZE_PATH, self.freeze)
        routes.add_post(c.UNFREEZE_PATH, self.unfreeze)
        routes.add_post(c.UNFLAG_PATH, self.unflag)
        routes.add_post(c.REVOKE_PATH, self.revoke_tokens)
        routes.add_get(c.HISTORY_PATH, self.history)
        routes.add_get(c.FLAGS_PATH, self.flags)
        routes.add_post(c.PROOFS_PATH, self.mint_proof)
        routes.add_put(c.PRIVACY_PATH, self.privacy)

    def admin(self, request: web.Request) -> Principal:
        return self.gate.scoped(request, self.settings.auth.admin_scope)

    async def body(self, request: web.Request, reader: v.BodyReader[B]) -> B:
        return reader.read(await self.gate.json_body(request))

    async def adjust(self, request: web.Request) -> web.Response:
        admin = self.admin(request)
        user_id = v.user_id(request.match_info["userId"])
        body = await self.body(request, ADJUST_BODY)
        cmd = AdjustScore(
            user_id=user_id, actor=admin.user_id, board=body.board or c.DEFAULT_BOARD,
            delta=body.delta, reason=body.reason, client_action_id=body.client_action_id,
            create=body.create,
        )
        result = await self.writer.submit(cmd)
        assert isinstance(result, ActionResult)
        return json_response(action_json(result))

    async def _user_change(self, request: web.Request, frozen: bool | None) -> web.Response:
        admin = self.admin(request)
        user_id = v.user_id(request.match_info["userId"])
        reason = (await self.body(request, REASON_BODY)).reason
        cmd: SetFrozen | ClearFlag
        if frozen is None:
            cmd = ClearFlag(user_id=user_id, actor=admin.user_id, reason=reason)
        else:
            cmd = SetFrozen(user_id=user_id, actor=admin.user_id, frozen=frozen, reason=reason)
        result = await self.writer.submit(cmd)
        assert isinstance(result, UserResult)
        return json_response(user_json(result))

    async def freeze(self, request: web.Request) -> web.Response:
        return await self._user_change(request, True)

    async def unfreeze(self, request: web.Request) -> web.Response:
        return await self._user_change(request, False)

    async def unflag(self, request: web.Request) -> web.Response:
        return await self._user_change(request, None)

    async def revoke_tokens(self, request: web.Request) -> web.Response:
        """Log out everywhere: a logged record; live connections close on its commit."""
        admin = self.admin(request)
        user_id = v.user_id(request.match_info["userId"])
        body = await self.body(request, REASON_BODY)
        cmd = RevokeTokens(user_id=user_id, actor=admin.user_id, reason=body.reason)
        result = await self.writer.submit(cmd)
        assert isinstance(result, UserResult)
        at = iso(result.at)
        return json_response(orjson.dumps({"userId": user_id, "tokensRevokedAt": at,
                                           "seq": result.seq, "at": at}))

    async def history(self, request: web.Request) -> web.Response:
        self.admin(request)
        user_id = v.user_id(request.match_info["userId"])
        limit = v.int_param(request.query.get("limit"), "limit", c.HISTORY_DEFAULT, 1,
                            c.HISTORY_LIMIT)
        cursor_raw = request.query.get("cursor")
        cursor = None
        if cursor_raw is not None:
            cursor = v.int_param(cursor_raw, "cursor", 0, 1, c.MAX_HISTORY_CURSOR)
        records = await self.store.history(user_id, before_seq=cursor, limit=limit)
        next_cursor = str(records[-1].seq) if len(records) == limit else None
        return json_response(orjson.dumps({
            "userId": user_id, "records": [record_json(r) for r in records],
            "nextCursor": next_cursor,
        }))

    async def flags(self, request: web.Request) -> web.Response:
        self.admin(request)
        engine = self.engine
        return json_response(orjson.dumps({"flags": [
            {"userId": u, "reason": reason, "frozen": engine.is_frozen(u),
             "displayName": engine.chosen_name(u)}
            for u, reason in engine.flagged()
        ]}))

    async def mint_proof(self, request: web.Request) -> web.Response:
        self.gate.scoped(request, self.settings.auth.service_scope)
        body = await self.body(request, PROOF_BODY)
        user_id, action = body.user_id, body.action_type
        rule = self.settings.rules.get(action)
        if rule is None:
            raise self.settings.rules.unknown(action)
        if body.value is not None and not rule.valued:
            raise BadRequest(f'value: {action} does not score a value (no value = "proof")')
        proofs = self.settings.proofs
        ttl = proofs.ttl_seconds if body.ttl_seconds is UNSET else body.ttl_seconds
        if ttl > proofs.max_ttl_seconds:
            raise BadRequest(f"ttlSeconds: must be an integer from 1 to {proofs.max_ttl_seconds}")
        board = body.board
        if board is not None and self.engine.ranking(board) is None:
            raise UnknownResource(f"no board {board!r}")
        now = time.time()
        token = self.proofs.mint(user_id, action, ttl=ttl, now=now, board=board, value=body.value)
        reply: dict[str, object] = {"proof": token, "userId": user_id, "actionType": action,
                                    "expiresAt": iso(int(now + ttl))}
        if board is not None:
            reply["board"] = board
        if body.value is not None:
            reply["value"] = body.value
        return json_response(orjson.dumps(reply))

    async def privacy(self, request: web.Request) -> web.Response:
        principal = self.gate.caller(request)
        body = await self.body(request, PRIVACY_BODY)
        result = await self.writer.submit(SetNameHidden(user_id=principal.user_id,
                                                        hidden=body.hide_name))
        assert isinstance(result, UserResult)
        return json_response(user_json(result))
