"""The demo's simulated actions: real commands, valid rules, fresh keys, repeatable."""

from __future__ import annotations

import random

from scoreboard.demo import ACTIONS, NAMES, make_players, next_action
from scoreboard.settings.model import load_settings


def test_simulated_actions_are_real_commands_for_configured_rules() -> None:
    rules = load_settings(environ={}).rules
    assert all(action in rules for action, _ in ACTIONS)
    players = make_players(20, random.Random(1))
    assert len(players) == 20 == len({p.user_id for p in players})
    rng = random.Random(2)
    cmds = [next_action(players, rng, "run", n) for n in range(500)]
    assert len({c.client_action_id for c in cmds}) == 500  # never a replay of another
    assert {c.user_id for c in cmds} <= {p.user_id for p in players}
    assert {c.display_name for c in cmds} <= set(NAMES)
    kinds = [c.action_type for c in cmds]
    assert kinds.count("COMPLETE_LEVEL") > kinds.count("WIN_MATCH") > 0


def test_same_seed_same_game() -> None:
    def game(seed: int) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        players = make_players(20, rng)
        return [(c.user_id, c.action_type)
                for c in (next_action(players, rng, "r", n) for n in range(50))]

    assert game(7) == game(7) != game(8)
