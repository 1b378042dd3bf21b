"""Names: a mapping of user id to display name, kept by the global ranking's slots."""

from __future__ import annotations

import pytest

from scoreboard.core.names import Names, visible
from scoreboard.core.ranking import Ranking


@pytest.fixture
def ranking() -> Ranking:
    r = Ranking("global")
    r.set("a", 10, 1)
    r.set("b", 20, 2)
    return r


def test_behaves_like_a_dict(ranking: Ranking) -> None:
    names, plain = Names(ranking), {}
    for user, name in [("a", "Ann"), ("x", "Xavier"), ("b", "Bob"), ("a", "Anna")]:
        names[user] = plain[user] = name
    assert dict(names) == plain and len(names) == 3
    assert names["a"] == "Anna" and names.get("x") == "Xavier"
    assert names.get("nobody") is None and names.get("nobody", "?") == "?"
    assert "b" in names and "nobody" not in names and 3 not in names
    with pytest.raises(KeyError):
        names["nobody"]
    del names["x"], names["b"]
    assert dict(names) == {"a": "Anna"} and len(names) == 1
    with pytest.raises(KeyError):
        del names["x"]


def test_a_user_named_before_joining_the_board_keeps_one_name(ranking: Ranking) -> None:
    names = Names(ranking)
    names["c"] = "Cy"  # not ranked yet
    ranking.set("c", 5, 3)
    assert names["c"] == "Cy" and len(names) == 1
    names["c"] = "Cyd"
    assert dict(names) == {"c": "Cyd"} and len(names) == 1


def test_slots_beyond_the_list_read_as_unnamed(ranking: Ranking) -> None:
    names, slot = Names(ranking), ranking.slot_of("b")
    assert slot == 1
    names.set_at(slot, "Bob")
    ranking.set("late", 1, 9)  # a slot the list has not reached
    assert names.get("late") is None and names["b"] == "Bob" and list(names) == ["b"]


def test_names_in_bulk_by_slot_match_one_at_a_time(ranking: Ranking) -> None:
    """Recovery's bulk path: the same names and count as setting them one by one, and
    users without a slot or without a name are left to the caller."""
    ranking.set("c", 1, 3)
    ids = ["b", "nobody", "c", "a"]
    given = ["Bob", "Ghost", None, "Ann"]
    bulk, single = Names(ranking), Names(ranking)
    bulk.load_at(ranking.slots_of(ids), given)
    for user, name in zip(ids, given, strict=True):
        slot = ranking.slot_of(user)
        if slot is not None and name is not None:
            single.set_at(slot, name)
    assert ranking.slots_of(ids) == [1, None, 2, 0]
    assert dict(bulk) == dict(single) == {"a": "Ann", "b": "Bob"}
    assert len(bulk) == len(single) == 2
    bulk.load_at([1], ["Bobby"])  # renaming does not count twice
    assert len(bulk) == 2 and bulk["b"] == "Bobby"


@pytest.mark.parametrize(("given", "shown"), [
    ("Alice", "Alice"),
    ("Ünï 🏆", "Ünï 🏆"),
    ("  Bob  ", "Bob"),
    ("nul\x00tab\tdel\x7f", "nultabdel"),
    ("c1\x85\x9f", "c1"),
    # bidi embeddings and overrides, isolates, marks
    ("\u202aa\u202bb\u202cc\u202dd\u202ee", "abcde"),
    ("\u2066a\u2067b\u2068c\u2069", "abc"),
    ("\u200ea\u200fb\u061cc", "abc"),
    ("evil\u202egnp.exe", "evilgnp.exe"),
    # zero-width space, non-joiner, joiner, word joiner, byte order mark
    ("a\u200bd\u200cm\u200di\u2060n\ufeff", "admin"),
    ("\u200b\u202e\u2066", ""),
    ("שלום", "שלום"),  # right-to-left letters themselves stay
])
def test_visible_drops_controls_bidi_and_zero_width_characters(given: str, shown: str) -> None:
    assert visible(given) == shown
