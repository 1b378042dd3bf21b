"""Every hostile request gets its documented status and changes nothing (SPEC §4, §6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.conftest import SECRET, Running, ServerFactory

ACTIONS = "/api/v1/scores/actions"
GOOD = {"actionType": "COMPLETE_LEVEL", "clientActionId": "c-1"}


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def raw_hs256(payload: bytes, key: bytes, header: bytes = b'{"alg":"HS256","typ":"JWT"}') -> str:
    signing = b64(header) + b"." + b64(payload)
    return (signing + b"." + b64(hmac.new(key, signing, hashlib.sha256).digest())).decode()


def exp(delta: float = 600) -> int:
    return int(time.time() + delta)


async def assert_unchanged(server: Running) -> None:
    status, board = await server.get("/api/v1/leaderboard")
    assert status == 200 and board["totalUsers"] == 0, board
    assert server.service.engine.last_seq == 0


async def post(server: Running, *, token: str | None = None, json: Any = None,
               data: bytes | None = None, headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, Any]]:
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if json is not None and data is None:
        import orjson
        data = orjson.dumps(json)
        h.setdefault("Content-Type", "application/json")
    payload = io.BytesIO(data) if isinstance(data, bytes) else data
    async with server.http.post(f"{server.url}{ACTIONS}", data=payload, headers=h) as r:
        body = await r.json(content_type=None)
        assert "error" in body, body
        assert body["error"]["requestId"] == r.headers["X-Request-ID"]
        return r.status, body


def _public_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


BAD_TOKENS = {
    "alg none": lambda: (b64(b'{"alg":"none","typ":"JWT"}') + b"." + b64(
        b'{"sub":"alice","exp":%d}' % exp()) + b".").decode(),
    "wrong key": lambda: jwt.encode({"sub": "alice", "exp": exp()},
                                    "some-other-secret-that-is-long-enough", algorithm="HS256"),
    "HS256 signed with a public key": lambda: raw_hs256(
        b'{"sub":"alice","exp":%d}' % exp(), _public_pem()),
    "expired": lambda: jwt.encode({"sub": "alice", "exp": exp(-3600)}, SECRET, algorithm="HS256"),
    "missing sub": lambda: jwt.encode({"exp": exp()}, SECRET, algorithm="HS256"),
    "non-string sub": lambda: raw_hs256(b'{"sub":42,"exp":%d}' % exp(), SECRET.encode()),
    "no exp": lambda: jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
    "oversized": lambda: jwt.encode({"sub": "alice", "exp": exp(), "x": "y" * 5000}, SECRET,
                                    algorithm="HS256"),
    "garbage": lambda: "not-a-token",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
async def test_bad_tokens_are_401(server: Running, name: str) -> None:
    status, body = await post(server, token=BAD_TOKENS[name](), json=GOOD)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    await assert_unchanged(server)


async def test_no_token_and_bad_scheme(server: Running) -> None:
    assert (await post(server, json=GOOD))[0] == 401
    assert (await post(server, json=GOOD, headers={"Authorization": "Basic abc"}))[0] == 401
    await assert_unchanged(server)


async def test_wrong_audience_and_issuer(start_server: ServerFactory) -> None:
    server = await start_server(**{"auth.issuer": "https://idp", "auth.audience": "scores"})
    for claims in ({"iss": "https://evil", "aud": "scores"}, {"iss": "https://idp", "aud": "x"}):
        token = jwt.encode({"sub": "alice", "exp": exp(), **claims}, SECRET, algorithm="HS256")
        status, _ = await post(server, token=token, json=GOOD)
        assert status == 401, claims
    await assert_unchanged(server)
    ok = jwt.encode({"sub": "alice", "exp": exp(), "iss": "https://idp", "aud": "scores"},
                    SECRET, algorithm="HS256")
    async with server.http.post(f"{server.url}{ACTIONS}", json=GOOD,
                                headers={"Authorization": f"Bearer {ok}"}) as r:
        assert r.status == 200


BAD_BODIES: dict[str, tuple[Any, int, str]] = {
    "userId in body": ({**GOOD, "userId": "bob"}, 400, "INVALID_REQUEST"),
    "points in body": ({**GOOD, "points": 1000}, 400, "INVALID_REQUEST"),
    "unknown action": ({**GOOD, "actionType": "WIN_EVERYTHING"}, 400, "UNKNOWN_ACTION"),
    "actionType int": ({**GOOD, "actionType": 5}, 400, "INVALID_REQUEST"),
    "actionType bool": ({**GOOD, "actionType": True}, 400, "INVALID_REQUEST"),
    "clientActionId float": ({**GOOD, "clientActionId": 1.5}, 400, "INVALID_REQUEST"),
    "clientActionId empty": ({**GOOD, "clientActionId": ""}, 400, "INVALID_REQUEST"),
    "clientActionId too long": ({**GOOD, "clientActionId": "x" * 129}, 400, "INVALID_REQUEST"),
    "clientActionId control chars": ({**GOOD, "clientActionId": "a\nb"}, 400, "INVALID_REQUEST"),
    "missing clientActionId": ({"actionType": "COMPLETE_LEVEL"}, 400, "INVALID_REQUEST"),
    "missing actionType": ({"clientActionId": "x"}, 400, "INVALID_REQUEST"),
    "board not a string": ({**GOOD, "board": ["global"]}, 400, "INVALID_REQUEST"),
    "unknown board": ({**GOOD, "board": "elsewhere"}, 404, "NOT_FOUND"),
    "metadata not an object": ({**GOOD, "metadata": [1, 2]}, 400, "INVALID_REQUEST"),
    "metadata deep": ({**GOOD, "metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, 400,
                      "INVALID_REQUEST"),
    "metadata large": ({**GOOD, "metadata": {"x": "y" * 3000}}, 400, "INVALID_REQUEST"),
    "metadata with NUL": ({**GOOD, "metadata": {"x": "a\u0000b"}}, 400, "INVALID_REQUEST"),
    "array body": ([GOOD], 400, "INVALID_REQUEST"),
    "string body": ("hello", 400, "INVALID_REQUEST"),
    "null body": (None, 400, "INVALID_REQUEST"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
async def test_bad_bodies(server: Running, name: str) -> None:
    import orjson
    body, status, code = BAD_BODIES[name]
    got, reply = await post(server, token=server.token("alice"), data=orjson.dumps(body),
                            headers={"Content-Type": "application/json"})
    assert (got, reply["error"]["code"]) == (status, code)
    await assert_unchanged(server)


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "INVALID_REQUEST"),
        (b"\xff\xfe{}", "application/json", 400, "INVALID_REQUEST"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "INVALID_REQUEST"),
        (b"", "application/json", 400, "INVALID_REQUEST"),
        (b'{"actionType":"COMPLETE_LEVEL","clientActionId":"x","metadata":{"s":"\\ud800"}}',
         "application/json", 400, "INVALID_REQUEST"),
        (b'{"actionType":"COMPLETE_LEVEL","clientActionId":"x"}', "text/plain", 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"actionType":"COMPLETE_LEVEL","clientActionId":"x"}',
         "application/json; charset=latin-1", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"actionType=COMPLETE_LEVEL", "application/x-www-form-urlencoded", 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"a":"' + b"x" * (1024 * 1024) + b'"}', "application/json", 413, "PAYLOAD_TOO_LARGE"),
    ],
    ids=["broken-json", "not-utf8", "deep-nesting", "empty", "lone-surrogate",
         "text-plain", "latin-1",
         "form", "1MiB"],
)
async def test_bad_raw_bodies(server: Running, data: bytes, ctype: str, status: int,
                              code: str) -> None:
    got, reply = await post(server, token=server.token("alice"), data=data,
                            headers={"Content-Type": ctype})
    assert (got, reply["error"]["code"]) == (status, code)
    await assert_unchanged(server)


async def test_chunked_oversized_body_is_413(server: Running) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b"x" * 16384

    got, reply = await post(server, token=server.token("alice"), data=chunks(),  # type: ignore[arg-type]
                            headers={"Content-Type": "application/json"})
    assert (got, reply["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    await assert_unchanged(server)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/leaderboard?limit=0", "/api/v1/leaderboard?limit=101",
     "/api/v1/leaderboard?limit=abc", "/api/v1/leaderboard?limit=-1",
     "/api/v1/leaderboard?board=Bad%20Board", "/api/v1/leaderboard/around/x?radius=1000"],
)
async def test_bad_queries_are_400(server: Running, path: str) -> None:
    status, body = await server.get(path)
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"


async def test_unknown_board_and_route_are_404_and_method_405(server: Running) -> None:
    assert (await server.get("/api/v1/leaderboard?board=missing"))[0] == 404
    assert (await server.get("/api/v1/nothing"))[0] == 404
    async with server.http.delete(f"{server.url}/api/v1/leaderboard") as r:
        assert r.status == 405 and (await r.json())["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_proof_required_action_without_proof(server: Running) -> None:
    status, body = await post(server, token=server.token("alice"),
                              json={"actionType": "BOSS_DEFEAT", "clientActionId": "b1"})
    assert status == 403 and body["error"]["code"] == "PROOF_INVALID"
    await assert_unchanged(server)
