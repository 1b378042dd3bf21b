"""Display names: what each user asked to be shown as, by user id, and what a name may hold.

A million users have a million names, and a dict of them costs about 30 MB beside the
names themselves. Nearly every user is on the global board, whose ranking already
numbers its users by slot, so their names sit in a list by that slot (one pointer
each); a user not on the global board has theirs in a dict until they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping, Sequence

from scoreboard.core.ranking import Ranking

# Characters a name loses: C0/C1 controls and DEL; bidi embeddings, overrides, isolates
# and marks (they reorder the text around the name on every board that shows it); and
# zero-width characters (they make two names that look the same differ).
INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f"
    "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
    "\u200b-\u200d\u2060\ufeff]"
)


def visible(text: str) -> str:
    """`text` without the characters in `INVISIBLE`, trimmed of white space."""
    return INVISIBLE.sub("", text).strip()


class Names(MutableMapping[str, str]):
    __slots__ = ("_by_slot", "_count", "_others", "_ranking", "_slot_of")

    def __init__(self, ranking: Ranking) -> None:
        self._ranking = ranking  # the global board's
        self._slot_of = ranking.slot_of  # bound once: every decision reads names
        self._by_slot: list[str | None] = []
        self._others: dict[str, str] = {}  # users not on the ranking when named
        self._count = 0

    def get(self, user_id: str, default: str | None = None) -> str | None:  # type: ignore[override]
        slot = self._slot_of(user_id)
        if slot is not None and slot < len(self._by_slot):
            name = self._by_slot[slot]
            if name is not None:
                return name
        return self._others.get(user_id, default)

    def __getitem__(self, user_id: str) -> str:
        name = self.get(user_id)
        if name is None:
            raise KeyError(user_id)
        return name

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self.get(user_id) is not None

    def __setitem__(self, user_id: str, name: str) -> None:
        slot = self._slot_of(user_id)
        if slot is None:
            if user_id not in self._others:
                self._count += 1
            self._others[user_id] = name
        else:
            self.set_at(slot, name)
            if self._others.pop(user_id, None) is not None:
                self._count -= 1  # named before they joined the board: one place only

    def set_at(self, slot: int, name: str) -> None:
        """Name the ranking's user in `slot` (recovery: the slot is known already)."""
        by_slot = self._by_slot
        if slot >= len(by_slot):
            by_slot.extend([None] * (slot + 1 - len(by_slot)))
        if by_slot[slot] is None:
            self._count += 1
        by_slot[slot] = name

    def load_at(self, slots: Sequence[int | None], names: Sequence[str | None]) -> None:
        """Recovery: `set_at` for many users at once; pairs with no slot or no name are
        skipped (the caller keeps those)."""
        by_slot = self._by_slot
        top = max((slot for slot in slots if slot is not None), default=-1)
        if top >= len(by_slot):
            by_slot.extend([None] * (top + 1 - len(by_slot)))
        added = 0
        for slot, name in zip(slots, names, strict=True):
            if slot is not None and name is not None:
                if by_slot[slot] is None:
                    added += 1
                by_slot[slot] = name
        self._count += added

    def export(self) -> tuple[list[str | None], dict[str, str]]:
        """Copies for a snapshot: the names by the ranking's slot, and the others."""
        return list(self._by_slot), dict(self._others)

    def restore(self, by_slot: list[str | None], others: dict[str, str]) -> None:
        """Into an empty `Names`, after its ranking was restored: what `export` gave."""
        assert not self._count, "restore() is for empty names"
        self._by_slot, self._others = by_slot, others
        self._count = len(by_slot) - by_slot.count(None) + len(others)

    def __delitem__(self, user_id: str) -> None:
        slot = self._slot_of(user_id)
        if slot is not None and slot < len(self._by_slot) and self._by_slot[slot] is not None:
            self._by_slot[slot] = None
        else:
            del self._others[user_id]
        self._count -= 1

    def __iter__(self) -> Iterator[str]:
        user_at = self._ranking.user_at
        for slot, name in enumerate(self._by_slot):
            if name is not None:
                yield user_at(slot)
        yield from self._others

    def __len__(self) -> int:
        return self._count
