"""The OpenAPI document follows the settings, and its constraints say exactly what
the body readers of `scoreboard.edge.validation` accept (checked value by value on the
awkward cases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import orjson
import pytest

from scoreboard.core.errors import Refused
from scoreboard.core.ranking import MAX_SCORE
from scoreboard.edge import validation as v
from scoreboard.edge.bodies import (
    ActionRequest,
    AdjustRequest,
    PrivacyRequest,
    ProofRequest,
    ReasonRequest,
)
from scoreboard.edge.contract import BOARD, MAX_REASON, ecma
from scoreboard.edge.errors import codes_by_status
from scoreboard.http.openapi import build_openapi
from scoreboard.settings.model import load_settings


def settings_for(tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "server.data_dir": str(tmp_path),
        "auth.jwt_secret": "unit-test-secret-0123456789abcdef",
        "proofs.secret": "unit-proof-secret-0123456789abcdef",
    }
    values.update(overrides)
    return load_settings(values, environ={})


@pytest.fixture
def doc(tmp_path: Path) -> dict[str, Any]:
    return build_openapi(settings_for(tmp_path))


def field(doc: dict[str, Any], schema: str, name: str) -> jsonschema_rs.Validator:
    """A validator for one property of a component schema, references resolved."""
    return jsonschema_rs.validator_for({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{schema}/properties/{name}",
        "components": doc["components"],
    })


def reads(body_type: type[msgspec.Struct], **fields: Any) -> Any:
    """What the handler's reader makes of a body with `fields` (or a Refused)."""
    return v.BodyReader(body_type).read(orjson.dumps(fields))


GOOD_ACTION = {"actionType": "WIN_MATCH", "clientActionId": "c1"}
GOOD_ADJUST = {"delta": 5, "reason": "why", "clientActionId": "c1"}
GOOD_PROOF = {"userId": "amy", "actionType": "WIN_MATCH"}


def accepts(check: Any, value: Any) -> bool:
    try:
        check(value)
    except Refused:
        return False
    return True


