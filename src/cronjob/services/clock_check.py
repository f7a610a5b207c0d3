"""Whether this process's clock agrees with the store's.

Every replica compares instants that other replicas wrote (a due time, a lease's end, a version)
with its own clock, so a replica whose clock is off runs work early or late by as much, and one
off by more than a lease's slack (a lease's length less its renewal period: 20 s by default) takes
over, and runs again, work that another replica is still running (or has its own taken over).
The store is the one clock every replica reads (MongoDB's server; SQLite shares the host's clock,
so there is nothing to compare with there): :class:`ClockCheck` measures how far this process's
clock is from it, reports it as a metric, says so in the log when it is too far, and then has the
process's clock (an :class:`~cronjob.services.aligned_clock.AlignedClock`) follow the store's, so
that replicas agree with one another however far their hosts' clocks drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from cronjob.ports.metrics import Metrics
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable
from cronjob.services.aligned_clock import AlignedClock

log = logging.getLogger(__name__)

#: An offset the log warns of, and past which the process's clock follows the store's.
WARN_AFTER = timedelta(seconds=2)
#: The longest round trip a measurement may take to be followed: the store's time is known only
#: to within half of it.
PRECISE_WITHIN = timedelta(seconds=1)
#: How often a running process measures again.
CHECK_EVERY = 60.0
#: How long the first measurement, made before the process claims any work, may take.
FIRST_CHECK_TIMEOUT = 5.0


class ClockCheck:
    """Measures the host's clock against the store's (``ScheduleRepository.store_time``) and has
    ``aligned`` (the clock the rest of the process reads, over the host's) follow the store's
    while they are more than ``warn_after`` apart.

    Once followed, the store's clock is kept until the host's is back within half of
    ``warn_after`` (so that an offset hovering about the limit does not move the time back and
    forth). A measurement whose round trip took longer than :data:`PRECISE_WITHIN` is reported
    but changes nothing. ``slack`` is how far two replicas' clocks may be apart before a lease
    that is being renewed looks lapsed to one of them (a lease's length less its renewal period):
    the warning names the risk when a clock past it cannot be followed.
    """

    def __init__(self, repository: ScheduleRepository, aligned: AlignedClock, metrics: Metrics, *,
                 slack: timedelta, warn_after: timedelta = WARN_AFTER) -> None:
        self._repository = repository
        self._aligned = aligned
        self._host = aligned.host
        self._metrics = metrics
        self._slack = slack
        self._warn_after = warn_after
        self._was_off = False

    async def measure(self) -> tuple[timedelta, timedelta] | None:
        """How far the host's clock is ahead of the store's, and the round trip it was measured
        in; None when the store keeps no clock of its own. The store's time is taken as that of
        the middle of the round trip, so the offset is right within half of it."""
        before = self._host.now()
        store_now = await self._repository.store_time()
        after = self._host.now()
        if store_now is None:
            return None
        return before + (after - before) / 2 - store_now, after - before

    async def check(self) -> timedelta | None:
        """Measure the offset (:meth:`measure`), report it, follow the store's clock or the host's
        again as the class says, and log a warning when it is more than ``warn_after`` either way
        (each time it is measured so), and once when it is back within."""
        measured = await self.measure()
        if measured is None:
            return None
        offset, round_trip = measured
        self._metrics.clock_offset(offset.total_seconds())
        precise = round_trip <= PRECISE_WITHIN
        if precise:
            if abs(offset) > self._warn_after or (self._aligned.following and abs(offset) > self._warn_after / 2):
                self._aligned.follow(offset)
            else:
                self._aligned.release()
        off = abs(offset) > self._warn_after
        if off:
            way = "ahead of" if offset > timedelta(0) else "behind"
            if self._aligned.following:
                what = ("this process keeps the store's time instead, so that its work runs neither early nor "
                        "late against the other replicas' (if it is the store's clock that is off, every "
                        "replica keeps it, and work runs that much early or late)")
            else:
                what = (f"too slow to measure ({round_trip.total_seconds():.1f} s) to be followed: its work runs "
                        f"that much {'early' if offset > timedelta(0) else 'late'}")
                if abs(offset) > self._slack:
                    what += (f"; more than the lease slack of {self._slack.total_seconds():g} s: runs may be taken "
                             "over and run again while they run")
            log.warning("this process's clock is %.1f s %s the store's: %s; fix the host's time "
                        "synchronisation (NTP)", abs(offset.total_seconds()), way, what)
        elif self._was_off:
            log.info("this process's clock is back within %.1f s of the store's (%+.3f s)%s",
                     self._warn_after.total_seconds(), offset.total_seconds(),
                     "" if self._aligned.following else ": it keeps the host's time again")
        self._was_off = off
        return offset


async def check_once(check: ClockCheck) -> bool:
    """One :meth:`ClockCheck.check`, whatever happens: False when there is nothing more to check
    (the store keeps no clock of its own, or the measurement failed in a way said once in the
    log), True otherwise (also when the store did not answer, or not in time: measured again
    later)."""
    try:
        return await check.check() is not None
    except StoreUnavailable:
        return True
    except Exception:  # a measurement must not stop the process: said once, not tried again
        log.exception("this process's clock could not be compared with the store's")
        return False


async def keep_checking(check: ClockCheck, stop: asyncio.Event, *, every: float = CHECK_EVERY,
                        now: bool = True) -> None:
    """Run ``check`` (:func:`check_once`) now (unless ``now`` is False: after ``every`` seconds)
    and every ``every`` seconds until ``stop`` is set, or until there is nothing more to check."""
    async def pause() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)

    if not now:
        await pause()
    while not stop.is_set():
        if not await check_once(check):
            return
        await pause()
