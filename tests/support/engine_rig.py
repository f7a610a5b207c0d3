"""One replica for the engine tests: the shipped in-memory store, the in-process work signal, the real
scheduling service and dispatcher, a recording sender that notes when each message was handed over,
and the engine adapter under test, all on the real clock (no mocks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from cronjob.domain.message import MessageKind, OutboundMessage, SendReceipt
from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.clock import Clock, SystemClock
from cronjob.ports.engine import SchedulerEngine
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import WHATSAPP_TEMPLATE, WHATSAPP_TEXT, ScheduleMessageCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.support.waiting import PROMPTLY

#: The engine adapters every engine contract test runs against.
ENGINES = ["timer", "rocketry"]
#: The default poll interval: short, so that "within one poll interval" is quick to check.
POLL = 0.25


def make_engine(kind: str, dispatcher: Dispatcher, repository: InMemoryScheduleRepository,
                signal: InProcessWorkSignal, clock: Clock, *, poll_interval: float,
                drain_timeout: float) -> SchedulerEngine:
    """The engine adapter named ``kind`` (the Rocketry one needs the ``rocketry`` extra: never skipped)."""
    if kind == "timer":
        return AsyncioTimerEngine(dispatcher, repository, signal, clock, poll_interval=poll_interval,
                                  drain_timeout=drain_timeout, max_error_backoff=0.2)
    from cronjob_adapters.engine.rocketry_engine import RocketryEngine

    return RocketryEngine(dispatcher, repository, signal, clock, poll_interval=poll_interval,
                          drain_timeout=drain_timeout, max_error_backoff=0.2)


class TimedSender(RecordingMessageSender):
    """Records, with each message, when (on the engine's clock) it was handed over; ``gate``
    (when given) holds each send until it is set."""

    def __init__(self, clock: Clock, gate: asyncio.Event | None = None) -> None:
        super().__init__()
        self._clock = clock
        self._gate = gate
        self.sent_at: list[datetime] = []
        self.started = 0

    async def send(self, message: OutboundMessage) -> SendReceipt:
        self.started += 1
        if self._gate is not None:
            await self._gate.wait()
        receipt = await super().send(message)
        self.sent_at.append(self._clock.now())
        return receipt


class Rig:
    """One replica: store, signal, scheduling service, dispatcher and the engine ``kind`` under test."""

    def __init__(self, kind: str, repository: InMemoryScheduleRepository | None = None, *,
                 poll_interval: float = POLL, drain_timeout: float = PROMPTLY,
                 gate: asyncio.Event | None = None) -> None:
        self.clock = SystemClock()
        self.repository = repository or InMemoryScheduleRepository()
        self.sender = TimedSender(self.clock, gate)
        self.signal = InProcessWorkSignal(self.clock)
        self.service = SchedulingService(self.repository, self.clock, self.signal)
        handler = WhatsAppMessageHandler(self.sender)
        self.dispatcher = Dispatcher(self.repository, {WHATSAPP_TEMPLATE: handler, WHATSAPP_TEXT: handler},
                                     self.clock, self.signal, DispatcherSettings(owner="replica-a"))
        self.engine = make_engine(kind, self.dispatcher, self.repository, self.signal, self.clock,
                                  poll_interval=poll_interval, drain_timeout=drain_timeout)
        self.stop = asyncio.Event()

    async def schedule(self, at: datetime, text: str = "Oi") -> str:
        """Schedule a message the way the API does (store, then signal)."""
        command = ScheduleMessageCommand(to="5511999999999", body=text, kind=MessageKind.TEXT, send_at=at,
                                         send_at_text=at.isoformat(), timezone="UTC")
        return (await self.service.schedule_message(command)).schedule.id

    async def status(self, schedule_id: str) -> ScheduleStatus:
        stored = await self.repository.get(schedule_id)
        assert stored is not None
        return stored.status

    @asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """The engine running in a task; on exit, stop it and wait (at most PROMPTLY) for it to return."""
        task = asyncio.create_task(self.engine.run(self.stop))
        try:
            yield task
        finally:
            self.stop.set()
            await asyncio.wait_for(task, timeout=PROMPTLY)
