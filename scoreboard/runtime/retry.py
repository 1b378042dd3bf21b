"""Pacing retries: capped exponential backoff with full jitter, the one schedule of every
reconnect and retry loop in the service.

After the n-th failure in a row (n = 0, 1, …) the wait is drawn uniformly from
[0, ceiling), where ceiling = min(cap, base · factor^n); `reset()` after a success
starts the schedule again at `base`.

Full jitter rather than decorrelated jitter, because:

- The peers we retry against fail for everyone at once (a writer taking over, NATS or
  PostgreSQL restarting): full jitter spreads the processes' attempts evenly over the
  whole window instead of letting them arrive together.
- Each draw depends only on the failure count, not on the previous draw, so the
  ceilings are a fixed schedule: no wait is ever longer than the un-jittered backoff a
  loop was configured with, a deadline is easy to reason about, and a reset is just the
  count going back to zero. Decorrelated jitter grows from its own last draw and can
  wait up to three times longer than the previous wait.

The clock and the random source are injected, so the schedule is deterministic in
tests (`random=lambda: 1.0` gives exactly the ceilings). `wait` is cancellable like any
await and also ends early when its `stop` event is set, so an owner can always stop a
loop that is backing off.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable

Clock = Callable[[], float]
Random = Callable[[], float]  # uniform in [0, 1)


class Backoff:
    """The waits between attempts of one retry loop."""

    __slots__ = ("_ceiling", "base", "cap", "clock", "factor", "failures", "random")

    def __init__(self, base: float, cap: float, *, factor: float = 2.0,
                 clock: Clock = time.monotonic, random: Random = _random.random) -> None:
        if base <= 0 or cap < 0 or factor < 1:
            raise ValueError(f"a backoff needs base > 0, cap >= 0 and factor >= 1 "
                             f"(got {base!r}, {cap!r}, {factor!r})")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.clock = clock
        self.random = random
        self.failures = 0  # in a row, since the last reset
        self._ceiling = min(cap, base)

    @property
    def ceiling(self) -> float:
        """The longest the next wait can be."""
        return self._ceiling

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits from `base` again."""
        self.failures = 0
        self._ceiling = min(self.cap, self.base)

    def next_delay(self) -> float:
        """Count a failure and draw the wait before the next attempt."""
        delay = self._ceiling * self.random()
        self.failures += 1
        # Grown by multiplication and clamped, never base · factor^n: no overflow,
        # however long the outage.
        self._ceiling = min(self.cap, self._ceiling * self.factor)
        return delay

    def next_pause(self, until: float | None = None) -> float:
        """`next_delay`, cut short so that it ends by `until` (on `clock`), if given:
        a loop with a deadline then makes its last attempt on the deadline."""
        delay = self.next_delay()
        if until is None:
            return delay
        return min(delay, max(0.0, until - self.clock()))

    async def wait(self, *, until: float | None = None,
                   stop: asyncio.Event | None = None) -> bool:
        """Wait `next_pause(until)`; True when `stop` is set (before or meanwhile), so the
        loop should end instead of trying again."""
        return await wait_or_stop(self.next_pause(until), stop)


async def wait_or_stop(seconds: float, stop: asyncio.Event | None) -> bool:
    """Wait `seconds`, or less if `stop` is set; True when it was set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
