"""The schedule counts behind ``GET /v1/stats`` and ``/metrics``: the last read of the store,
read again in the background, less often the longer a read takes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import COUNTS_TIME_LIMIT_S, StoreUnavailable

#: How many schedules there are per (status, task type).
Counts = dict[tuple[ScheduleStatus, str], int]

#: A read is not made again sooner than this many times the time the last one took: the counts
#: of a large store (MongoDB reads an index of every schedule) cost it a tenth of a read's time
#: at most, per process, however often they are asked for.
READ_INTERVAL_FACTOR = 10
#: The longest wait (seconds) for a read after one that ran into its time limit (see CountsCache).
LONGEST_FAILED_WAIT = 300.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Read:
    """One read that answered: the counts, when (UTC) and how long (seconds) it took, and when
    it ended (on the cache's monotonic clock)."""

    counts: Counts
    as_of: datetime
    took: float
    ended: float


@dataclass(frozen=True, slots=True)
class _Failure:
    """The last read, which failed: why, and when (monotonic) the next may start."""

    why: str
    retry_at: float


class CountsCache:
    """Answers every caller from the last read of the store, and reads again in the background.

    Counting schedules by status and type reads the whole store on MongoDB (an index of every
    schedule), which takes longer the more it holds. A dashboard refreshes every few seconds in
    each open tab, and Prometheus scrapes every replica: each is answered from the last read
    (with when it was made, ``as_of``), and no caller waits for a new one once there is one.
    A read is made again when a caller comes at least ``max_age`` seconds, and at least
    :data:`READ_INTERVAL_FACTOR` times the last read's duration, after the last read ended, one
    at a time per process; it may take up to ``read_limit`` seconds (a store bounds its own work
    to :data:`COUNTS_TIME_LIMIT_S`), whatever its callers wait. The caller that starts it waits
    ``fresh_wait`` seconds at most for it: a small store's counts (SQLite keeps them) are
    current at every refresh of a dashboard, a large one's are the last read's.

    Until a first read has answered, and after a read failed (a store that is down must say so,
    not show the counts from before), callers wait for the read under way, at most ``timeout``
    seconds: one without an answer by then fails as :class:`StoreUnavailable` (a 503 with
    ``Retry-After``, or a scrape without counts), and the read goes on for the next caller. A
    failed read is not kept: the next caller starts another. Except after a read that failed
    having run at least half of ``read_limit`` (a count that ran into its time limit: a store too
    big to count within it, which would otherwise be kept counting all the time, per process):
    the next is made no sooner than :data:`READ_INTERVAL_FACTOR` times its duration after it, and
    :data:`LONGEST_FAILED_WAIT` at most, callers meanwhile failing at once as
    :class:`StoreUnavailable`. A read that failed sooner (a store that is down or unreachable,
    which does no work for it) is made again by the next caller, so that a store that comes back
    shows at once.
    """

    def __init__(self, read: Callable[[], Awaitable[Counts]], max_age: float, *, timeout: float = 2.0,
                 read_limit: float = COUNTS_TIME_LIMIT_S + 5.0, fresh_wait: float = 0.1,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._max_age = max_age
        self._timeout = timeout
        self._fresh_wait = fresh_wait
        self._read_limit = read_limit
        self._monotonic = monotonic
        self._last: _Read | None = None
        self._failed: _Failure | None = None
        self._started = 0.0  # when the read under way began (monotonic)
        self._reading: asyncio.Task[_Read] | None = None

    async def get(self) -> tuple[Counts, datetime]:
        """The counts and when (UTC) they were read."""
        last, failed = self._last, self._failed
        if failed is not None and self._reading is None and self._monotonic() < failed.retry_at:
            raise StoreUnavailable(f"the counts could not be read ({failed.why}); read again in "
                                   f"{failed.retry_at - self._monotonic():.0f} s")
        if last is not None and failed is None:
            if self._reading is not None or self._monotonic() - last.ended < self._interval(last):
                return last.counts, last.as_of
            try:
                done = await self._wait(self._start(), self._fresh_wait)
            except Exception:  # noqa: BLE001 - kept by _ended: the next caller waits for a new read
                done = None
            return (last.counts, last.as_of) if done is None else (done.counts, done.as_of)
        done = await self._wait(self._reading or self._start(), self._timeout)
        if done is None:
            raise StoreUnavailable(f"the store did not answer within {self._timeout:g} s")
        return done.counts, done.as_of

    @staticmethod
    async def _wait(reading: asyncio.Task[_Read], seconds: float) -> _Read | None:
        """What ``reading`` read, if it ends within ``seconds`` (its error if it fails); None
        if not, the read going on."""
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(reading)
        except TimeoutError:
            return None

    def _interval(self, last: _Read) -> float:
        """How long after ``last`` ended the counts are read again."""
        return max(self._max_age, READ_INTERVAL_FACTOR * last.took)

    def _start(self) -> asyncio.Task[_Read]:
        """Start a read (none is under way); it records itself when it ends."""
        self._started = self._monotonic()
        reading = self._reading = asyncio.create_task(self._timed_read(), name="counts")
        reading.add_done_callback(self._ended)
        return reading

    async def _timed_read(self) -> _Read:
        try:
            async with asyncio.timeout(self._read_limit):
                counts = await self._read()
        except TimeoutError:
            raise StoreUnavailable(f"the counts were not read within {self._read_limit:g} s") from None
        ended = self._monotonic()
        return _Read(counts, datetime.now(UTC), ended - self._started, ended)

    def _ended(self, reading: asyncio.Task[_Read]) -> None:
        self._reading = None
        if reading.cancelled():
            return
        if (error := reading.exception()) is not None:
            ended = self._monotonic()
            took = ended - self._started
            # Only a count that ran into its time limit cost the store that time: an outage (a
            # server not found within its selection timeout, a refused connection) cost it
            # nothing, and is asked again by the next caller, who waits for it.
            ran_into_limit = took >= self._read_limit / 2
            wait = min(READ_INTERVAL_FACTOR * took, LONGEST_FAILED_WAIT) if ran_into_limit else 0.0
            self._failed = _Failure(f"{type(error).__name__}: {error}", ended + wait)
            log.warning("the schedule counts could not be read (%s)", self._failed.why)
            return
        self._last, self._failed = reading.result(), None
