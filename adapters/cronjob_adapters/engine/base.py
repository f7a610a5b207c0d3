"""What every engine adapter holds: the dispatcher it drives and the loop's heartbeat."""

from __future__ import annotations

from datetime import datetime

from cronjob.ports.clock import Clock
from cronjob.ports.engine import SchedulerEngine
from cronjob.ports.repository import ScheduleRepository
from cronjob.ports.signal import WorkSignal
from cronjob.services.dispatcher import Dispatcher

from cronjob_adapters.engine.collector import QuietCollector


class EngineBase(SchedulerEngine):
    """The constructor and ``last_tick`` shared by the engines (they differ in what wakes them).

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

    @property
    def last_tick(self) -> datetime | None:
        return self._last_tick
