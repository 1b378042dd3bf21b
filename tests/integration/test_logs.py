"""Structured logs: one JSON line per request, with the request id, never a token."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from scoreboard.runtime.logs import JsonFormatter
from tests.integration.conftest import Running


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_request_lines_are_json_and_hold_no_token(server: Running,
                                                        log_lines: io.StringIO) -> None:
    token = server.token("alice", "Alice")
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "trace-me-1"}
    async with server.http.post(f"{server.url}/api/v1/scores/actions", headers=headers,
                                json={"actionType": "COMPLETE_LEVEL",
                                      "clientActionId": "log-1"}) as r:
        assert r.status == 200
    async with server.http.get(f"{server.url}/api/v1/leaderboard?token={token}") as r:
        assert r.status == 200
    async with server.http.get(f"{server.url}/api/v1/users/me/score",
                               headers={"Authorization": "Bearer forged.token.value"}) as r:
        assert r.status == 401
    text = log_lines.getvalue()
    assert token not in text and "forged.token.value" not in text
    assert server.settings.auth.jwt_secret not in text
    entries = [orjson.loads(line) for line in text.splitlines()]
    requests = [e for e in entries if e.get("logger") == "scoreboard.access"]
    assert len(requests) == 3
    post = requests[0]
    assert post["request_id"] == "trace-me-1" and post["method"] == "POST"
    assert post["path"] == "/api/v1/scores/actions" and post["status"] == 200
    assert post["user"] == "alice" and post["action_type"] == "COMPLETE_LEVEL"
    assert post["client_action_id"] == "log-1" and post["ms"] >= 0
    assert requests[1]["path"] == "/api/v1/leaderboard"  # no query string, no token
    assert requests[2]["status"] == 401 and "user" not in requests[2]
    assert all(len(e["request_id"]) >= 8 for e in requests)
