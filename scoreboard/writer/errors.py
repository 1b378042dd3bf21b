"""What callers of the writer see: the `Submitter` interface, results and the writer's
errors (each with a stable code and `retry_after`; the edge maps them to HTTP)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from scoreboard.core.commands import ActionResult, Command, UserResult
from scoreboard.core.errors import Refused

Result = ActionResult | UserResult


class Submitter(Protocol):
    """What the edge hands commands to: the writer itself, or a follower's forwarder."""

    async def submit(self, cmd: Command) -> Result: ...

    async def submit_many(self, cmds: Sequence[Command]) -> list[Result | Refused]: ...


class WriterError(Refused):
    """The writer could not take or finish the request; the client may retry later."""

    code = "OVERLOADED"
    retry_after: float = 1.0

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)


class Overloaded(WriterError):
    code = "OVERLOADED"


class StoreDown(WriterError):
    """The store (or the writer that owns it) cannot be reached. Its message is for the
    log: it may carry a driver's words (hosts, errno), so clients are told a plain one,
    unless it was written for them (`for_clients`: a reason without internals)."""

    code = "STORE_UNAVAILABLE"

    def __init__(self, message: str, retry_after: float = 1.0, *,
                 for_clients: bool = False) -> None:
        super().__init__(message, retry_after=retry_after)
        self.for_clients = for_clients


class ShuttingDown(WriterError):
    code = "OVERLOADED"


class WriterStopped(WriterError):
    """The writer's task ended while callers were waiting (a crash); the process is
    going down so that a supervisor restarts it."""

    code = "OVERLOADED"


class StateDiverged(Exception):
    """Memory no longer matches the log; the writer must end (a restart rebuilds it)."""