def test_follows_the_settings(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        **{
            "leaderboard.public": False,
            "leaderboard.max_limit": 42,
            "leaderboard.boards": ["global", "weekly"],
            "auth.admin_scope": "ops:admin",
            "proofs.max_ttl_seconds": 90,
            "proofs.ttl_seconds": 60,
        },
    )
    doc = build_openapi(settings)
    actions = doc["components"]["schemas"]["ActionRequest"]["properties"]["actionType"]
    assert actions["enum"] == sorted(settings.rules)
    top = doc["paths"]["/api/v1/leaderboard"]["get"]
    limit = next(p for p in top["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 42
    board = next(p for p in top["parameters"] if p["name"] == "board")
    # any board id (administrators create boards at run time), the configured ones as
    # examples
    assert "enum" not in board["schema"] and board["schema"]["examples"] == ["global", "weekly"]
    assert board["schema"]["pattern"] == ecma(BOARD)
    assert top["security"] == [{"bearerAuth": []}]  # not public: a token is required
    flags = doc["paths"]["/api/v1/admin/flags"]["get"]
    assert flags["security"] == [{"bearerAuth": ["ops:admin"]}]
    ttl = doc["components"]["schemas"]["ProofRequest"]["properties"]["ttlSeconds"]
    assert ttl["maximum"] == 90


def test_public_boards_take_an_optional_token(doc: dict[str, Any]) -> None:
    assert doc["paths"]["/api/v1/leaderboard"]["get"]["security"] == [{}, {"bearerAuth": []}]
    assert doc["paths"]["/api/v1/users/me/score"]["get"]["security"] == [{"bearerAuth": []}]


def test_every_error_answer_uses_the_error_schema(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                # A stream's headers leave before the middleware adds the request id.
                streaming = "text/event-stream" in answer.get("content", {})
                assert streaming or "X-Request-ID" in answer["headers"], (method, path, status)
                if int(status) >= 400 and not (path == "/ready" and status == "503"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
                    codes = schema["allOf"][1]["properties"]["error"]["properties"]["code"]
                    assert set(codes["enum"]) <= set(
                        doc["components"]["schemas"]["ErrorCode"]["enum"]
                    )


IDS = ["", "a", "x" * 128, "x" * 129, "é" * 128, "bob\n", "a\x00b", "a\x7f", "tab\there",
       "a/b", "me", " "]


@pytest.mark.parametrize("value", IDS)
def test_user_ids_agree(doc: dict[str, Any], value: str) -> None:
    assert field(doc, "ProofRequest", "userId").is_valid(value) == accepts(v.user_id, value)


@pytest.mark.parametrize("value", IDS)
def test_client_action_ids_agree(doc: dict[str, Any], value: str) -> None:
    def check(s: str) -> None:
        reads(ActionRequest, **{**GOOD_ACTION, "clientActionId": s})

    assert field(doc, "ActionRequest", "clientActionId").is_valid(value) == accepts(check, value)


@pytest.mark.parametrize("value", ["x" * MAX_REASON, "x" * (MAX_REASON + 1), "why\n", "ok"])
def test_reasons_agree(doc: dict[str, Any], value: str) -> None:
    def check(s: str) -> None:
        reads(ReasonRequest, reason=s)

    assert field(doc, "ReasonRequest", "reason").is_valid(value) == accepts(check, value)


@pytest.mark.parametrize("value", ["global", "a" * 64, "a" * 65, "global\n", "-x", "Global",
                                   "", "a_b-c", "9"])
def test_board_patterns_agree(doc: dict[str, Any], value: str) -> None:
    assert field(doc, "ActionRequest", "board").is_valid(value) == accepts(v.board_name, value)


@pytest.mark.parametrize("value", ["a.b.c", "a.b.", "a.b", "a.b.c\n", "a.b.c.d", "a+.b.c"])
def test_proof_patterns_agree(doc: dict[str, Any], value: str) -> None:
    def check(s: str) -> None:
        reads(ActionRequest, **GOOD_ACTION, proof=s)

    assert field(doc, "ActionRequest", "proof").is_valid(value) == accepts(check, value)


@pytest.mark.parametrize("value", [1, 600, 601, 0, 5.5, True, "5", None, 1e300])
def test_integers_agree(doc: dict[str, Any], value: Any) -> None:
    def check(n: Any) -> None:
        body = reads(ProofRequest, **GOOD_PROOF, ttlSeconds=n)
        if body.ttl_seconds > 600:  # proofs.max_ttl_seconds, checked by the handler
            raise v.BadRequest("ttlSeconds: too long")

    assert field(doc, "ProofRequest", "ttlSeconds").is_valid(value) == accepts(check, value)


def test_integral_floats_are_refused_though_json_schema_allows_them(doc: dict[str, Any]) -> None:
    # The one deliberate difference: strict validation refuses 5.0 for an integer.
    assert field(doc, "ProofRequest", "ttlSeconds").is_valid(5.0)
    assert not accepts(lambda n: reads(ProofRequest, **GOOD_PROOF, ttlSeconds=n), 5.0)


@pytest.mark.parametrize("value", [MAX_SCORE, -MAX_SCORE, MAX_SCORE + 1, 0, 7])
def test_deltas_agree_but_for_zero(doc: dict[str, Any], value: int) -> None:
    # 0 passes validation and is then refused by the engine ("delta must not be 0").
    expected = accepts(lambda n: reads(AdjustRequest, **{**GOOD_ADJUST, "delta": n}),
                       value) and value != 0
    assert field(doc, "AdjustRequest", "delta").is_valid(value) == expected


@pytest.mark.parametrize("raw", ["²", "١٢", "1.0", "-1", "", "0" * 7])
def test_query_integers_refuse_what_int_cannot_read(raw: str) -> None:
    with pytest.raises(v.BadRequest):
        v.int_param(raw, "limit", 10, 1, 100)


def test_a_history_cursor_takes_any_seq_up_to_its_maximum() -> None:
    assert v.int_param(str(2**48), "cursor", 0, 1, 2**48) == 2**48
    assert v.int_param("1234567", "cursor", 0, 1, 2**48) == 1234567
    with pytest.raises(v.BadRequest):
        v.int_param(str(2**48 + 1), "cursor", 0, 1, 2**48)


@pytest.mark.parametrize("body_type", [ActionRequest, AdjustRequest, ReasonRequest,
                                       ProofRequest, PrivacyRequest])
def test_request_bodies_name_the_fields_the_handlers_accept(
    doc: dict[str, Any], body_type: type[msgspec.Struct]
) -> None:
    schema = doc["components"]["schemas"][body_type.__name__]
    fields = {f.encode_name for f in msgspec.structs.fields(body_type)}
    assert set(schema["properties"]) == fields and schema["additionalProperties"] is False
    with pytest.raises(v.BadRequest, match="unknown field"):
        v.BodyReader(body_type).read(b'{"zzz": 1}')


def test_every_error_code_in_the_table_is_in_the_document(doc: dict[str, Any]) -> None:
    documented = set(doc["components"]["schemas"]["ErrorCode"]["enum"])
    assert documented == {code for codes in codes_by_status().values() for code in codes}
    assert {"METHOD_NOT_ALLOWED", "REQUEST_TIMEOUT", "HEADERS_TOO_LARGE",
            "STORE_UNAVAILABLE", "QUOTA_EXCEEDED"} <= documented


def test_every_declared_field_is_in_its_component(doc: dict[str, Any]) -> None:
    """Each body and reply Struct's fields, by their JSON names, are its component's
    properties — including fields that share a name with a JSON Schema keyword (title)."""
    from scoreboard.edge import bodies, replies
    schemas = doc["components"]["schemas"]
    checked = 0
    for module in (bodies, replies):
        for name, struct in vars(module).items():
            if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)
                    and name in schemas and "properties" in schemas[name]):
                continue
            info = msgspec.inspect.type_info(struct)
            assert isinstance(info, msgspec.inspect.StructType)
            declared = {f.encode_name for f in info.fields}
            assert declared == set(schemas[name]["properties"]), name
            checked += 1
    assert checked >= 10
    assert "title" in schemas["Board"]["properties"]
