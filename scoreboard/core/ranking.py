"""One board's ranking: score descending (or ascending: lower is better, a lap time),
ties to whoever reached the score first.

Each ranked user is one integer key in a `SortedList`, so ordering compares plain ints:

    key = ((SCORE_CEIL - score) << SEQ_BITS | reached_seq) << SLOT_BITS | slot

A higher score gives a smaller key (on an ascending board the key holds
`score + SCORE_CEIL` instead, so a lower score does); for equal scores the smaller seq
(reached first) sorts first. `reached_seq` is the seq of the log record that produced
the score, which is unique per user, so keys never collide. `slot` numbers the board's
users in the order they joined it (after a restore from a snapshot: in the order they
were ranked then) and finds the user of a key in a plain list: a million users cost
one pointer each there, not a dict entry, and the key stays the same size of int.
Frozen users keep their key but leave the sorted order until they are unfrozen.

Ranks are ordinal (1, 2, 3, 4: the tie order decides) or, on a board whose `ranks` is
competition, shared by equal scores (1, 2, 2, 4): one more than the users strictly better.

`version` is the seq of the last record that changed the board (after a restart: the
last seq in the log). It therefore only ever grows, across restarts too, so an ETag or
an SSE `Last-Event-ID` from before a restart never matches different contents.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from itertools import accumulate, islice, repeat
from operator import add, and_, call, lshift, or_, rshift, sub
from typing import Any

from sortedcontainers import SortedList

MAX_SCORE = 2**53 - 1  # browsers read integers exactly up to here
SEQ_BITS = 48
SEQ_MASK = (1 << SEQ_BITS) - 1
SLOT_BITS = 32
SLOT_MASK = (1 << SLOT_BITS) - 1
SCORE_CEIL = MAX_SCORE
KEY_SCORE_SHIFT = SEQ_BITS + SLOT_BITS  # key >> KEY_SCORE_SHIFT: the score part
# `ranks_of`: sublists of the order summed at C speed for about the cost of one `rank`
SUMS_PER_RANK = 64


def make_key(score: int, reached_seq: int, slot: int = 0) -> int:
    return ((SCORE_CEIL - score) << SEQ_BITS | reached_seq) << SLOT_BITS | slot


def key_score(key: int) -> int:
    return SCORE_CEIL - (key >> (SEQ_BITS + SLOT_BITS))


def key_seq(key: int) -> int:
    return (key >> SLOT_BITS) & SEQ_MASK


class Ranking:
    __slots__ = ("_adding", "_key_of", "_removing", "_sorted", "_users", "ascending", "board",
                 "competition", "frozen", "version")

    def __init__(self, board: str, *, ascending: bool = False, competition: bool = False
                 ) -> None:
        self.board = board
        self.ascending = ascending
        self.competition = competition
        self.version = 0
        self._sorted = SortedList()
        # Keys `set` has not put in the order yet, and keys it took out of the user map
        # that are still in the order: the order takes them in bulk when it is next read
        # (`_order`), or when the writer has applied a group (`settle`).
        self._adding: set[int] = set()
        self._removing: list[int] = []
        self._key_of: dict[str, int] = {}
        self._users: list[str] = []  # by slot
        self.frozen: set[str] = set()  # users kept out of the order until unfrozen

    # -- changes -------------------------------------------------------------------------

    def set(self, user_id: str, score: int, reached_seq: int) -> None:
        # Every action sets one key on each board it scores on: `_key` written out, and
        # the order's changes staged (see `settle`).
        key_of = self._key_of
        old = key_of.get(user_id)
        if old is None:
            slot = len(self._users)
            self._users.append(user_id)
        else:
            slot = old & SLOT_MASK
            if user_id not in self.frozen:
                if old in self._adding:
                    self._adding.discard(old)
                else:
                    self._removing.append(old)
        rank_score = score + SCORE_CEIL if self.ascending else SCORE_CEIL - score
        key_of[user_id] = key = (rank_score << SEQ_BITS | reached_seq) << SLOT_BITS | slot
        if user_id not in self.frozen:
            self._adding.add(key)
        if reached_seq > self.version:
            self.version = reached_seq

    def set_rows(self, rows: Iterable[tuple[str, str, int, int]]) -> None:
        """`set` for each row as a store holds it, (board, user, score, reached seq),
        each user once: a group's rows for the board (`set` written out, in one loop)."""
        key_of, users, frozen = self._key_of, self._users, self.frozen
        adding, removing = self._adding, self._removing
        ceil, ascending, version = SCORE_CEIL, self.ascending, self.version
        for _, user_id, score, reached_seq in rows:
            old = key_of.get(user_id)
            if old is None:
                slot = len(users)
                users.append(user_id)
            else:
                slot = old & SLOT_MASK
                if user_id not in frozen:
                    if old in adding:
                        adding.discard(old)
                    else:
                        removing.append(old)
            rank_score = score + ceil if ascending else ceil - score
            key_of[user_id] = key = (rank_score << SEQ_BITS | reached_seq) << SLOT_BITS | slot
            if user_id not in frozen:
                adding.add(key)
            if reached_seq > version:
                version = reached_seq
        self.version = version

    @property
    def _order(self) -> SortedList:
        """The ranked keys in order, with every change `set` made."""
        if self._adding or self._removing:
            self.settle()
        return self._sorted

    @_order.setter
    def _order(self, order: SortedList) -> None:
        """A whole new order: it holds every key (nothing staged is left to add)."""
        self._sorted = order
        self._adding = set()
        self._removing = []

    def settle(self) -> None:
        """Put the keys `set` staged into the order, in bulk: the keys it replaced
        taken out (`_take_out`), then the new ones put in, each run of them into the
        sublist that holds its place (a few keys each at its place by bisection; many
        by one sort of the two sorted runs, at C speed, which reads the whole sublist)
        and sublists grown past twice the load split. `SortedList.add` or `remove` per
        key costs one to three microseconds with its calls and its positional index; a
        group's keys this way a fraction of that."""
        order = self._sorted
        if self._removing:
            removing, self._removing = self._removing, []
            if len(removing) < 8:
                for key in removing:
                    order.remove(key)
            else:
                _take_out(order, removing)
        if not self._adding:
            return
        values = sorted(self._adding)
        self._adding = set()
        lists, maxes = order._lists, order._maxes
        if len(values) < 8 or not maxes:
            order.update(values)  # per key, or one sort into an empty order
            return
        last = len(maxes) - 1
        touched = []
        start, count = 0, len(values)
        while start < count:
            pos = bisect_right(maxes, values[start])
            if pos >= last:  # the rest goes into the last sublist
                pos, stop = last, count
            else:
                stop = bisect_left(values, maxes[pos], start)
            run = lists[pos]
            if (stop - start) << 3 < len(run):  # a few keys: each at its place
                for key in values[start:stop]:
                    insort(run, key)
            else:  # many: one sort of the two sorted runs (it reads the whole sublist)
                run += values[start:stop]
                run.sort()
            maxes[pos] = run[-1]
            touched.append(pos)
            start = stop
        for pos in reversed(touched):  # split from the end: earlier positions stay put
            _split(order, pos)
        del order._index[:]
        order._len += count

    def freeze(self, user_id: str, version: int) -> None:
        if user_id in self.frozen:
            return
        self.frozen.add(user_id)
        key = self._key_of.get(user_id)
        if key is not None:
            self._order.remove(key)
            self.version = max(self.version, version)

    def unfreeze(self, user_id: str, version: int) -> None:
        if user_id not in self.frozen:
            return
        self.frozen.discard(user_id)
        key = self._key_of.get(user_id)
        if key is not None:
            self._order.add(key)
            self.version = max(self.version, version)

    def load(self, rows: Iterable[tuple[str, int, int]], version: int) -> None:
        """Bulk-load (user, score, reached_seq) into an empty ranking: one sort, not n adds."""
        assert not self._key_of, "load() is for an empty ranking"
        self.load_stored((self.board, *row) for row in rows)
        self.sort_loaded(version)

    def load_stored(self, rows: Iterable[Sequence[Any]]) -> None:
        """The first part of a bulk load, any number of times: rows as the store holds
        them, (board, user, score, reached_seq), all of this board and of users not on
        it yet. Nothing is ranked until `sort_loaded`. Recovery's million rows go in
        without a tuple or a call per row (`make_key` written out)."""
        key_of, users = self._key_of, self._users
        slot = len(users)
        if self.ascending:
            for _, user_id, score, seq in rows:
                key_of[user_id] = ((score + SCORE_CEIL) << SEQ_BITS | seq) << SLOT_BITS | slot
                users.append(user_id)
                slot += 1
            return
        for _, user_id, score, seq in rows:
            key_of[user_id] = ((SCORE_CEIL - score) << SEQ_BITS | seq) << SLOT_BITS | slot
            users.append(user_id)
            slot += 1

    def sort_loaded(self, version: int) -> None:
        """The end of a bulk load: rank everyone loaded (the frozen aside) in one sort."""
        frozen = self.frozen
        self._order = SortedList(
            k for u, k in self._key_of.items() if u not in frozen
        ) if frozen else SortedList(self._key_of.values())  # nearly always: nobody frozen
        self.version = max(self.version, version)

    def _key(self, score: int, reached_seq: int, slot: int) -> int:
        if self.ascending:
            return ((score + SCORE_CEIL) << SEQ_BITS | reached_seq) << SLOT_BITS | slot
        return make_key(score, reached_seq, slot)

    def _score(self, key: int) -> int:
        if self.ascending:
            return (key >> (SEQ_BITS + SLOT_BITS)) - SCORE_CEIL
        return key_score(key)

    def fresh(self) -> Ranking:
        """An empty ranking of the same board and order (a new period), keeping who is
        frozen and the version, which only ever grows."""
        ranking = Ranking(self.board, ascending=self.ascending, competition=self.competition)
        ranking.frozen = set(self.frozen)
        ranking.version = self.version
        return ranking

    def remade(self, ascending: bool, competition: bool) -> Ranking:
        """The same users, scores and frozen set in another order or rank style (a board
        that scored before an administrator defined it)."""
        ranking = Ranking(self.board, ascending=ascending, competition=competition)
        ranking.frozen = set(self.frozen)
        ranking.load(self.rows(), self.version)
        return ranking

    def remove(self, user_id: str, version: int) -> None:
        """Take the user off the board (their slot stays, unused)."""
        key = self._key_of.pop(user_id, None)
        if key is not None and user_id not in self.frozen:
            self._order.remove(key)
        self.version = max(self.version, version)

    def better(self, a: int, b: int) -> int:
        """The better of two scores in this board's order."""
        return min(a, b) if self.ascending else max(a, b)

    def export(self) -> tuple[list[str], list[int], list[int]]:
        """For a snapshot, cheap enough for the loop: the users by slot (the list itself,
        not a copy: it only grows, and a slot never changes hands), and copies of the
        ranked keys in order and of the frozen users' keys (a user taken off the board
        has no key: their slot is left behind). `columns` turns them into plain values,
        away from the loop."""
        key_of = self._key_of
        frozen = [key_of[u] for u in self.frozen if u in key_of]
        return self._users, self._order[:], frozen

    @staticmethod
    def columns(users: list[str], ranked: list[int], frozen: list[int],
                ascending: bool = False) -> tuple[list[int], list[str], list[int], list[int]]:
        """`export`'s copies as columns in rank order, the frozen after the ranked: the
        slot each user had, their ids, scores and reached seqs (`ascending`: the keys
        are of such a board). A restore numbers the slots anew in this order, so its
        keys come out sorted."""
        keys = ranked + frozen
        slots = list(map(and_, keys, repeat(SLOT_MASK)))
        # key_score and key_seq written as `map`s: a million keys at C speed
        high = map(rshift, keys, repeat(SEQ_BITS + SLOT_BITS))
        scores = map(sub, high, repeat(SCORE_CEIL)) if ascending else map(
            sub, repeat(SCORE_CEIL), high)
        seqs = map(and_, map(rshift, keys, repeat(SLOT_BITS)), repeat(SEQ_MASK))
        return slots, list(map(users.__getitem__, slots)), list(scores), list(seqs)

    def restore(self, users: list[str], scores: Sequence[int], seqs: Sequence[int],
                ranked: int, version: int) -> None:
        """Into an empty ranking: columns as `columns` gave them, the first `ranked`
        users ranked (in order) and the rest frozen. `frozen` must be set first. Each
        user's slot is their position: one key per user made at C speed (`make_key`
        written as `map`s) and one pass of a sort that finds them in order. Scores
        and seqs must be in range (`MAX_SCORE`, `SEQ_MASK`): a snapshot's are checked
        as they are decoded (`scoreboard.core.image`), not by four passes here."""
        assert not self._key_of, "restore() is for an empty ranking"
        count = len(users)
        if not count == len(scores) == len(seqs):
            raise ValueError(f"board {self.board!r}: columns of different lengths")
        if not 0 <= ranked <= count:
            raise ValueError(f"board {self.board!r}: {ranked} ranked of {count} users")
        high = map(add, scores, repeat(SCORE_CEIL)) if self.ascending else map(
            sub, repeat(SCORE_CEIL), scores)
        keys = list(map(or_, map(lshift, high, repeat(SEQ_BITS + SLOT_BITS)),
                        map(or_, map(lshift, seqs, repeat(SLOT_BITS)), range(count))))
        key_of = dict(zip(users, keys, strict=True))
        if len(key_of) != count:
            raise ValueError(f"board {self.board!r}: a user twice")
        left_out = users[ranked:]
        on_board = sum(1 for u in self.frozen if u in key_of)
        if on_board != len(left_out) or not self.frozen.issuperset(left_out):
            raise ValueError(f"board {self.board!r}: the unranked users are not the frozen")
        self._users, self._key_of = users, key_of
        del keys[ranked:]
        self._order = SortedList(keys)  # in order already: its sort only checks them
        self.version = version

    # -- queries -------------------------------------------------------------------------

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._key_of

    def __len__(self) -> int:
        """Users on the board (frozen users are not)."""
        return len(self._order)

    @property
    def slots(self) -> int:
        """Users who ever joined the board, the frozen too: the slots in use."""
        return len(self._users)

    def canonical_id(self, user_id: str) -> str | None:
        """The string object this ranking holds for `user_id` (None when not on the
        board): sharing it saves a copy of every id for a million users."""
        key = self._key_of.get(user_id)
        return None if key is None else self._users[key & SLOT_MASK]

    def slot_of(self, user_id: str) -> int | None:
        """The user's slot: the order in which they joined the board (from 0)."""
        key = self._key_of.get(user_id)
        return None if key is None else key & SLOT_MASK

    def slots_of(self, user_ids: Iterable[str]) -> list[int | None]:
        """`slot_of` for many users at once (recovery)."""
        get = self._key_of.get
        return [None if (key := get(u)) is None else key & SLOT_MASK for u in user_ids]

    def user_at(self, slot: int) -> str:
        return self._users[slot]

    def score(self, user_id: str) -> int | None:
        key = self._key_of.get(user_id)
        if key is None:
            return None
        high = key >> (SEQ_BITS + SLOT_BITS)  # `_score` written out: decisions ask often
        return high - SCORE_CEIL if self.ascending else SCORE_CEIL - high

    def reached_seq(self, user_id: str) -> int | None:
        key = self._key_of.get(user_id)
        return None if key is None else key_seq(key)

    def rank(self, user_id: str) -> int | None:
        """1-based rank, or None when the user is not on the board or is frozen."""
        key = self._key_of.get(user_id)
        if key is None or user_id in self.frozen:
            return None
        if self.competition:
            return self.rank_of_score(self._score(key))
        return int(self._order.bisect_left(key)) + 1

    def rank_of_score(self, score: int) -> int:
        """The competition rank of `score`: one more than the users strictly better."""
        return int(self._order.bisect_left(self._key(score, 0, 0))) + 1

    def ranks_of(self, user_ids: Collection[str]) -> list[int | None]:
        """`rank` of each user, at once (a batch's answers): the position of each
        sublist of the order is summed up once, and each user's rank is then two
        bisections at C speed, not `SortedList.bisect_left`'s walk of its index. For
        a few users of a big board (one action's answer) each `rank` costs less."""
        order = self._order
        lists, maxes = order._lists, order._maxes
        if len(user_ids) * SUMS_PER_RANK < len(lists):
            return [self.rank(user_id) for user_id in user_ids]
        firsts = [0, *accumulate(map(len, lists))]  # the position of each sublist's first key
        last = len(lists)
        get, frozen, competition = self._key_of.get, self.frozen, self.competition
        ranks: list[int | None] = []
        for user_id in user_ids:
            key = get(user_id)
            if key is None or user_id in frozen:
                ranks.append(None)
                continue
            if competition:
                key = self._key(self._score(key), 0, 0)
            i = bisect_left(maxes, key)
            ranks.append(firsts[i] + bisect_left(lists[i], key) + 1 if i < last
                         else firsts[i] + 1)
        return ranks

    def top(self, n: int) -> list[tuple[str, int]]:
        """[(user, score)] for ranks 1..n."""
        users, score = self._users, self._score
        return [(users[k & SLOT_MASK], score(k)) for k in islice(self._order, n)]

    def window(self, start: int, stop: int) -> list[tuple[int, str, int]]:
        """[(rank, user, score)] for 0-based positions start..stop-1."""
        start = max(start, 0)
        users, score = self._users, self._score
        rows = [
            (start + i + 1, users[k & SLOT_MASK], score(k))
            for i, k in enumerate(self._order.islice(start, stop))
        ]
        if self.competition and rows:
            rank, last = rows[0][0], None
            for i, (position, user, s) in enumerate(rows):
                if s != last:
                    rank = position if last is not None else self.rank_of_score(s)
                    last = s
                rows[i] = (rank, user, s)
        return rows

    def after(self, score: int, reached_seq: int, n: int) -> list[tuple[int, str, int]]:
        """[(rank, user, score)] for the n users ranked after the place that `score`
        reached at `reached_seq` held (keyset paging). That place needs no user on it
        any more: (score, seq) is unique on a board (one record scores one user), so
        users who did not change since are neither repeated nor skipped."""
        start = int(self._order.bisect_right(self._key(score, reached_seq, SLOT_MASK)))
        return self.window(start, start + n)

    def ranks(self) -> Iterable[tuple[str, int, int]]:
        """(user, score, rank) for everyone ranked, best first: a closed period's
        standings as they stood (ties in this board's own rank style)."""
        users, score, competition = self._users, self._score, self.competition
        rank, last = 0, None
        for position, k in enumerate(self._order, 1):
            s = score(k)
            if not competition or s != last:
                rank, last = position, s
            yield users[k & SLOT_MASK], s, rank

    def standings(self, start: int, stop: int) -> list[tuple[int, str, int, int]]:
        """(position, user, score, rank) for the 1-based positions start+1..stop, ties in
        this board's own rank style: a closed period's final standings, a slice at a
        time. Made from the keys at C speed (`ranks` written as `map`s), so a slice of a
        few thousand takes well under a millisecond."""
        start = max(start, 0)
        keys = self._order[start:stop]
        users = map(self._users.__getitem__, map(and_, keys, repeat(SLOT_MASK)))
        high = map(rshift, keys, repeat(SEQ_BITS + SLOT_BITS))
        scores = map(sub, high, repeat(SCORE_CEIL)) if self.ascending else map(
            sub, repeat(SCORE_CEIL), high)
        positions = range(start + 1, start + len(keys) + 1)
        if not self.competition:
            return list(zip(positions, users, scores, positions, strict=True))
        rows = []
        last, rank = None, 0
        for position, user, score in zip(positions, users, scores, strict=True):
            if score != last:  # the first of the slice: one more than those strictly better
                rank = position if last is not None else self.rank_of_score(score)
                last = score
            rows.append((position, user, score, rank))
        return rows

    def dismantle(self, step: int = 4096) -> Iterator[None]:
        """Let go of every user, `step` at a time, yielding after each part: a closed
        period's ranking once it is archived. A million users freed at once hold the
        thread for about 100 ms; a part takes about a millisecond. The ranking reads as
        an empty board from the start."""
        order, key_of, users = self._order, self._key_of, self._users
        self._order, self._key_of, self._users = SortedList(), {}, []
        # The keys are shared with `key_of`: dropping the order's lists of about a
        # thousand keys each frees nothing yet, nor do the ids shared with `key_of`.
        lists = order._lists
        while lists:
            del lists[-max(1, step // 1000):]
            yield
        del order, lists
        while users:
            del users[-step:]
            yield
        yield from _empty(key_of, step)

    def keep_order_only(self, step: int = 4096) -> Iterator[None]:
        """Let go of the map from user to key, `step` users at a time, yielding after
        each part: a closed period's ranking, which the archiver reads by position only
        (`standings`, `len`). Its table (about 40 MB for a million users) goes with the
        map's last entry; the keys and ids stay, held by the order and the slots. The
        ranking then knows no user by id."""
        key_of, self._key_of = self._key_of, {}
        yield from _empty(key_of, step)

    def around(self, user_id: str, radius: int) -> list[tuple[int, str, int]]:
        rank = self.rank(user_id)
        if rank is None:
            return []
        return self.window(rank - 1 - radius, rank + radius)

    def rows(self) -> Iterable[tuple[str, int, int]]:
        """(user, score, reached_seq) for every user, frozen ones included."""
        score = self._score
        for user_id, key in self._key_of.items():
            yield user_id, score(key), key_seq(key)


def _empty(d: dict[str, int], step: int) -> Iterator[None]:
    """Pop every entry of `d`, `step` at a time, yielding after each part."""
    popitem = d.popitem
    while d:
        deque(map(call, repeat(popitem, min(step, len(d)))), maxlen=0)
        yield


def _take_out(order: SortedList, keys: list[int]) -> None:
    """Take `keys`, all of them in the order, out of it in bulk: each found by
    bisection and deleted from its sublist, without `SortedList.remove`'s bookkeeping
    per key (its positional index is dropped once, as a bulk add drops it). A sublist
    left under half the load joins its neighbour (split again if that makes it too
    long), one left empty goes: what `SortedList` keeps."""
    keys.sort()
    lists, maxes = order._lists, order._maxes
    touched: list[int] = []
    pos = 0
    for key in keys:
        # Sorted keys: each one's sublist is this one or a later one. A maximum taken
        # out is still in `maxes` until the end, but every later key is greater.
        pos = bisect_left(maxes, key, pos)
        run = lists[pos]
        del run[bisect_left(run, key)]
        if not touched or touched[-1] != pos:
            touched.append(pos)
    half = order._load >> 1
    for pos in reversed(touched):  # from the end: earlier positions stay put
        run = lists[pos]
        if not run:
            del lists[pos], maxes[pos]
        elif len(run) >= half or len(lists) == 1:
            maxes[pos] = run[-1]
        else:  # joins the sublist before it (the first one: the one after it)
            into, gone = (pos - 1, pos) if pos else (0, 1)
            lists[into] += lists[gone]
            del lists[gone], maxes[gone]
            maxes[into] = lists[into][-1]
            _split(order, into)
    del order._index[:]
    order._len -= len(keys)


def _split(order: SortedList, pos: int) -> None:
    """Split the sublist at `pos` if it grew past twice the load: pieces of the load,
    the last one taking the remainder, each at least half the load and at most twice
    it."""
    lists, load = order._lists, order._load
    run = lists[pos]
    if len(run) > load << 1:
        cuts = range(load, len(run) - load + 1, load)
        pieces = [run[a:b] for a, b in zip((0, *cuts), (*cuts, len(run)), strict=True)]
        lists[pos:pos + 1] = pieces
        order._maxes[pos:pos + 1] = [piece[-1] for piece in pieces]
