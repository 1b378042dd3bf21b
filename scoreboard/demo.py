"""`python run.py --demo`: simulated players, so the live page has something to show.

About twenty players submit real actions through the writer — the same decide,
commit and apply path as `POST /scores/actions`, so every point is in the log and
every rule and quota applies. A few actions a second, each player with their own
skill, so the top 10 keeps moving without being a blur. Rejections (a quota reached,
say) are part of the game and skipped; if the writer is overloaded or the store is
down, the demo waits and goes on. It runs until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from dataclasses import dataclass

from scoreboard.core.commands import SubmitAction
from scoreboard.core.errors import Rejection
from scoreboard.core.rules import RuleSet
from scoreboard.writer.actor import ShuttingDown, Writer, WriterError, WriterStopped

log = logging.getLogger("scoreboard.demo")

NAMES = (
    "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Radia", "Dennis",
    "Frances", "Edsger", "Hedy", "Guido", "Katherine", "Donald", "Sophie", "Tim",
    "Annie", "Bjarne", "Shafi",
)
# (action type, weight): mostly levels, some wins; quota-limited ones now and then.
ACTIONS = (
    ("COMPLETE_LEVEL", 70),
    ("WIN_MATCH", 25),
    ("REFER_FRIEND_COMPLETED", 3),
    ("DAILY_LOGIN_BONUS", 2),
)


@dataclass(frozen=True, slots=True)
class Player:
    user_id: str
    name: str
    skill: float  # relative chance of being the next to act


def make_players(count: int, rng: random.Random) -> list[Player]:
    return [
        Player(f"demo-{name.lower()}", name, rng.uniform(0.3, 1.0))
        for name in NAMES[:count]
    ]


def next_action(players: list[Player], rng: random.Random, run_id: str, n: int,
                board: str = "global") -> SubmitAction:
    """The n-th simulated action: who acts is weighted by skill, what by `ACTIONS`."""
    player = rng.choices(players, weights=[p.skill for p in players])[0]
    action = rng.choices([a for a, _ in ACTIONS], weights=[w for _, w in ACTIONS])[0]
    return SubmitAction(
        user_id=player.user_id,
        display_name=player.name,
        board=board,
        action_type=action,
        client_action_id=f"demo-{run_id}-{n}",
        metadata={"demo": True},
    )


async def run_demo(writer: Writer, rules: RuleSet, *, players: int = 20, rate: float = 4.0,
                   seed: int | None = None) -> None:
    """Submit about `rate` actions a second from `players` simulated players, forever."""
    rng = random.Random(seed)
    cast = make_players(min(players, len(NAMES)), rng)
    usable = [a for a, _ in ACTIONS if a in rules]
    if not usable:
        log.warning("demo: none of %s is an action rule; nothing to simulate", ACTIONS)
        return
    run_id = secrets.token_hex(4)
    log.info("demo: %d players, about %.1f actions/s", len(cast), rate)
    n = 0
    while True:
        await asyncio.sleep(rng.expovariate(rate))  # pacing: a Poisson stream of actions
        n += 1
        cmd = next_action(cast, rng, run_id, n)
        if cmd.action_type not in rules:
            continue
        try:
            await writer.submit(cmd)
        except Rejection:
            continue  # e.g. a quota reached: real players meet those too
        except (ShuttingDown, WriterStopped):
            return
        except WriterError as exc:
            log.warning("demo: %s; pausing", exc.message)
            await asyncio.sleep(max(1.0, exc.retry_after))
