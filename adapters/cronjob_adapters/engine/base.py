"""What every engine adapter holds: the dispatcher it drives, the loop's heartbeat, and how it
plans its next look at the store once a tick has claimed what it could."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from cronjob.ports.clock import Clock
from cronjob.ports.engine import SchedulerEngine
from cronjob.ports.repository import ScheduleRepository
from cronjob.ports.signal import WorkSignal
from cronjob.services.dispatcher import Dispatcher

from cronjob_adapters.engine.collector import QuietCollector


@dataclass(frozen=True, slots=True)
class NextLook:
    """When a tick's engine should claim again: ``at`` (``None``: at the next poll, or when a
    finishing run or new work signals), and whether nothing is due before then (``idle``: a
    quiet moment, e.g. for a full garbage collection)."""

    at: datetime | None
    idle: bool

    @property
    def due_now(self) -> bool:
        """Work is due but the claim did not get it (another replica won it, or it fell due
        just after the claim looked)."""
        return self.at is not None and not self.idle


class EngineBase(SchedulerEngine):
    """The constructor, ``last_tick`` and ``stop_waiting`` shared by the engines (they differ in
    what wakes them).

    ``collector``, when given, is told before each sleep how long the loop expects to be idle
    (see :class:`QuietCollector`); the engine does not install it.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        repository: ScheduleRepository,
        signal: WorkSignal,
        clock: Clock,
        *,
        poll_interval: float = 1.0,
        drain_timeout: float = 20.0,
        max_error_backoff: float = 10.0,
        collector: QuietCollector | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._repository = repository
        self._signal = signal
        self._clock = clock
        self._poll_interval = poll_interval
        self._drain_timeout = drain_timeout
        self._max_error_backoff = max_error_backoff
        self._last_tick: datetime | None = None
        #: Told how long the loop is about to sleep, so full garbage collections run then.
        self._collector = collector
        #: The last planned look found nothing due before it (set by ``_next_look``).
        self._idle = False

    @property
    def last_tick(self) -> datetime | None:
        return self._last_tick

    def stop_waiting(self) -> int:
        return self._dispatcher.stop_waiting()

    async def _next_look(self) -> NextLook:
        """After the claims of a tick: when to look again, the same for every engine.

        At capacity, or with due work only of types at their limit, a finishing run signals;
        otherwise the earliest due time the store knows of (one index read), or the poll.
        """
        look = await self._plan_look()
        self._idle = look.idle
        return look

    async def _plan_look(self) -> NextLook:
        dispatcher = self._dispatcher
        if dispatcher.at_capacity:
            return NextLook(None, idle=False)
        next_due = await self._repository.next_due_at()
        if next_due is None:
            return NextLook(None, idle=True)
        now = self._clock.now()
        if next_due > now:
            return NextLook(next_due, idle=True)
        if dispatcher.types_at_limit:
            return NextLook(None, idle=False)
        return NextLook(now, idle=False)

    async def _collect_if_quiet(self, seconds: float) -> None:
        """Before a sleep of ``seconds``: let the collector run a full pass if it is owed one and
        the last look found nothing due meanwhile (a wait for a free slot is not quiet)."""
        if self._collector is not None and self._collector.should_collect(seconds if self._idle else 0.0):
            await asyncio.sleep(0)  # the runs just claimed begin first
            self._collector.collect()
