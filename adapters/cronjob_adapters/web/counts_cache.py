"""The schedule counts behind ``GET /v1/stats`` and ``/metrics``, read from the store at most once
per ``max_age``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import StoreUnavailable

#: How many schedules there are per (status, task type).
Counts = dict[tuple[ScheduleStatus, str], int]


class CountsCache:
    """Answers every caller from one read of the store for ``max_age`` seconds.

    Counting schedules by status and type reads the whole store (a group-by over every
    schedule). A dashboard refreshes every few seconds in each open tab, and Prometheus scrapes
    every replica: uncached, each would cost the store one such read; cached, a process makes at
    most one per ``max_age``. Callers that ask while a read is under way wait for it rather than
    start their own. A failed read is not kept: the next caller tries again. A read that gets no
    answer within ``timeout`` seconds (a stalled connection) fails as :class:`StoreUnavailable`,
    so that no caller, nor those queued behind it, waits longer.
    """

    def __init__(self, read: Callable[[], Awaitable[Counts]], max_age: float, *, timeout: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._max_age = max_age
        self._timeout = timeout
        self._monotonic = monotonic
        self._kept: tuple[float, datetime, Counts] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[Counts, datetime]:
        """The counts and when (UTC) they were read."""
        async with self._lock:
            kept = self._kept
            if kept is None or self._monotonic() - kept[0] >= self._max_age:
                try:
                    async with asyncio.timeout(self._timeout):
                        value = await self._read()
                except TimeoutError:
                    raise StoreUnavailable(f"the store did not answer within {self._timeout:g} s") from None
                kept = self._kept = (self._monotonic(), datetime.now(UTC), value)
            return kept[2], kept[1]
