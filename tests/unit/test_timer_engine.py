"""AsyncioTimerEngine end to end in memory, on the real clock (loose timing bounds only).

What every engine must do (stop, drain, a failing store, ...) is in
``tests/contract/test_scheduler_engine.py``; these are the timer's own: its wake-ups.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.message import MessageKind, OutboundMessage, SendReceipt
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.clock import Clock, SystemClock
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.scheduling import (
    WHATSAPP_TEMPLATE,
    WHATSAPP_TEXT,
    ScheduleMessageCommand,
    SchedulingService,
)
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal

#: Generous bound for "promptly": far below the 30 s poll interval, far above any scheduling noise.
PROMPTLY = 5.0


class TimedSender(RecordingMessageSender):
    """Records, with each message, when (on the engine's clock) it was handed over."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self.sent_at: list[datetime] = []

    async def send(self, message: OutboundMessage) -> SendReceipt:
        receipt = await super().send(message)
        self.sent_at.append(self._clock.now())
        return receipt


class Rig:
    def __init__(self, repository: InMemoryScheduleRepository | None = None, *, poll_interval: float = 30.0,
                 max_error_backoff: float = 0.2) -> None:
        self.clock = SystemClock()
        self.repository = repository or InMemoryScheduleRepository()
        self.sender = TimedSender(self.clock)
        self.signal = InProcessWorkSignal(self.clock)
        self.service = SchedulingService(self.repository, self.clock, self.signal)
        handler = WhatsAppMessageHandler(self.sender)
        self.dispatcher = Dispatcher(self.repository, {WHATSAPP_TEMPLATE: handler, WHATSAPP_TEXT: handler},
                                     self.clock, self.signal, DispatcherSettings(owner="replica-a"))
        self.engine = AsyncioTimerEngine(self.dispatcher, self.repository, self.signal, self.clock,
                                         poll_interval=poll_interval, drain_timeout=2.0,
                                         max_error_backoff=max_error_backoff)
        self.stop = asyncio.Event()

    async def schedule(self, at: datetime, text: str = "Oi") -> str:
        command = ScheduleMessageCommand(to="5511999999999", body=text, kind=MessageKind.TEXT, send_at=at,
                                         send_at_text=at.isoformat(), timezone="UTC")
        return (await self.service.schedule_message(command)).schedule.id

    @asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        task = asyncio.create_task(self.engine.run(self.stop))
        try:
            yield task
        finally:
            self.stop.set()
            await asyncio.wait_for(task, timeout=PROMPTLY)


async def until(predicate: Callable[[], bool], timeout: float = PROMPTLY) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_a_message_is_sent_after_it_is_due_and_not_before() -> None:
    rig = Rig()
    due = rig.clock.now() + timedelta(seconds=0.2)
    schedule_id = await rig.schedule(due, "na hora")
    async with rig.running():
        await asyncio.sleep(0.05)
        assert rig.sender.sent == []  # well before it is due
        await until(lambda: len(rig.sender.sent) == 1)
        assert rig.sender.sent[0].body == "na hora"
        assert rig.sender.sent_at[0] >= due, "sent before it was due"
        assert rig.sender.sent_at[0] - due < timedelta(seconds=PROMPTLY)
        stored = await rig.repository.get(schedule_id)
        assert stored is not None and stored.status.value == "succeeded"
        await asyncio.sleep(0.1)
        assert len(rig.sender.sent) == 1  # once
    assert rig.engine.last_tick is not None


async def test_work_added_while_the_engine_sleeps_is_picked_up_thanks_to_the_signal() -> None:
    rig = Rig(poll_interval=30.0)
    async with rig.running():
        await until(lambda: rig.engine.last_tick is not None)
        await asyncio.sleep(0.1)  # the engine now sleeps for up to its 30 s poll interval
        started = rig.clock.now()
        await rig.schedule(started, "agora")
        await until(lambda: len(rig.sender.sent) == 1, timeout=PROMPTLY)
        assert rig.sender.sent_at[0] - started < timedelta(seconds=PROMPTLY)


async def test_work_due_later_wakes_the_engine_at_its_due_time() -> None:
    rig = Rig(poll_interval=30.0)
    async with rig.running():
        await until(lambda: rig.engine.last_tick is not None)
        due = rig.clock.now() + timedelta(seconds=0.3)
        await rig.schedule(due, "depois")
        await until(lambda: len(rig.sender.sent) == 1)
        assert rig.sender.sent_at[0] >= due


class LosesFirstClaims(InMemoryScheduleRepository):
    """Answers the first ``losses`` claims with nothing, as when another replica won the race,
    while ``next_due_at`` still reports the work as due."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    async def claim_due(self, **kwargs: Any) -> list[Schedule]:  # type: ignore[override]
        if self.losses > 0:
            self.losses -= 1
            return []
        return await super().claim_due(**kwargs)


async def test_due_work_lost_to_another_claim_is_looked_at_again_without_errors(
        caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(LosesFirstClaims(losses=3))
    schedule_id = await rig.schedule(rig.clock.now())
    async with rig.running():
        await until(lambda: len(rig.sender.sent_at) == 1)
    stored = await rig.repository.get(schedule_id)
    assert stored is not None and stored.status is ScheduleStatus.SUCCEEDED
    assert not [r for r in caplog.records if r.name == "cronjob_adapters.engine.timer"]  # no loop error
