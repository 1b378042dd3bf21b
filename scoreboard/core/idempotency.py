"""Idempotency keys: the recent `(user, clientActionId)` pairs and what each asked for.

A repeated key with the same payload is a `Replay` of the first record; with another
payload it is refused. Memory is bounded two ways: keys older than the retention window
are forgotten by `expire`, and at most `max_keys` are kept (oldest first out). A key
forgotten here is still caught by the log's unique index, and the writer then learns
it back with `remember`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import orjson

from scoreboard.core import errors
from scoreboard.core.commands import AdjustScore, SubmitAction
from scoreboard.core.pending import Pending
from scoreboard.core.records import ActionRecord, AdjustRecord, Kind, LogRecord, ScoreRecord

Key = tuple[str, str]  # (user_id, client_action_id)


@dataclass(frozen=True, slots=True)
class Replay:
    """The command repeats an action already in the log (record `seq`)."""

    seq: int


def fingerprint(kind: str, board: str, what: str | int, extra: Mapping[str, Any] | None) -> int:
    """What must match for a repeated key to count as the same request: 64 bits of a
    digest, the same in every process (a snapshot carries them to the next one)."""
    if not extra:  # most actions carry no metadata: a few (kind, board, what) recur
        return _plain_fingerprint(kind, board, what, type(what).__name__)
    return _digest(kind, board, what, extra)


def _digest(kind: str, board: str, what: str | int, extra: Mapping[str, Any] | None) -> int:
    body = orjson.dumps([kind, board, what, extra or None], option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(blake2b(body, digest_size=8).digest())


@lru_cache(maxsize=4096)
def _plain_fingerprint(kind: str, board: str, what: str | int, _type: str) -> int:
    # Digested once per distinct value, three times looked up per action (decided,
    # held, remembered). The type is part of the key: 1, 1.0 and True are equal keys
    # but not equal JSON.
    return _digest(kind, board, what, None)


# (board, actionType) → the fingerprint of an action without metadata: nearly every
# action's, asked twice per action (decided, remembered). Bounded like the cache above.
_PLAIN_ACTIONS: dict[tuple[str, str], int] = {}


def _action_fingerprint(board: str, action_type: str, metadata: Mapping[str, Any] | None
                        ) -> int:
    """`fingerprint` of an action (its type is always text)."""
    if metadata:
        return _digest(Kind.ACTION, board, action_type, metadata)
    key = (board, action_type)
    fp = _PLAIN_ACTIONS.get(key)
    if fp is None:
        if len(_PLAIN_ACTIONS) >= 4096:
            _PLAIN_ACTIONS.clear()
        fp = _PLAIN_ACTIONS[key] = _digest(Kind.ACTION, board, action_type, None)
    return fp


def record_fingerprint(r: ScoreRecord) -> int:
    if isinstance(r, ActionRecord):
        return _action_fingerprint(r.board, r.action_type, r.metadata)
    assert isinstance(r, AdjustRecord)
    return fingerprint(Kind.ADJUST, r.board, r.delta, {"reason": r.reason})


def command_fingerprint(c: SubmitAction | AdjustScore) -> int:
    if isinstance(c, AdjustScore):
        return fingerprint(Kind.ADJUST, c.board, c.delta, {"reason": c.reason})
    return _action_fingerprint(c.board, c.action_type, c.metadata)


def _conflict() -> errors.IdempotencyConflict:
    return errors.IdempotencyConflict("clientActionId was already used with a different payload")


class IdempotencyKeys:
    """Recent keys → (seq, fingerprint, at), oldest first."""

    __slots__ = ("_entries", "max_keys", "retention")

    def __init__(self, *, retention: float, max_keys: int) -> None:
        self.retention = retention
        self.max_keys = max_keys
        self._entries: OrderedDict[Key, tuple[int, int, float]] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, cmd: SubmitAction | AdjustScore, pending: Pending) -> Replay | int:
        """A `Replay` when the key is known with the same payload, else the command's
        fingerprint (for `hold`: it is digested once); raises `IdempotencyConflict` when
        the key is known with another payload."""
        key = (cmd.user_id, cmd.client_action_id)
        fp = _PLAIN_ACTIONS.get((cmd.board, cmd.action_type)) \
            if cmd.__class__ is SubmitAction and not cmd.metadata else None  # (most)
        if fp is None:
            fp = command_fingerprint(cmd)
        known = pending.key(key)
        if known is not None:
            if known[0] != fp:
                raise _conflict()
            return Replay(known[1])
        entry = self._entries.get(key)
        if entry is not None:
            if entry[1] != fp:
                raise _conflict()
            return Replay(entry[0])
        return fp

    @staticmethod
    def hold(cmd: SubmitAction | AdjustScore, fp: int, seq: int, pending: Pending) -> None:
        """The command, whose fingerprint `check` gave, was accepted into the group as
        record `seq`: later copies of it replay that record."""
        pending.keys[(cmd.user_id, cmd.client_action_id)] = (fp, seq)

    def remember(self, r: LogRecord) -> None:
        if not isinstance(r, ScoreRecord):
            return
        entries = self._entries
        key = (r.user_id, r.client_action_id)
        fp = _PLAIN_ACTIONS.get((r.board, r.action_type)) \
            if r.__class__ is ActionRecord and not r.metadata else None  # (most)
        entries[key] = (r.seq, record_fingerprint(r) if fp is None else fp, r.at)
        entries.move_to_end(key)
        while len(entries) > self.max_keys:
            entries.popitem(last=False)

    def expire(self, now: float) -> None:
        horizon = now - self.retention
        entries = self._entries
        while entries:
            key, (_, _, at) = next(iter(entries.items()))
            if at >= horizon:
                break
            del entries[key]

    def digest(self) -> list[tuple[Key, tuple[int, int, float]]]:
        """The keys in memory, in order (tests: a replay must remember the same)."""
        return list(self._entries.items())

    export = digest  # the same plain values make a snapshot (fingerprints are stable)

    def load(self, entries: Iterable[Sequence[Any]]) -> None:
        """Take back what `export` gave (into an empty memory); the newest `max_keys`."""
        self._entries = OrderedDict(
            ((user, cid), (seq, fp, at)) for (user, cid), (seq, fp, at) in entries
        )
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)
