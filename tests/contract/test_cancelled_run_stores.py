"""A recurring schedule cancelled through the scheduling service while the dispatcher runs it,
on every store: the run's record is kept by the cancelled schedule once the run ends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.commands import WHATSAPP_TEXT, CreateScheduleCommand
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.contract.conftest import StoreFactory
from tests.support.builders import T0
from tests.support.clock import FixedClock
from tests.support.waiting import until


class Gated(TaskHandler):
    """Sends once the test opens ``gate``."""

    task_type = WHATSAPP_TEXT

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = 0

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.started += 1
        await self.gate.wait()
        return TaskOutcome(provider_message_id="wamid.report")


async def test_a_run_that_ends_after_its_schedule_was_cancelled_is_recorded_by_every_store(
        store: StoreFactory) -> None:
    api_store, scheduler_store = await store(), await store()  # an API replica and a scheduler
    clock = FixedClock(T0 - timedelta(minutes=5))
    service = SchedulingService(api_store, clock, InProcessWorkSignal(clock))
    handler = Gated()
    dispatcher = Dispatcher(scheduler_store, {WHATSAPP_TEXT: handler}, clock, InProcessWorkSignal(clock),
                            DispatcherSettings(owner="scheduler", save_retry=(0.01, 0.05)))
    created = (await service.create(CreateScheduleCommand(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi", "params": []},
        schedule=f"every 1 hours from {T0.isoformat()}", timezone="UTC"))).schedule
    clock.set(T0)
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: handler.started == 1)
    clock.advance(timedelta(seconds=2))
    cancelled = await service.cancel(created.id)
    attempt_id = cancelled.events[-1].data["while_running"]
    clock.advance(timedelta(seconds=3))
    handler.gate.set()
    await dispatcher.drain(10)

    stored = await api_store.get(created.id)
    assert stored is not None
    assert (stored.status, stored.next_run_at, stored.lease) == (ScheduleStatus.CANCELLED, None, None)
    assert [(a.attempt_id, a.outcome, a.provider_message_id) for a in stored.attempts] == [
        (attempt_id, "succeeded", "wamid.report")]
    assert [(e.type, e.data.get("after_cancel")) for e in stored.events] == [
        ("scheduled", None), ("started", None), ("cancelled", None), ("succeeded", "true")]
    clock.advance(timedelta(hours=2))
    assert await dispatcher.dispatch_due() == 0
