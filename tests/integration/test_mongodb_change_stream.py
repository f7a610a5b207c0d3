"""Work created by another process reaches a scheduler at once through a change stream, not at
its next poll (the MongoDB test server supports change streams, as a replica set does)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from cronjob.domain.schedule import Schedule
from cronjob.ports.clock import SystemClock
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.mongodb.change_stream import watch_new_work
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import one_off


@pytest.fixture
async def two_clients(mongodb_uri: str) -> AsyncIterator[tuple[MongoScheduleRepository, MongoScheduleRepository]]:
    database = f"stream_{uuid.uuid4().hex[:10]}"
    scheduler_side, api_side = (MongoScheduleRepository.from_uri(mongodb_uri, database,
                                                                 ScheduleCodec(default_trigger_parser()))
                                for _ in range(2))
    await scheduler_side.initialize()
    yield scheduler_side, api_side
    await scheduler_side.drop_database()
    await scheduler_side.close()
    await api_side.close()


class Ran(TaskHandler):
    task_type = "whatsapp.text"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.sent.append(schedule.id)
        return TaskOutcome()


async def run_scheduler(repository: MongoScheduleRepository, *, watch: bool, created_by: MongoScheduleRepository
                        ) -> Ran:
    clock = SystemClock()
    signal = InProcessWorkSignal(clock)
    sender = Ran()
    dispatcher = Dispatcher(repository, {"whatsapp.text": sender}, clock, signal, DispatcherSettings(owner="s1"))
    engine = AsyncioTimerEngine(dispatcher, repository, signal, clock, poll_interval=30.0)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(engine.run(stop))]
    if watch:
        tasks.append(asyncio.create_task(watch_new_work(repository, signal, stop)))
    await asyncio.sleep(0.5)  # the engine has looked (nothing due) and sleeps for its 30 s poll
    await created_by.add(one_off(clock.now() + timedelta(milliseconds=300)))
    for _ in range(60):
        if sender.sent:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    return sender


async def test_new_work_from_another_client_wakes_the_scheduler(
        two_clients: tuple[MongoScheduleRepository, MongoScheduleRepository]) -> None:
    scheduler_side, api_side = two_clients
    sender = await run_scheduler(scheduler_side, watch=True, created_by=api_side)
    assert len(sender.sent) == 1  # within 3 s, though the poll would take 30


async def test_without_the_stream_it_waits_for_the_poll(
        two_clients: tuple[MongoScheduleRepository, MongoScheduleRepository]) -> None:
    scheduler_side, api_side = two_clients
    sender = await run_scheduler(scheduler_side, watch=False, created_by=api_side)
    assert sender.sent == []  # the control: what the stream saves
