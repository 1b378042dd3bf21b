"""Abuse counters: accepted actions and points per user in the current minute.

Counted per calendar minute of the writer's clock. When a user passes a threshold
(`AbuseLimits`) the engine writes a `flag` record naming the reason, and a `freeze`
record too when `auto_freeze` is on; those records are what replays, the counters only
decide when to write them. Only the newest minute of each user matters, so `expire`
forgets every user whose last counted minute is over.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from scoreboard.core.pending import Pending
from scoreboard.core.records import ActionRecord, LogRecord
from scoreboard.core.rules import AbuseLimits

MONITOR = "abuse-monitor"  # the actor named on records the abuse monitor writes


class AbuseMonitor:
    __slots__ = ("_activity", "limits")

    def __init__(self, limits: AbuseLimits) -> None:
        self.limits = limits
        # user → (minute, actions, points), the user last counted longest ago first.
        # Tuples of numbers, replaced rather than changed: the collector stops tracking
        # them, so a full collection does not walk one object per active user.
        self._activity: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    @property
    def auto_freeze(self) -> bool:
        return self.limits.auto_freeze

    def __len__(self) -> int:
        return len(self._activity)

    def count(self, user_id: str, points: int, now: float, pending: Pending
              ) -> tuple[int, int]:
        """Count one accepted action of the batch: the user's actions and points in this
        minute with it (`reason` says whether they pass a threshold)."""
        minute = int(now // 60)
        entry = self._activity.get(user_id)
        count, total = (entry[1], entry[2]) if entry is not None and entry[0] == minute else (0, 0)
        n, p = pending.activity_of(user_id, minute)  # earlier in this group or chain
        own = pending.activity.get(user_id)
        own_n, own_p = (own[1], own[2]) if own is not None and own[0] == minute else (0, 0)
        pending.activity[user_id] = (minute, own_n + 1, own_p + points)
        return count + n + 1, total + p + points

    def reason(self, count: int, total: int) -> str | None:
        """Why a user with `count` actions and `total` points in a minute is flagged, or
        None while they are within the thresholds."""
        limits = self.limits
        if limits.actions_per_minute and count > limits.actions_per_minute:
            return f"{count} actions within a minute (threshold {limits.actions_per_minute})"
        if limits.points_per_minute and total > limits.points_per_minute:
            return f"{total} points within a minute (threshold {limits.points_per_minute})"
        return None

    def remember(self, r: LogRecord) -> None:
        if not isinstance(r, ActionRecord):
            return
        minute = int(r.at // 60)
        entry = self._activity.get(r.user_id)
        if entry is None or entry[0] != minute:
            self._activity[r.user_id] = (minute, 1, r.delta)
            self._activity.move_to_end(r.user_id)
        else:
            self._activity[r.user_id] = (minute, entry[1] + 1, entry[2] + r.delta)

    def expire(self, now: float) -> None:
        minute = int(now // 60)
        activity = self._activity
        while activity:
            user_id, entry = next(iter(activity.items()))
            if entry[0] >= minute:
                break
            del activity[user_id]

    def digest(self) -> list[tuple[str, list[int]]]:
        """The counters in memory, in order (tests: a replay must count the same)."""
        return [(user_id, list(entry)) for user_id, entry in self._activity.items()]

    export = digest  # the same plain values make a snapshot

    def load(self, activity: Iterable[Sequence[Any]]) -> None:
        """Take back what `export` gave, into an empty memory."""
        self._activity = OrderedDict(
            (user_id, (entry[0], entry[1], entry[2])) for user_id, entry in activity)
