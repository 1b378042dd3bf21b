"""Quota windows: how often each user did each limited action in its rolling window.

A rule with a quota allows `limit` accepted actions per `window` seconds per user. The
times of accepted actions are kept per (user, actionType); `expire` walks one queue per
action type in time order, so forgetting closed windows costs only what has lapsed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from scoreboard.core import errors
from scoreboard.core.pending import Pending
from scoreboard.core.records import ActionRecord, LogRecord
from scoreboard.core.rules import Quota, RuleSet

Key = tuple[str, str]  # (user_id, action_type)


class QuotaWindows:
    __slots__ = ("_hits", "_order", "rules")

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        # (user, actionType) → times of accepted actions inside the rule's window
        # (At most `limit` times, as a tuple replaced on each change: tuples of numbers
        # are not tracked by the collector, so a full collection walks no object per key.)
        self._hits: dict[Key, tuple[float, ...]] = {}
        # actionType → (time, user) of every remembered hit, oldest first
        self._order: dict[str, deque[tuple[float, str]]] = {}

    def check(self, user_id: str, action_type: str, quota: Quota, now: float,
              pending: Pending) -> None:
        """Raise `QuotaExceeded` when one more action would pass the limit."""
        key = (user_id, action_type)
        hits = self._prune(key, now - quota.window)
        used = len(hits) + pending.quota_used(key)
        if used >= quota.limit:
            oldest = hits[0] if hits else now
            raise errors.QuotaExceeded(
                f"{action_type} is limited to {quota.limit} per {quota.window:g} s",
                retry_after=max(1.0, oldest + quota.window - now), limit=quota.limit,
            )

    @staticmethod
    def hold(user_id: str, action_type: str, pending: Pending) -> None:
        """The action was accepted into the batch: it counts for the next ones."""
        key = (user_id, action_type)
        pending.quota_hits[key] = pending.quota_hits.get(key, 0) + 1

    def remember(self, r: LogRecord) -> None:
        if not isinstance(r, ActionRecord):
            return
        rule = self.rules.get(r.action_type)
        if rule is not None and rule.quota is not None:
            key = (r.user_id, r.action_type)
            self._hits[key] = (*self._hits.get(key, ()), r.at)
            order = self._order.get(r.action_type)
            if order is None:  # (not `setdefault`: a deque made per action for nothing)
                order = self._order[r.action_type] = deque()
            order.append((r.at, r.user_id))

    def expire(self, now: float) -> None:
        for action_type, order in self._order.items():
            rule = self.rules.get(action_type)
            window = rule.quota.window if rule is not None and rule.quota else 0.0
            while order and order[0][0] <= now - window:
                _, user_id = order.popleft()
                key = (user_id, action_type)
                if not self._prune(key, now - window):
                    self._hits.pop(key, None)

    def _prune(self, key: Key, horizon: float) -> tuple[float, ...]:
        hits = self._hits.get(key)
        if not hits or hits[0] > horizon:
            return hits or ()
        i = 1
        while i < len(hits) and hits[i] <= horizon:
            i += 1
        hits = self._hits[key] = hits[i:]
        return hits

    def digest(self) -> dict[Key, list[float]]:
        """The hits in memory (tests: a replay must count the same)."""
        return {key: list(hits) for key, hits in self._hits.items()}

    def export(self) -> tuple[list[tuple[str, str, list[float]]],
                              list[tuple[str, list[tuple[float, str]]]]]:
        """The hits and their time order, as plain values (a snapshot)."""
        hits = [(user, action, list(times)) for (user, action), times in self._hits.items()]
        return hits, [(action, list(order)) for action, order in self._order.items()]

    def load(self, hits: Iterable[Sequence[Any]], order: Iterable[Sequence[Any]]) -> None:
        """Take back what `export` gave, into an empty memory."""
        self._hits = {(user, action): tuple(times) for user, action, times in hits}
        self._order = {action: deque((t, user) for t, user in pairs) for action, pairs in order}
