"""An image of the engine: everything `state_digest` and `memory_digest` cover, as plain
values, tagged with the seq it reflects. A snapshot is an image in the store.

Taking one is split in two so the writer barely pauses. `capture` runs on the loop at a
seq boundary and only copies: lists of immutable items (keys, names) at C speed, the
few mutable parts (quota queues, abuse counters) as tuples; a ranking's users list only
grows, so it is kept as it is. About 30 ms for a million users. `Capture.image` then
turns the copies into plain values (a ranking's keys become columns of users, scores
and seqs in rank order) and may run in a thread while the engine moves on. `restore`
rebuilds an empty engine from an image; replaying the records after `image.last_seq`
through `apply` then gives exactly the engine that replayed the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Annotated, Any

from msgspec import Meta

from scoreboard.core.boards import BoardDef, BoardError
from scoreboard.core.engine import Engine
from scoreboard.core.names import Names
from scoreboard.core.periods import Period
from scoreboard.core.ranking import MAX_SCORE, SEQ_MASK, Ranking

# A ranking key has room for these and no more: a snapshot's columns are checked
# against them while they are decoded, at C speed (`Ranking.restore` trusts them).
Score = Annotated[int, Meta(ge=-MAX_SCORE, le=MAX_SCORE)]
ReachedSeq = Annotated[int, Meta(ge=0, le=SEQ_MASK)]

_DEFINITION_FIELDS = [f.name for f in fields(BoardDef) if f.init]


def _definition_row(d: BoardDef) -> list[Any]:
    return [getattr(d, name) for name in _DEFINITION_FIELDS]


def _definition(row: list[Any]) -> BoardDef:
    """A definition from an image; `ValueError` for one that does not hold together."""
    try:
        keys = dict(zip(_DEFINITION_FIELDS, row, strict=True))
        keys["follows"] = tuple(keys["follows"])
        return BoardDef(**keys)
    except (TypeError, KeyError, BoardError) as exc:
        raise ValueError(f"the image has a bad board definition: {exc}") from None


@dataclass(frozen=True, slots=True)
class BoardImage:
    """One board as columns in rank order, the frozen users after the ranked ones: a
    restore gives each user their position as slot, so its keys come out sorted."""

    name: str
    version: int
    users: list[str]
    scores: list[Score]
    seqs: list[ReachedSeq]  # the seq that reached the score (ties)
    ranked: int  # how many of the users are ranked; the rest are frozen


@dataclass(frozen=True, slots=True)
class EngineImage:
    last_seq: int
    last_at: float
    boards: list[BoardImage]
    names: list[str | None]  # by the global board's user, in its `users` order
    other_names: dict[str, str]  # users named but not on the global board
    frozen: list[str]
    anonymous: list[str]
    flags: dict[str, str]
    revoked: dict[str, float]
    keys: list[tuple[tuple[str, str], tuple[int, int, float]]]
    quota_hits: list[tuple[str, str, list[float]]]
    quota_order: list[tuple[str, list[tuple[float, str]]]]
    spent: list[tuple[str, float]]
    abuse: list[tuple[str, list[int]]] | None  # None: the monitor was off
    # board → its current period (id, startsAt, endsAt), None before its first score
    periods: dict[str, tuple[str, float, float] | None] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)  # boards whose season is over
    # boards defined at run time: each definition's fields, in `BoardDef`'s order
    defined: list[list[Any]] = field(default_factory=list)


class Capture:
    """Copies of an engine's state at one seq, taken on the loop (`capture`)."""

    __slots__ = ("_boards", "_partial")

    def __init__(self, boards: list[tuple[str, int, list[str], list[int], list[int], bool]],
                 partial: dict[str, object]) -> None:
        self._boards = boards
        self._partial = partial

    @property
    def last_seq(self) -> int:
        seq = self._partial["last_seq"]
        assert isinstance(seq, int)
        return seq

    def image(self) -> EngineImage:
        """The plain image; pure computation over the copies, fine in a thread."""
        boards = []
        partial = dict(self._partial)
        for name, version, users, ranked, frozen, ascending in self._boards:
            slots, in_order, scores, seqs = Ranking.columns(users, ranked, frozen, ascending)
            boards.append(BoardImage(name, version, in_order, scores, seqs, len(ranked)))
            if name == "global":  # names follow the global board's users to their place
                names = partial["names"]
                assert isinstance(names, list)
                names += [None] * (len(users) - len(names))
                partial["names"] = list(map(names.__getitem__, slots))
        return EngineImage(boards=boards, **partial)  # type: ignore[arg-type]


