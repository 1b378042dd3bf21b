"""Values for `best`/`latest` boards from trusted sources only (SPEC §11): the `val` claim
of an action proof and a trusted batch item's `value`, within the rule's min/max; a
user's own body never carries a value. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from tests.integration.conftest import Running, ServerFactory
from tests.integration.test_batch import SERVICE, item, post

LAPS = {
    "boards.laps.sort": "asc",
    "boards.laps.operator": "best",
    "boards.last.operator": "latest",
    "rules.LAP_TIME.value": "proof",
    "rules.LAP_TIME.min": 1,
    "rules.LAP_TIME.max": 600_000,
}


DOCS = Path(__file__).parents[2] / "docs" / "boards.md"


def documented_laps() -> dict[str, Any]:
    """The best-lap example of docs/boards.md as dotted settings."""
    block = next(b for b in re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
                 if "LAP_TIME" in b)
    tree = tomllib.loads(block)
    return {f"{section}.{name}.{key}": value for section, tables in tree.items()
            for name, table in tables.items() for key, value in table.items()}


async def mint(server: Running, user: str, **extra: Any) -> tuple[int, Any]:
    async with server.http.post(f"{server.url}/api/v1/proofs",
                                json={"userId": user, "actionType": "LAP_TIME", **extra},
                                headers=server.headers("backend", scopes=SERVICE)) as r:
        return r.status, await r.json()


async def lap(server: Running, user: str, ms: int, cid: str) -> tuple[int, Any]:
    status, minted = await mint(server, user, value=ms, board="laps")
    assert status == 200 and minted["value"] == ms, minted
    return await server.act(user, "LAP_TIME", cid, board="laps", proof=minted["proof"])


def refused(status: int, body: Any, code: str, text: str = "") -> bool:
    return status == 400 and body["error"]["code"] == code and text in body["error"]["message"]


async def test_best_lap_times_come_from_proofs(start_server: ServerFactory) -> None:
    server = await start_server(**LAPS)
    for k, ms in enumerate((70_000, 65_000, 72_000)):
        status, body = await lap(server, "ann", ms, f"lap-{k}")
        assert status == 200, body
    status, body = await lap(server, "bob", 66_000, "lap-0")
    assert status == 200, body
    status, me = await server.get("/api/v1/users/ann/score?board=laps")
    assert status == 200 and me["score"] == 65_000 and me["rank"] == 1, me
    status, top = await server.get("/api/v1/leaderboard?board=laps")
    assert status == 200
    assert [(e["userId"], e["score"]) for e in top["entries"]] == [
        ("ann", 65_000), ("bob", 66_000)]

    status, body = await lap(server, "ann", 600_001, "lap-far")  # beyond the rule's max
    assert refused(status, body, "INVALID_REQUEST", "from 1 to 600000"), body
    status, minted = await mint(server, "ann", board="laps")  # no val: nothing to score
    assert status == 200 and "value" not in minted
    status, body = await server.act("ann", "LAP_TIME", "lap-none", board="laps",
                                    proof=minted["proof"])
    assert refused(status, body, "INVALID_REQUEST", "claiming `val`"), body
    # a user's own body never carries a value, not even with a valid proof
    status, minted = await mint(server, "ann", value=1, board="laps")
    status, body = await server.act("ann", "LAP_TIME", "lap-own", board="laps",
                                    proof=minted["proof"], value=1)
    assert refused(status, body, "INVALID_REQUEST", "value"), body
    status, me = await server.get("/api/v1/users/ann/score?board=laps")
    assert me["score"] == 65_000


async def test_latest_values_come_from_batch_items(start_server: ServerFactory) -> None:
    server = await start_server(**LAPS)
    status, body = await post(server, {"actions": [
        item("ann", "a-1", "LAP_TIME", board="last", value=500),
        item("bob", "b-1", "LAP_TIME", board="last", value=400),
        item("ann", "a-2", "LAP_TIME", board="last", value=300),
        item("ann", "a-3", "LAP_TIME", board="last", value=0),  # below the rule's min
        item("ann", "a-4", "LAP_TIME", board="last"),  # no value
        item("ann", "a-5", board="last", value=7),  # a rule that scores points
    ]})
    assert status == 200, body
    results = body["results"]
    assert [r.get("newScore") for r in results[:3]] == [500, 400, 300]
    for r, text in zip(results[3:], ("from 1 to 600000", "claiming `val`", "not a value"),
                       strict=True):
        assert r["status"] == 400 and r["error"]["code"] == "INVALID_REQUEST", r
        assert text in r["error"]["message"], r
    status, top = await server.get("/api/v1/leaderboard?board=last")
    assert [(e["userId"], e["score"]) for e in top["entries"]] == [("bob", 400), ("ann", 300)]

    for bad in (1.5, "7", True, 2**53):
        status, err = await post(server, {"actions": [
            item("ann", "a-6", "LAP_TIME", board="last", value=bad)]})
        assert refused(status, err, "INVALID_REQUEST", "value"), (bad, err)
    status, err = await mint(server, "ann", actionType="COMPLETE_LEVEL", value=5)
    assert refused(status, err, "INVALID_REQUEST", "does not score a value"), err


async def test_the_documented_best_lap_board_works(start_server: ServerFactory) -> None:
    server = await start_server(**documented_laps())
    for user, ms in (("ann", 70_000), ("bob", 66_000), ("ann", 65_000)):
        status, body = await lap(server, user, ms, f"{user}-{ms}")
        assert status == 200, body
    status, body = await lap(server, "bob", 999, "too-fast")  # below the documented min
    assert refused(status, body, "INVALID_REQUEST", "from 1000 to 600000"), body
    status, top = await server.get("/api/v1/leaderboard?board=laps")
    assert top["period"] is not None
    assert [(e["userId"], e["score"]) for e in top["entries"]] == [
        ("ann", 65_000), ("bob", 66_000)]
