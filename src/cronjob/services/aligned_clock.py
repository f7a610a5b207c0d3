"""The clock every part of a process reads: the host's, put onto the store's when they disagree.

Replicas on several hosts compare instants each other wrote (due times, leases' ends), so what
matters is that their clocks agree with one another, not which of them is right. The store's
clock is the one every replica can read: :class:`~cronjob.services.clock_check.ClockCheck`
measures how far the host's clock is from it and, once that is past a tolerance, has this clock
follow the store's, so that a replica whose host lost its time synchronisation neither takes
over runs that are still running nor lets its own be taken over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cronjob.ports.clock import Clock


class AlignedClock(Clock):
    """``host``'s time less the offset it was last found to be ahead of the store's by, while it
    follows the store's (:meth:`follow`); ``host``'s time as it is otherwise (:meth:`release`)."""

    def __init__(self, host: Clock) -> None:
        self._host = host
        self._offset = timedelta(0)
        self._following = False

    @property
    def host(self) -> Clock:
        """The clock this one corrects (what the offset is measured with)."""
        return self._host

    @property
    def following(self) -> bool:
        """Whether this clock follows the store's rather than the host's."""
        return self._following

    @property
    def offset(self) -> timedelta:
        """How far ahead of this clock the host's is (zero unless :attr:`following`)."""
        return self._offset

    def now(self) -> datetime:
        return self._host.now() - self._offset

    def follow(self, host_ahead_by: timedelta) -> None:
        """From now on, tell the host's time less ``host_ahead_by`` (negative: the host is behind)."""
        self._offset = host_ahead_by
        self._following = True

    def release(self) -> None:
        """From now on, tell the host's time as it is."""
        self._offset = timedelta(0)
        self._following = False
