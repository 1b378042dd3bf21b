"""The retry helper's schedule, with its clock and random source fixed."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from scoreboard.runtime.retry import Backoff, wait_or_stop

TOP = 1.0  # a random source that always draws the ceiling


def draws(values: list[float]) -> itertools.cycle[float]:
    return itertools.cycle(values)


@pytest.mark.parametrize(("base", "cap", "factor", "randoms", "expected"), [
    # the ceilings: the loops' old fixed schedules
    (0.05, 0.5, 2.0, [TOP], [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]),
    (0.1, 5.0, 2.0, [TOP], [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]),
    (1.0, 60.0, 2.0, [TOP], [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
    # full jitter: uniform below each ceiling
    (0.1, 2.0, 2.0, [0.5], [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]),
    (0.1, 2.0, 2.0, [0.0, 0.25], [0.0, 0.05, 0.0, 0.2, 0.0, 0.5]),
    # a cap below the base holds every wait under the cap
    (1.0, 0.25, 2.0, [TOP], [0.25, 0.25, 0.25]),
    # factor 1: a fixed interval, jittered
    (0.5, 10.0, 1.0, [TOP, 0.5], [0.5, 0.25, 0.5]),
])
def test_schedule(base: float, cap: float, factor: float, randoms: list[float],
                  expected: list[float]) -> None:
    b = Backoff(base, cap, factor=factor, random=draws(randoms).__next__)
    got = [b.next_delay() for _ in expected]
    assert got == pytest.approx(expected)
    assert b.failures == len(expected)


def test_reset_starts_the_schedule_again() -> None:
    b = Backoff(0.1, 5.0, random=lambda: TOP)
    for _ in range(5):
        b.next_delay()
    assert b.ceiling == pytest.approx(3.2)
    b.reset()
    assert (b.failures, b.ceiling) == (0, pytest.approx(0.1))
    assert [b.next_delay(), b.next_delay()] == pytest.approx([0.1, 0.2])


def test_a_long_outage_never_overflows() -> None:
    b = Backoff(0.1, 5.0, random=lambda: TOP)
    for _ in range(5_000):
        b.next_delay()
    assert b.next_delay() == 5.0


@pytest.mark.parametrize(("now", "until", "expected"), [
    (10.0, None, 0.8),  # no deadline
    (10.0, 20.0, 0.8),  # far from it
    (10.0, 10.3, 0.3),  # the last wait ends on the deadline
    (10.0, 10.0, 0.0),  # at it
    (10.0, 9.0, 0.0),  # past it: try at once, never a negative wait
])
def test_pause_ends_by_the_deadline(now: float, until: float | None,
                                    expected: float) -> None:
    b = Backoff(0.8, 5.0, clock=lambda: now, random=lambda: TOP)
    assert b.next_pause(until) == pytest.approx(expected)
    assert b.failures == 1  # a cut-short pause still counts the failure


@pytest.mark.parametrize(("base", "cap", "factor"), [
    (0.0, 1.0, 2.0), (-1.0, 1.0, 2.0), (0.1, -1.0, 2.0), (0.1, 1.0, 0.5),
])
def test_nonsense_is_refused(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError, match="base > 0"):
        Backoff(base, cap, factor=factor)


def test_a_stop_event_ends_a_long_wait() -> None:
    async def main() -> tuple[bool, bool]:
        stop = asyncio.Event()
        b = Backoff(3600.0, 3600.0, random=lambda: TOP)
        waiting = asyncio.ensure_future(b.wait(stop=stop))
        await asyncio.sleep(0)  # let it start waiting
        stop.set()
        stopped = await asyncio.wait_for(waiting, 5.0)  # a net, never reached
        already = await asyncio.wait_for(b.wait(stop=stop), 5.0)
        return stopped, already

    assert asyncio.run(main()) == (True, True)


def test_a_wait_that_runs_out_says_so() -> None:
    async def main() -> tuple[bool, bool]:
        stop = asyncio.Event()
        b = Backoff(0.001, 0.001, random=lambda: TOP)
        return await b.wait(stop=stop), await wait_or_stop(0.0, None)

    assert asyncio.run(main()) == (False, False)


def test_a_wait_is_cancellable() -> None:
    async def main() -> bool:
        b = Backoff(3600.0, 3600.0, random=lambda: TOP)
        waiting = asyncio.ensure_future(b.wait())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.wait({waiting}, timeout=5.0)
        return waiting.cancelled()

    assert asyncio.run(main())
