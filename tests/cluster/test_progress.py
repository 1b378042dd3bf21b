"""Progress: waiting until this process has applied a seq, each wait bounded in time."""

from __future__ import annotations

import asyncio

import pytest

from scoreboard.cluster.progress import Progress
from tests.cluster.conftest import LIMIT


class Applied:
    """The engine's last seq as `Progress` reads it; counts the reads, so a test knows
    when a waiter has looked (and, not finding its seq, registered)."""

    def __init__(self) -> None:
        self.seq = 0
        self.reads = 0
        self._read = asyncio.Event()

    def __call__(self) -> int:
        self.reads += 1
        self._read.set()
        return self.seq

    async def read_by(self, waiters: int) -> None:
        """Until `waiters` more reads have happened (one per new waiter)."""
        target = self.reads + waiters

        async def reached() -> None:
            while self.reads < target:
                self._read.clear()
                await self._read.wait()

        await asyncio.wait_for(reached(), LIMIT)


def waiting(progress: Progress, seq: int, within: float, woken: list[int]
            ) -> asyncio.Task[bool]:
    """A waiter that notes its seq in `woken` when its wait returns True."""
    async def wait() -> bool:
        ok = await progress.wait(seq, within)
        if ok:
            woken.append(seq)
        return ok

    return asyncio.create_task(wait())


async def test_an_applied_seq_is_true_at_once() -> None:
    """A seq at or below the applied one needs no wait, even with no time to wait."""
    applied = Applied()
    applied.seq = 5
    p = Progress(applied)
    assert p.applied == 5
    assert await p.wait(5, 0.0) is True
    assert await p.wait(1, -1.0) is True


async def test_no_time_to_wait_is_false_at_once() -> None:
    """`within <= 0` and the seq not applied: False without waiting or registering."""
    applied = Applied()
    p = Progress(applied)
    assert await p.wait(1, 0.0) is False
    assert await p.wait(1, -3.0) is False
    applied.seq = 1
    p.on_commit([])  # nothing registered, nothing to wake
    assert await p.wait(1, 0.0) is True


async def test_a_waiter_wakes_when_a_commit_reaches_its_seq() -> None:
    """The wait ends on the commit listener's call, not on its timeout."""
    applied = Applied()
    p = Progress(applied)
    woken: list[int] = []
    task = waiting(p, 3, LIMIT, woken)
    await applied.read_by(1)
    applied.seq = 2
    p.on_commit([])  # not far enough yet
    assert not task.done()
    applied.seq = 3
    p.on_commit([])
    assert await asyncio.wait_for(task, LIMIT) is True
    assert woken == [3]


async def test_a_wait_times_out_as_false() -> None:
    """Nothing applied within the time: False, and the caller goes on."""
    p = Progress(Applied())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await p.wait(1, 0.05) is False
    assert loop.time() - started >= 0.04


async def test_a_seq_applied_without_a_commit_call_counts_at_the_timeout() -> None:
    """At its deadline a waiter reads the applied seq again rather than assume."""
    applied = Applied()
    p = Progress(applied)
    task = asyncio.create_task(p.wait(2, 0.05))
    await applied.read_by(1)
    applied.seq = 2  # applied, but no listener call follows
    assert await asyncio.wait_for(task, LIMIT) is True


async def test_many_waiters_wake_in_seq_order_and_only_those_reached() -> None:
    """One commit wakes every waiter at or below the applied seq, lowest first."""
    applied = Applied()
    p = Progress(applied)
    woken: list[int] = []
    seqs = [5, 1, 7, 3, 4, 2, 9]
    tasks = {seq: waiting(p, seq, LIMIT, woken) for seq in seqs}
    await applied.read_by(len(seqs))
    applied.seq = 4
    p.on_commit([])
    await asyncio.wait_for(asyncio.gather(*(tasks[s] for s in (1, 2, 3, 4))), LIMIT)
    assert woken == [1, 2, 3, 4]
    assert not any(tasks[s].done() for s in (5, 7, 9))
    applied.seq = 8
    p.on_commit([])
    await asyncio.wait_for(asyncio.gather(tasks[5], tasks[7]), LIMIT)
    assert woken == [1, 2, 3, 4, 5, 7] and not tasks[9].done()
    applied.seq = 9
    p.on_commit([])
    assert await asyncio.wait_for(tasks[9], LIMIT) is True
    assert woken == [1, 2, 3, 4, 5, 7, 9]


async def test_waiters_on_the_same_seq_all_wake() -> None:
    """Equal seqs are ordered by arrival, never by comparing their futures."""
    applied = Applied()
    p = Progress(applied)
    woken: list[int] = []
    tasks = [waiting(p, 2, LIMIT, woken) for _ in range(5)]
    await applied.read_by(5)
    applied.seq = 2
    p.on_commit([])
    assert await asyncio.wait_for(asyncio.gather(*tasks), LIMIT) == [True] * 5


async def test_a_timed_out_or_cancelled_waiter_does_not_break_later_ones() -> None:
    """Waiters that gave up stay queued until their turn, then are skipped quietly."""
    applied = Applied()
    p = Progress(applied)
    woken: list[int] = []
    later = waiting(p, 3, LIMIT, woken)
    cancelled = waiting(p, 2, LIMIT, woken)
    await applied.read_by(2)
    assert await p.wait(1, 0.01) is False  # times out, lowest in the queue
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    applied.seq = 3
    p.on_commit([])
    assert await asyncio.wait_for(later, LIMIT) is True
    assert woken == [3]
    assert await p.wait(3, 0.0) is True


async def test_waiters_for_a_seq_never_reached_do_not_pile_up() -> None:
    """A `minSeq` far ahead, asked again and again: each wait times out, and the heap
    keeps at most about as many given-up entries as live ones (plus a small slack)."""
    applied = Applied()
    p = Progress(applied)
    woken: list[int] = []
    alive = waiting(p, 5, LIMIT, woken)
    await applied.read_by(1)
    for _ in range(500):
        assert await p.wait(2**53 - 1, 0.0001) is False
    assert p.queued <= 66
    applied.seq = 5
    p.on_commit([])
    assert await asyncio.wait_for(alive, LIMIT) is True
    assert woken == [5]
