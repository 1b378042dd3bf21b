"""What the public `/ready` shows of a dependency's failure."""

from __future__ import annotations

from scoreboard.http.probes import WITHHELD, withheld


def test_a_dependencys_error_text_is_withheld_and_the_rest_kept() -> None:
    details = {
        "store": "ok", "lastSeq": 7, "tasks": {"writer": "running"},
        "nats": {"connected": False, "lag": 3,
                 "error": "OSError: Connect call failed ('10.1.2.3', 4222)"},
        "keys": {"state": "ok", "keys": 2, "ageSeconds": 1.0},
        "cluster": {"role": "follower", "writer": "connecting"},
    }
    shown = withheld(details)
    assert shown["nats"] == {"connected": False, "lag": 3, "error": WITHHELD}
    assert "10.1.2.3" not in str(shown)
    assert {k: v for k, v in shown.items() if k != "nats"} == {
        k: v for k, v in details.items() if k != "nats"}
    assert details["nats"]["error"].startswith("OSError")  # the original is untouched
