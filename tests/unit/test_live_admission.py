"""Who may open a live connection: query checks, tokens, and the connection caps."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from scoreboard.auth.tokens import Authenticator
from scoreboard.core.engine import Engine
from scoreboard.core.errors import Refused
from scoreboard.edge.admission import Gate, LiveRequest
from scoreboard.edge.bearer import Bearer
from scoreboard.edge.errors import describe
from scoreboard.read.views import Views
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.model import load_settings

SECRET = b"unit-test-secret-0123456789abcdef-0123"


def make_gate(**overrides: Any) -> tuple[Gate, Authenticator]:
    values = {"live.max_connections": 3, "live.max_connections_per_user": 2}
    values.update(overrides)
    settings = load_settings(values, environ={})
    auth = Authenticator(settings.auth, SECRET)
    views = Views(Engine(settings.rules, settings.leaderboard.boards))
    return Gate(settings.leaderboard, settings.live, Bearer(auth, Metrics()), views), auth


def refusal(fn: Any, *args: Any, **kw: Any) -> SimpleNamespace:
    """The refusal `fn` raises, as the edge answers it: status, message, headers."""
    with pytest.raises(Refused) as info:
        fn(*args, **kw)
    status, code, message, headers = describe(info.value)
    return SimpleNamespace(status=status, code=code, message=message, headers=headers)


def test_defaults_and_a_valid_token() -> None:
    gate, auth = make_gate()
    anon = gate.check({}, None, query_token=True)
    assert (anon.board, anon.limit, anon.principal) == ("global", 10, None)
    token = auth.mint("alice", name="Alice")
    for query, header in (({"token": token}, None), ({}, f"Bearer {token}")):
        req = gate.check({"limit": "3", **query}, header, query_token=True)
        assert req.user_id == "alice" and req.limit == 3


@pytest.mark.parametrize(
    ("query", "header", "status"),
    [
        ({"board": "nope"}, None, 404),
        ({"board": "Bad Board!"}, None, 400),
        ({"limit": "0"}, None, 400),
        ({"limit": "101"}, None, 400),
        ({"limit": "ten"}, None, 400),
        ({"token": "not-a-jwt"}, None, 401),  # a given token must be valid, public or not
        ({"token": ""}, None, 401),
        ({}, "Basic abc", 401),
        ({}, "Bearer ", 401),
    ],
)
def test_refusals(query: dict[str, str], header: str | None, status: int) -> None:
    gate, _ = make_gate()
    assert refusal(gate.check, query, header, query_token=True).status == status


def test_query_token_only_where_allowed_and_private_boards_need_one() -> None:
    gate, auth = make_gate(**{"leaderboard.public": False})
    token = auth.mint("bob")
    assert refusal(gate.check, {}, None, query_token=True).status == 401
    # SSE takes no ?token= (its URL would reach the HTTP logs): as if none was given
    assert refusal(gate.check, {"token": token}, None, query_token=False).status == 401
    assert gate.check({}, f"Bearer {token}", query_token=False).user_id == "bob"


def test_total_and_per_user_caps() -> None:
    gate, auth = make_gate()
    alice = gate.check({"token": auth.mint("alice")}, None, query_token=True)
    anon = LiveRequest("global", 10, None)
    t1, t2 = gate.admit(alice), gate.admit(alice)
    third = refusal(gate.admit, alice)
    assert third.status == 503 and "per user" in third.message and "Retry-After" in third.headers
    t3 = gate.admit(anon)
    assert refusal(gate.admit, anon).status == 503  # total of 3 reached
    gate.release(t1)
    gate.release(t1)  # twice is harmless
    assert gate.total == 2 and gate.per_user == {"alice": 1}
    t4 = gate.admit(alice)
    for t in (t2, t3, t4):
        gate.release(t)
    assert gate.total == 0 and gate.per_user == {}


def test_zero_means_no_cap_and_a_closed_gate_refuses() -> None:
    gate, _ = make_gate(**{"live.max_connections": 0})
    anon = LiveRequest("global", 10, None)
    tickets = [gate.admit(anon) for _ in range(50)]
    assert gate.total == len(tickets)
    gate.closed = True
    assert refusal(gate.admit, anon).status == 503
