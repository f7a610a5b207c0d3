"""The clock every part of a process reads: the host's, put onto the store's when they disagree.

Replicas on several hosts compare instants each other wrote (due times, leases' ends), so what
matters is that their clocks agree with one another, not which of them is right. The store's
clock is the one every replica can read: :class:`~cronjob.services.clock_check.ClockCheck`
measures how far the host's clock is from it and, once that is past a tolerance, has this clock
follow the store's, so that a replica whose host lost its time synchronisation neither takes
over runs that are still running nor lets its own be taken over. While it follows the store's,
it counts on from the last measurement with the monotonic clock, so that the host's clock being
set (by NTP, once it works again) between two measurements does not move it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from cronjob.ports.clock import Clock


class AlignedClock(Clock):
    """While it follows the store's clock (:meth:`follow`), the store's time as last measured, on
    by ``monotonic`` (seconds) since; ``host``'s time otherwise (:meth:`release`)."""

    def __init__(self, host: Clock, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._host = host
        self._monotonic = monotonic
        #: The store's time at the last :meth:`follow`, and the monotonic clock then; None while
        #: the host's time is told.
        self._store_then: datetime | None = None
        self._monotonic_then = 0.0

    @property
    def host(self) -> Clock:
        """The clock this one corrects (what the offset is measured with)."""
        return self._host

    @property
    def following(self) -> bool:
        """Whether this clock follows the store's rather than the host's."""
        return self._store_then is not None

    @property
    def offset(self) -> timedelta:
        """How far ahead of this clock the host's is now (zero unless :attr:`following`)."""
        return self._host.now() - self.now() if self.following else timedelta(0)

    def now(self) -> datetime:
        if self._store_then is None:
            return self._host.now()
        return self._store_then + timedelta(seconds=self._monotonic() - self._monotonic_then)

    def follow(self, host_ahead_by: timedelta) -> None:
        """From now on, tell the store's time: the host's now less ``host_ahead_by`` (negative: the
        host is behind), counted on by the monotonic clock."""
        self._store_then = self._host.now() - host_ahead_by
        self._monotonic_then = self._monotonic()

    def release(self) -> None:
        """From now on, tell the host's time as it is."""
        self._store_then = None
