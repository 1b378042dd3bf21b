"""When the client tries a request again, and after how long: the decision table.

| what happened                          | retried?                 | after                |
|----------------------------------------|--------------------------|----------------------|
| no answer (`ScoreboardConnectionError`)| yes                      | backoff              |
| 429, 502, 503, 504 with `Retry-After`  | yes, if ≤ max_retry_after| `Retry-After`        |
| 429, 502, 503, 504 without it          | yes                      | backoff              |
| 429/503 whose `Retry-After` is longer  | no (raised, with it)     |                      |
| any other status (400, 401, 404, 422…) | no                       |                      |
| the last of `max_tries`                | no                       |                      |

Retrying is safe because a retry is the same request: a score action keeps its
`clientActionId`, which the service commits at most once and answers again with the
original result (`replayed: true`). Backoff is `scoreboard.runtime.retry.Backoff`
(capped exponential, full jitter), one per request (or per feed, reset on progress).
A `Retry-After` is waited out exactly; it also counts as a failure of the backoff, so
a service that answers 503 with no header later backs off from where it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from scoreboard.client.errors import ScoreboardConnectionError, ScoreboardError
from scoreboard.runtime.retry import Backoff

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryNote:
    """What `on_retry` hears before each wait: the failed try's number (1 = the first
    try of this request, or the first since the feed last made progress), the wait in
    seconds and the error."""

    tries: int
    delay: float
    error: ScoreboardError


OnRetry = Callable[[RetryNote], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one request is tried. `max_tries` counts the first try; None is no
    bound (the event feed, which keeps resuming until its consumer stops)."""

    max_tries: int | None = 5
    backoff_base: float = 0.25  # seconds: the first backoff's ceiling
    backoff_cap: float = 8.0  # seconds: the longest backoff
    max_retry_after: float = 60.0  # a longer Retry-After (a quota window) is raised

    def __post_init__(self) -> None:
        if self.max_tries is not None and self.max_tries < 1:
            raise ValueError(f"max_tries must be at least 1 (got {self.max_tries!r})")
        if self.max_retry_after < 0:
            raise ValueError(f"max_retry_after must be >= 0 (got {self.max_retry_after!r})")

    def backoff(self, random: Callable[[], float] | None = None) -> Backoff:
        """A fresh schedule for one request (or one feed) under this policy."""
        if random is None:
            return Backoff(self.backoff_base, self.backoff_cap)
        return Backoff(self.backoff_base, self.backoff_cap, random=random)

    def retryable(self, error: ScoreboardError) -> bool:
        """Whether this failure may be tried again at all, whatever the count."""
        return isinstance(error, ScoreboardConnectionError) or error.status in RETRY_STATUSES

    def delay(self, error: ScoreboardError, tries: int, backoff: Backoff) -> float | None:
        """The wait before the next try after `tries` tries ending in `error`, or None
        to give up and raise it."""
        if not self.retryable(error):
            return None
        if self.max_tries is not None and tries >= self.max_tries:
            return None
        drawn = backoff.next_delay()  # counted either way: see the module docstring
        if error.retry_after is None or isinstance(error, ScoreboardConnectionError):
            return drawn
        if error.retry_after > self.max_retry_after:
            return None
        return error.retry_after
