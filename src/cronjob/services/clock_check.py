"""Whether this process's clock agrees with the store's.

Every replica compares instants that other replicas wrote (a due time, a lease's end, a version)
with its own clock, so a replica whose clock is off runs work early or late by as much, and one
off by more than a lease's slack (a lease's length less its renewal period: 20 s by default) takes
over, and runs again, work that another replica is still running (or has its own taken over).
The store is the one clock every replica reads (MongoDB's server; SQLite shares the host's clock,
so there is nothing to compare with there): :class:`ClockCheck` measures how far this process's
clock is from it, reports it as a metric, and says so in the log when it is too far.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from cronjob.ports.clock import Clock
from cronjob.ports.metrics import Metrics
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable

log = logging.getLogger(__name__)

#: An offset the log warns of: work runs early or late by as much.
WARN_AFTER = timedelta(seconds=2)
#: How often a running process measures again.
CHECK_EVERY = 60.0


class ClockCheck:
    """Measures this process's clock against the store's (``ScheduleRepository.store_time``).

    ``slack`` is how far two replicas' clocks may be apart before a lease that is being renewed
    looks lapsed to one of them (a lease's length less its renewal period): past it the warning
    says that runs may be taken over while they run.
    """

    def __init__(self, repository: ScheduleRepository, clock: Clock, metrics: Metrics, *,
                 slack: timedelta, warn_after: timedelta = WARN_AFTER) -> None:
        self._repository = repository
        self._clock = clock
        self._metrics = metrics
        self._slack = slack
        self._warn_after = warn_after
        self._was_off = False

    async def offset(self) -> timedelta | None:
        """How far this process's clock is ahead of the store's (negative: behind), or None when
        the store keeps no clock of its own. The store's time is taken as that of the middle of
        the round trip, so the figure is right within half of it."""
        before = self._clock.now()
        store_now = await self._repository.store_time()
        after = self._clock.now()
        if store_now is None:
            return None
        return before + (after - before) / 2 - store_now

    async def check(self) -> timedelta | None:
        """Measure the offset (:meth:`offset`), report it, and log a warning when it is more than
        ``warn_after`` either way (each time it is measured so), and once when it is back within."""
        offset = await self.offset()
        if offset is None:
            return None
        self._metrics.clock_offset(offset.total_seconds())
        off = abs(offset) > self._warn_after
        if off:
            way = "ahead of" if offset > timedelta(0) else "behind"
            risk = (f"; more than the lease slack of {self._slack.total_seconds():g} s: runs may be taken over"
                    " and run again while they run" if abs(offset) > self._slack else "")
            log.warning("this process's clock is %.1f s %s the store's: its work runs that much %s%s; "
                        "fix the host's time synchronisation (NTP)", abs(offset.total_seconds()), way,
                        "early" if offset > timedelta(0) else "late", risk)
        elif self._was_off:
            log.info("this process's clock is back within %.1f s of the store's (%+.3f s)",
                     self._warn_after.total_seconds(), offset.total_seconds())
        self._was_off = off
        return offset


async def keep_checking(check: ClockCheck, stop: asyncio.Event, *, every: float = CHECK_EVERY) -> None:
    """Run ``check`` now and every ``every`` seconds until ``stop`` is set, or at once done for a
    store that keeps no clock of its own; a store that does not answer is skipped until the next
    time (the store's own errors are reported elsewhere)."""
    while not stop.is_set():
        try:
            if await check.check() is None:
                return
        except StoreUnavailable:
            pass
        except Exception:  # a measurement must not stop the process: said once, not tried again
            log.exception("this process's clock could not be compared with the store's")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
