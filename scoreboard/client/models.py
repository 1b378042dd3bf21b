"""The client's typed replies: frozen dataclasses read from the service's JSON (SPEC §4, §9).

Each class has `from_json`, which reads the fields it names and ignores any other, so a
server that adds a field does not break an older client. Field names are the Python
spelling of the JSON ones (`newScore` → `new_score`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An accepted score action, or the original result of a replayed one."""

    user_id: str
    board: str
    action_type: str | None
    delta: int
    new_score: int
    rank: int | None
    replayed: bool  # True: this clientActionId was already committed; nothing changed now
    seq: int  # the log position of the change
    at: str  # when it was committed (ISO 8601)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionResult:
        return cls(
            user_id=data["userId"], board=data["board"], action_type=data.get("actionType"),
            delta=data["delta"], new_score=data["newScore"], rank=data.get("rank"),
            replayed=bool(data["replayed"]), seq=data["seq"], at=data["at"],
        )


@dataclass(frozen=True, slots=True)
class ItemError:
    """One action of a batch that was refused on its own (the rest were decided)."""

    status: int  # what a single action would have been answered with
    code: str  # `QUOTA_EXCEEDED`, `USER_FROZEN`, `UNKNOWN_ACTION`, …
    message: str
    retry_after: float | None = None  # seconds, for a quota

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemError:
        error = data["error"]
        retry_after = data.get("retryAfter")
        return cls(status=int(data.get("status", 0)), code=str(error.get("code", "")),
                   message=str(error.get("message", "")),
                   retry_after=None if retry_after is None else float(retry_after))


BatchResult = ActionResult | ItemError


@dataclass(frozen=True, slots=True)
class BatchAction:
    """One action of `submit_batch`, reported for `user_id` by a trusted backend.

    Leave `client_action_id` out and the client makes one (a uuid4) before the first
    try; every retry of the batch then sends the same id, so it counts once."""

    user_id: str
    action_type: str
    client_action_id: str | None = None
    board: str | None = None
    display_name: str | None = None
    metadata: Mapping[str, Any] | None = None

    def to_json(self, client_action_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"userId": self.user_id, "actionType": self.action_type,
                               "clientActionId": client_action_id}
        if self.board is not None:
            out["board"] = self.board
        if self.display_name is not None:
            out["displayName"] = self.display_name
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One place on a board."""

    rank: int
    user_id: str
    display_name: str | None
    score: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        return cls(rank=data["rank"], user_id=data["userId"],
                   display_name=data.get("displayName"), score=data["score"])


def _entries(data: Mapping[str, Any]) -> tuple[Entry, ...]:
    return tuple(Entry.from_json(e) for e in data["entries"])


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """The top N of a board (`GET /leaderboard`)."""

    board: str
    entries: tuple[Entry, ...]
    total_users: int
    version: int  # grows whenever the board changes
    generated_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Leaderboard:
        return cls(board=data["board"], entries=_entries(data),
                   total_users=data["totalUsers"], version=data["version"],
                   generated_at=data.get("generatedAt"))


@dataclass(frozen=True, slots=True)
class Around:
    """The users ranked next to one user (`GET /leaderboard/around/{userId}`)."""

    board: str
    user_id: str
    entries: tuple[Entry, ...]
    total_users: int
    version: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Around:
        return cls(board=data["board"], user_id=data["userId"], entries=_entries(data),
                   total_users=data["totalUsers"], version=data["version"])


@dataclass(frozen=True, slots=True)
class UserScore:
    """One user's score and rank on a board (`GET /users/{userId}/score`)."""

    user_id: str
    board: str | None
    display_name: str | None
    score: int
    rank: int
    in_top: bool
    points_to_top: int
    total_users: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UserScore:
        return cls(user_id=data["userId"], board=data.get("board"),
                   display_name=data.get("displayName"), score=data["score"],
                   rank=data["rank"], in_top=bool(data["inTop"]),
                   points_to_top=data["pointsToTop"], total_users=data["totalUsers"])


@dataclass(frozen=True, slots=True)
class Event:
    """One committed log record from the event feed (SPEC §9), in seq order.

    `data` is the whole record as the service sent it (`seq`, `at`, `board`, `userId`,
    `kind`, `actionType`, `clientActionId`, `delta`, `prevScore`, `newScore`, …); the
    fields every consumer needs are lifted out."""

    seq: int
    kind: str  # `action`, `adjustment`, `freeze`, …
    board: str | None
    user_id: str | None
    at: str | None
    data: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(seq=int(data["seq"]), kind=str(data["kind"]), board=data.get("board"),
                   user_id=data.get("userId"), at=data.get("at"), data=data)
