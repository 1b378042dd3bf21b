"""The ranking alone: order, ties, ranks, windows, hiding."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.core import ranking
from scoreboard.core.ranking import MAX_SCORE, SLOT_MASK, Ranking, key_score, key_seq, make_key


def board(*rows: tuple[str, int, int]) -> Ranking:
    r = Ranking("global")
    for user, score, seq in rows:
        r.set(user, score, seq)
    return r


def test_score_descending_and_ties_to_whoever_reached_first() -> None:
    r = board(("a", 10, 1), ("b", 30, 2), ("c", 10, 3), ("d", 20, 4))
    assert r.top(10) == [("b", 30), ("d", 20), ("a", 10), ("c", 10)]
    assert [r.rank(u) for u in "abcd"] == [3, 1, 4, 2]


def test_reaching_a_tied_score_later_ranks_below() -> None:
    r = board(("a", 10, 1), ("b", 5, 2))
    r.set("b", 10, 3)
    assert r.top(2) == [("a", 10), ("b", 10)]
    r.set("a", 10, 4)  # a re-reaches 10 later (e.g. +5 then -5): now b was first
    assert r.top(2) == [("b", 10), ("a", 10)]


@pytest.mark.parametrize("score", [-MAX_SCORE, -1, 0, 1, MAX_SCORE])
@pytest.mark.parametrize("slot", [0, 2**32 - 1])
def test_key_round_trips_extremes(score: int, slot: int) -> None:
    key = make_key(score, 2**48 - 1, slot)
    assert key_score(key) == score
    assert key_seq(key) == 2**48 - 1
    assert key & SLOT_MASK == slot
    assert make_key(score, 2**48 - 1, slot) < make_key(score - 1, 1, 0) or score == -MAX_SCORE


def test_negative_scores_rank_below_zero() -> None:
    r = board(("neg", -5, 1), ("zero", 0, 2))
    assert r.top(2) == [("zero", 0), ("neg", -5)]


def test_rank_and_score_of_unknown_user() -> None:
    r = board(("a", 1, 1))
    assert r.rank("nobody") is None and r.score("nobody") is None


def test_frozen_users_leave_the_order_and_keep_their_score() -> None:
    r = board(("a", 30, 1), ("b", 20, 2), ("c", 10, 3))
    v = r.version
    r.freeze("a", 4)
    assert r.version > v
    assert r.top(3) == [("b", 20), ("c", 10)]
    assert r.rank("a") is None and r.score("a") == 30
    assert len(r) == 2
    r.set("a", 40, 5)  # a frozen user can still be changed (an admin adjustment)
    assert r.top(3) == [("b", 20), ("c", 10)]
    r.unfreeze("a", 6)
    assert r.top(3) == [("a", 40), ("b", 20), ("c", 10)]


def test_around_clips_at_both_ends() -> None:
    r = board(*((f"u{i}", 100 - i, i + 1) for i in range(10)))
    assert [row[0] for row in r.around("u0", 2)] == [1, 2, 3]
    assert [row[0] for row in r.around("u5", 2)] == [4, 5, 6, 7, 8]
    assert [row[1] for row in r.around("u9", 1)] == ["u8", "u9"]
    assert r.around("missing", 3) == []


def test_bulk_load_equals_one_by_one() -> None:
    rows = [(f"u{i}", (i * 37) % 11, i + 1) for i in range(200)]
    a = board(*rows)
    b = Ranking("global")
    b.load(rows, 200)
    assert a.top(200) == b.top(200)
    assert all(a.rank(u) == b.rank(u) for u, _, _ in rows)
    users = [u for u, _, _ in rows]
    assert a.slots_of(users) == b.slots_of(users) == list(range(200))
    assert all(a.reached_seq(u) == b.reached_seq(u) for u in users)


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(-1000, 1000)), max_size=60))
def test_order_always_matches_a_sort_of_scores(changes: list[tuple[str, int]]) -> None:
    r = Ranking("global")
    reached: dict[str, tuple[int, int]] = {}
    for seq, (user, score) in enumerate(changes, 1):
        r.set(user, score, seq)
        reached[user] = (score, seq)
    expected = sorted(reached, key=lambda u: (-reached[u][0], reached[u][1]))
    assert [u for u, _ in r.top(100)] == expected
    for i, user in enumerate(expected, 1):
        assert r.rank(user) == i
        assert r.score(user) == reached[user][0]


def test_an_ascending_board_ranks_the_lowest_first_and_loads_the_same() -> None:
    laps = Ranking("laps", ascending=True)
    for seq, (user, time) in enumerate([("a", 61_000), ("b", 59_500), ("c", -5), ("d", 59_500)], 1):
        laps.set(user, time, seq)
    assert laps.top(4) == [("c", -5), ("b", 59_500), ("d", 59_500), ("a", 61_000)]
    assert laps.score("c") == -5 and laps.rank("a") == 4 and laps.better(3, 7) == 3
    loaded = Ranking("laps", ascending=True)
    loaded.load(laps.rows(), laps.version)
    assert loaded.top(4) == laps.top(4)


def test_competition_ranks_share_equal_scores() -> None:
    board = Ranking("c", competition=True)
    for seq, (user, score) in enumerate([("a", 10), ("b", 7), ("c", 7), ("d", 5), ("e", 7)], 1):
        board.set(user, score, seq)
    assert [board.rank(u) for u in "abcde"] == [1, 2, 2, 5, 2]
    assert board.window(0, 5) == [(1, "a", 10), (2, "b", 7), (2, "c", 7), (2, "e", 7), (5, "d", 5)]
    assert board.window(2, 4) == [(2, "c", 7), (2, "e", 7)]  # a page starting inside a tie
    assert list(board.ranks()) == [("a", 10, 1), ("b", 7, 2), ("c", 7, 2), ("e", 7, 2), ("d", 5, 5)]
    ordinal = Ranking("o")
    for seq, (user, score) in enumerate([("a", 10), ("b", 7), ("c", 7)], 1):
        ordinal.set(user, score, seq)
    assert [r for _, _, r in ordinal.ranks()] == [1, 2, 3]
    fresh = board.fresh()
    assert len(fresh) == 0 and fresh.competition and fresh.version == board.version


@given(
    st.booleans(),
    st.lists(st.tuples(st.sampled_from("abcdefghij"), st.integers(-5, 5)), min_size=1,
             max_size=30),
    st.lists(st.tuples(st.sampled_from("abcdefghij"), st.integers(-5, 5)), max_size=30),
    st.integers(1, 4),
)
def test_paging_after_a_key_repeats_and_skips_no_unchanged_user(
    ascending: bool, first: list[tuple[str, int]], during: list[tuple[str, int]], size: int,
) -> None:
    """Pages continue after the last entry's (score, seq) while scores change between
    pages: every user unchanged throughout is seen exactly once."""
    r = Ranking("b", ascending=ascending)
    seq = 0
    for user, score in first:
        seq += 1
        r.set(user, score, seq)
    changed: set[str] = set()
    seen: list[str] = []
    page = [(rank, user, s) for rank, (user, s) in enumerate(r.top(size), 1)]
    pending = list(during)
    while page:
        seen += [user for _, user, _ in page]
        last_user, last_score = page[-1][1], page[-1][2]
        last_seq = r.reached_seq(last_user)
        assert last_seq is not None
        if pending:  # a change lands between two pages
            user, score = pending.pop(0)
            seq += 1
            r.set(user, score, seq)
            changed.add(user)
        page = r.after(last_score, last_seq, size)
    unchanged = {u for u, _ in first} - changed
    assert sorted(u for u in seen if u in unchanged) == sorted(unchanged)


def test_after_gives_current_ranks_in_both_rank_styles() -> None:
    board = Ranking("c", competition=True)
    for seq, (user, score) in enumerate([("a", 10), ("b", 7), ("c", 7), ("d", 5)], 1):
        board.set(user, score, seq)
    assert board.after(7, 2, 5) == [(2, "c", 7), (4, "d", 5)]
    assert board.after(10, 1, 1) == [(2, "b", 7)]
    assert board.after(5, 4, 5) == []
    ordinal = Ranking("o")
    for seq, (user, score) in enumerate([("a", 10), ("b", 7), ("c", 7)], 1):
        ordinal.set(user, score, seq)
    assert ordinal.after(7, 2, 5) == [(3, "c", 7)]
    assert ordinal.after(99, 50, 2) == [(1, "a", 10), (2, "b", 7)]  # a place above all


@given(
    st.booleans(),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from("abcdefghijklmn"), st.integers(-3, 3)), max_size=60),
    st.integers(1, 7),
)
def test_standings_in_slices_are_the_ranks_and_dismantle_empties(
    ascending: bool, competition: bool, moves: list[tuple[str, int]], step: int
) -> None:
    """A closed period's standings a slice at a time are `ranks` numbered by position
    (a slice starting inside a tie keeps the tie's rank), the same once
    `keep_order_only` let go of the map from user; `dismantle` then lets go of
    everyone, the frozen and the removed too."""
    r = Ranking("p", ascending=ascending, competition=competition)
    for seq, (user, score) in enumerate(moves, 1):
        r.set(user, score, seq)
    r.freeze("a", len(moves) + 1)
    r.remove("b", len(moves) + 2)
    want = [(p, u, s, k) for p, (u, s, k) in enumerate(r.ranks(), 1)]
    known = len(list(r.rows()))
    assert sum(1 for _ in r.keep_order_only(step)) == (known + step - 1) // step
    assert (list(r.rows()), len(r)) == ([], len(want))
    got = [row for start in range(0, len(r) + step, step)
           for row in r.standings(start, start + step)]
    assert got == want
    joined = r.slots
    parts = sum(1 for _ in r.dismantle(step))
    assert parts >= (joined + step - 1) // step  # a part at a time
    assert (len(r), r.slots, r.top(5), list(r.rows())) == (0, 0, [], [])


@given(st.lists(st.tuples(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), st.integers(-3, 3),
                          st.sampled_from(["set"] * 6 + ["rank", "freeze", "unfreeze",
                                                          "remove", "check"])),
                min_size=40, max_size=400))
def test_set_keeps_the_sorted_order_sound_whatever_else_happens(
        changes: list[tuple[str, int, str]]) -> None:
    """`set` stages its keys and the order takes them in bulk when read: its sublists,
    maxima and positional index stay what `SortedList` would make of them (sublists
    split, ranks that build the index asked between changes)."""
    r = Ranking("global")
    r._order._reset(4)  # tiny sublists: splits and index updates on every few changes
    for seq, (user, score, op) in enumerate(changes, 1):
        if op == "set":
            r.set(user, score, seq)
        elif op == "rank":  # builds the positional index (a user past the first sublist)
            r.rank(user)
            if len(r._order):
                r._order.index(r._order[-1])
        elif op == "freeze":
            r.freeze(user, seq)
        elif op == "unfreeze":
            r.unfreeze(user, seq)
        elif op == "remove":
            r.remove(user, seq)
        else:
            r.settle()
            r._sorted._check()
    r._order._check()
    assert list(r._order) == sorted(k for u, k in r._key_of.items() if u not in r.frozen)


@given(st.lists(st.integers(0, 200), min_size=1, max_size=300),
       st.lists(st.integers(0, 200), max_size=300))
def test_keys_staged_in_bulk_land_where_one_by_one_would(
        first: list[int], then: list[int]) -> None:
    """Many users set between two reads: the order holds what adding each key would."""
    bulk, single = Ranking("global"), Ranking("global")
    for r in (bulk, single):
        r._order._reset(4)
    for seq, score in enumerate(first + then, 1):
        user = f"u{seq % 97}"
        bulk.set(user, score, seq)
        single.set(user, score, seq)
        single.settle()
        if seq == len(first):  # ordered, and its positional index built (a rank)
            bulk.rank(user)
            bulk._order.index(bulk._order[-1])
    bulk.settle()
    bulk._sorted._check()
    assert list(bulk._sorted) == list(single._sorted)
    assert bulk.top(500) == single.top(500)


@settings(max_examples=200)
@given(st.integers(8, 300), st.lists(st.tuples(st.integers(0, 299), st.integers(0, 200)),
                                    min_size=8, max_size=300),
       st.sampled_from([4, 6, 1000]), st.booleans())
def test_keys_taken_out_in_bulk_leave_what_removing_each_would(
        users: int, then: list[tuple[int, int]], load: int, ranked: bool) -> None:
    """Users already in the order set again between two reads: the keys they had come
    out in bulk, sublists left short join a neighbour, empty ones go; the order holds
    what removing and adding each key would, and stays a sound `SortedList`."""
    bulk, single = Ranking("global"), Ranking("global")
    for r in (bulk, single):
        r._order._reset(load)
        for seq in range(1, users + 1):
            r.set(f"u{seq}", seq % 50, seq)
        r.settle()
        if ranked:  # the positional index built
            r.rank("u1")
    for seq, (user, score) in enumerate(then, users + 1):
        bulk.set(f"u{user % users + 1}", score, seq)
        single.set(f"u{user % users + 1}", score, seq)
        single.settle()
    bulk.settle()
    bulk._sorted._check()
    assert list(bulk._sorted) == list(single._sorted) == sorted(bulk._key_of.values())
    assert bulk.top(500) == single.top(500)
    assert [bulk.rank(f"u{u}") for u in range(1, users + 1)] == [
        single.rank(f"u{u}") for u in range(1, users + 1)]


@pytest.mark.parametrize(("ascending", "competition"),
                         [(False, False), (True, False), (False, True), (True, True)])
def test_ranks_of_many_users_are_each_users_rank(
        ascending: bool, competition: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    r = Ranking("m", ascending=ascending, competition=competition)
    assert r.ranks_of(["nobody"]) == [None]
    r._order._reset(50)  # short sublists: many of them
    rng = random.Random(7)
    for seq in range(1, 6001):
        r.set(f"u{rng.randrange(4000)}", rng.randrange(-50, 50), seq)
    for seq, user in enumerate(["u1", "u2", "u3", "u17"], 7000):
        r.freeze(user, seq)
    r.remove("u5", 8000)
    asked = [f"u{i}" for i in range(4100)] + ["u9", "u9"]
    assert r.ranks_of(asked) == [r.rank(u) for u in asked]
    assert r.ranks_of([]) == []
    assert len(r._order._lists) > 20  # and a few users of a big board: `rank` each
    monkeypatch.setattr(ranking, "SUMS_PER_RANK", 1)
    assert r.ranks_of(asked[:2]) == [r.rank(u) for u in asked[:2]]
    assert r.ranks_of(asked) == [r.rank(u) for u in asked]
