"""Health: liveness (is the process, and its scheduler loop, making progress) and readiness
(can it do its work: store reachable, indexes created, loop alive)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cronjob.ports.clock import Clock, SystemClock
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Whether the store answered the health check, and its error when it did not."""

    store_ok: bool
    store_error: str | None = None
    #: The store gave no answer within the ping timeout (``store_error`` is ours, not the store's).
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe's verdict and the check behind it: ``checks`` maps a name to "ok" or why not."""

    ok: bool
    checks: dict[str, str] = field(default_factory=dict)


class HealthService:
    """Answers the health endpoints.

    The runtime tells it when the store is initialised (``mark_initialized``) and, in a process
    that runs the scheduler, how to read the loop's heartbeat (``watch_loop``). A loop whose last
    tick is older than ``stall_after`` is stuck: liveness fails, so the orchestrator restarts it.
    """

    def __init__(self, repository: ScheduleRepository, clock: Clock | None = None, *,
                 stall_after: timedelta = timedelta(seconds=30), ping_timeout: float = 2.0) -> None:
        self._repository = repository
        self._clock = clock or SystemClock()
        self._stall_after = stall_after
        self._ping_timeout = ping_timeout
        self._initialized = False
        self._heartbeat: Callable[[], datetime | None] | None = None
        self._watching_since: datetime | None = None
        self._last_store_error: str | None = None

    def mark_initialized(self) -> None:
        """The store's tables and indexes exist."""
        self._initialized = True

    @property
    def initialized(self) -> bool:
        """Whether the store's tables and indexes exist (until then the API refuses work: 503)."""
        return self._initialized

    def watch_loop(self, heartbeat: Callable[[], datetime | None]) -> None:
        """Judge liveness by ``heartbeat()``, the time of the scheduler loop's latest tick."""
        self._heartbeat = heartbeat
        self._watching_since = self._clock.now()

    async def check(self) -> HealthReport:
        """Ping the store, waiting at most ``ping_timeout`` seconds (a probe must answer before
        its own timeout, while a driver may wait longer for a server); never raises (the seed's
        ``/healthcheck``)."""
        try:
            async with asyncio.timeout(self._ping_timeout):
                await self._repository.ping()
        except StoreUnavailable as exc:
            return HealthReport(store_ok=False, store_error=str(exc) or type(exc).__name__)
        except TimeoutError:
            return HealthReport(store_ok=False, store_error=f"no answer within {self._ping_timeout:g} s",
                                timed_out=True)
        return HealthReport(store_ok=True)

    def live(self) -> Probe:
        """The process answers, and its scheduler loop (if it runs one) is not stuck."""
        checks = {"process": "ok"}
        if self._heartbeat is not None:
            checks["scheduler_loop"] = self._loop_state()
        return Probe(all(v == "ok" for v in checks.values()), checks)

    async def ready(self) -> Probe:
        """Liveness, plus a store that answers and has been initialised.

        The probe is open (an Ingress in front of the API makes it public), so a store's own
        error, which names its hosts or its file, goes to the log (once each time it changes)
        rather than into the verdict: that says only "unavailable", or that no answer came."""
        checks = dict(self.live().checks)
        report = await self.check()
        if report.store_ok:
            self._last_store_error = None  # the next outage is logged, whatever it says
        checks["store"] = "ok" if report.store_ok else self._unavailable(report)
        checks["indexes"] = "ok" if self._initialized else "not created yet"
        return Probe(all(v == "ok" for v in checks.values()), checks)

    def _unavailable(self, report: HealthReport) -> str:
        """The readiness check's words for a store that failed ``report``, its error logged."""
        if report.store_error != self._last_store_error:
            self._last_store_error = report.store_error
            log.warning("readiness: the store is unavailable: %s", report.store_error)
        if report.timed_out:  # our own words: nothing of the store's
            return f"unavailable: {report.store_error}"
        return "unavailable (see the log)"

    def _loop_state(self) -> str:
        assert self._heartbeat is not None
        now = self._clock.now()
        last = self._heartbeat() or self._watching_since or now
        stalled = now - last
        if stalled > self._stall_after:
            return f"stuck: no tick for {int(stalled.total_seconds())} s"
        return "ok"
