"""The writer's groups: commands taken from its queue together, decided together and
committed in one transaction (scoreboard.writer.actor)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from scoreboard.core.commands import Command
from scoreboard.core.engine import Pending, Replay
from scoreboard.core.records import LogRecord
from scoreboard.writer.errors import Result

Item = tuple[Command, "asyncio.Future[Result]"]
Unit = list[Item]  # queued, taken and decided together (never split across batches)


@dataclass(slots=True, eq=False)
class Group:
    """Commands decided together and committed in one transaction."""

    entries: list[Item | Unit]  # as taken from the queue: put back the same way
    items: list[Item]
    deadline: float  # monotonic: the last moment to retry its commit
    pending: Pending | None = None
    outcomes: list[LogRecord | Replay | Exception] = field(default_factory=list)
    # Records of earlier groups, still in flight when this one was decided, that its
    # replays name.
    earlier: dict[int, LogRecord] = field(default_factory=dict)
    retried: bool = False  # decided again after the log refused a duplicate
    commit: asyncio.Task[float] | None = None  # started once every earlier one ended


def record_in(groups: Sequence[Group], seq: int) -> LogRecord | None:
    """The record `seq` if one of `groups` decided it (each group's seqs run on)."""
    for group in groups:
        records = group.pending.records if group.pending is not None else []
        if records and records[0].seq <= seq <= records[-1].seq:
            return records[seq - records[0].seq]
    return None