def capture(engine: Engine) -> Capture:
    """Copy what an image needs, now: the engine may change as soon as this returns."""
    names, other_names = engine.names.export()
    quota_hits, quota_order = engine.quotas.export()
    return Capture(
        [(name, r.version, *r.export(), r.ascending) for name, r in engine.boards.items()],
        {
            "last_seq": engine.last_seq,
            "last_at": engine.last_at,
            "names": names,
            "other_names": other_names,
            "frozen": list(engine.frozen),
            "anonymous": list(engine.anonymous),
            "flags": dict(engine.flags),
            "revoked": dict(engine.revoked),
            "keys": engine.keys.export(),
            "quota_hits": quota_hits,
            "quota_order": quota_order,
            "spent": engine.spent.export(),
            "abuse": None if engine.abuse is None else engine.abuse.export(),
            "periods": {b: None if p is None else (p.id, p.starts_at, p.ends_at)
                        for b, p in engine.periods.items()},
            "ended": list(engine.ended),
            "defined": [_definition_row(d) for d in engine.defined.values()],
        },
    )


def take(engine: Engine) -> EngineImage:
    """`capture` and `image` at once (tests, tools)."""
    return capture(engine).image()


def restore(engine: Engine, image: EngineImage) -> None:
    """Rebuild an empty engine from an image. Raises `ValueError`, the engine untouched,
    for an image that does not hold together."""
    if engine.last_seq:
        raise ValueError("restoring needs an empty engine")
    frozen = set(image.frozen)
    defined = [_definition(row) for row in image.defined]
    defs = engine.defs | {d.id: d for d in defined}
    rankings: dict[str, Ranking] = {}
    for b in image.boards:  # built aside and checked before anything is replaced
        kind = defs.get(b.name)  # a board's order and rank style are its own
        ranking = rankings[b.name] = Ranking(b.name) if kind is None else Ranking(
            b.name, ascending=kind.ascending, competition=kind.competition)
        ranking.frozen |= frozen
        ranking.restore(b.users, b.scores, b.seqs, b.ranked, b.version)
    on_global = rankings.get("global")
    if on_global is None or len(image.names) > on_global.slots:
        raise ValueError("the image has no global board, or more names than its users")
    names = Names(on_global)
    names.restore(image.names, image.other_names)
    for d in defined:
        engine.define(d, 0)
    for name, ranking in engine.boards.items():
        if name not in rankings:  # a board new to the config: empty, as Restore leaves it
            ranking.frozen |= frozen
            ranking.version = max(ranking.version, image.last_seq)
    engine.boards.update(rankings)
    engine.names = names
    # In place: other parts hold these very sets and dicts (the authenticator reads
    # `revoked`).
    engine.frozen.update(frozen)
    engine.anonymous.update(image.anonymous)
    engine.flags.update(image.flags)
    engine.revoked.update(image.revoked)
    engine.keys.load(image.keys)
    engine.quotas.load(image.quota_hits, image.quota_order)
    engine.spent.load(image.spent)
    if engine.abuse is not None and image.abuse is not None:
        engine.abuse.load(image.abuse)
    for board, p in image.periods.items():
        if board in engine.periods:  # a board still defined with periods
            engine.periods[board] = None if p is None else Period(*p)
    engine.ended.update(b for b in image.ended if b in engine.defs)
    engine.last_seq = image.last_seq
    engine.last_at = image.last_at
