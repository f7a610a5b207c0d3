"""The driving port of the scheduler: what decides when the dispatcher looks for due work."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from datetime import datetime


class SchedulerEngine(ABC):
    """Wakes the dispatcher when work is due.

    Contract: ``run(stop)`` keeps calling ``Dispatcher.dispatch_due`` so that every schedule is
    claimed no later than about one poll interval after it is due (sooner when a WorkSignal
    reports it), survives store outages (logs, backs off, carries on), and when ``stop`` is set
    stops claiming, lets runs in progress finish within the drain bound and returns;
    ``stop_waiting()`` (an operator's second SIGTERM) ends that wait at once.
    ``last_tick`` is the time of the loop's latest iteration (for liveness probes).
    """

    @abstractmethod
    async def run(self, stop: asyncio.Event) -> None:
        """Drive the dispatcher until ``stop`` is set."""

    @abstractmethod
    def stop_waiting(self) -> int:
        """Once stopping (or before): do not wait out the drain bound, but cancel the runs in
        progress now, as at its end (their leases given back). Returns how many there are."""

    @property
    @abstractmethod
    def last_tick(self) -> datetime | None:
        """When the loop last went round, or None before it started."""
