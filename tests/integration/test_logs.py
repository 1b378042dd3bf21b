"""Structured logs: one JSON line per request, with the request id, never a token."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from scoreboard.app import Service, StartupError
from scoreboard.runtime.logs import JsonFormatter
from tests.integration.conftest import PROOF_SECRET, Running, ServerFactory, make_settings


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


async def test_start_up_says_where_the_data_and_secrets_are_never_what(
    start_server: ServerFactory, tmp_path: Path, log_lines: io.StringIO
) -> None:
    data = tmp_path / "data"
    server = await start_server(**{"auth.jwt_secret": "", "proofs.secret": ""})
    generated = (data / "jwt-secret").read_bytes().strip().decode()
    await server.stop()
    await start_server(**{"auth.jwt_secret": ""})
    text = log_lines.getvalue()
    messages = [orjson.loads(line)["msg"] for line in text.splitlines()]
    assert f"data folder {data.resolve()}" in messages
    assert f"secret jwt-secret: generated and kept in {data.resolve() / 'jwt-secret'}" in messages
    assert f"secret jwt-secret: read from {data.resolve() / 'jwt-secret'}" in messages
    assert "secret proof-secret: configured (settings, environment or config file)" in messages
    assert generated not in text and PROOF_SECRET not in text


async def test_a_data_folder_open_to_others_is_said_at_start_up(
    start_server: ServerFactory, tmp_path: Path, log_lines: io.StringIO
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    await start_server()
    warnings = [e["msg"] for e in map(orjson.loads, log_lines.getvalue().splitlines())
                if e["level"] == "warning"]
    assert f"data folder {data.resolve()} is readable by others (mode 755); it holds the " \
           "secrets: chmod 700 it" in warnings
    assert data.stat().st_mode & 0o777 == 0o755  # said, not changed


@pytest.mark.parametrize("content", [b"", b"\n", b"short-secret\n"])
def test_an_empty_or_short_secret_file_stops_start_up_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "proof-secret").write_bytes(content)
    settings = make_settings(data, "memory:", **{"proofs.secret": ""})
    with pytest.raises(StartupError) as refused:
        Service.build(settings)
    assert str((data / "proof-secret").resolve()) in str(refused.value)
    assert "at least 32" in str(refused.value)
