"""A process whose clock is off the store's says so and keeps the store's time: the offset is
measured against MongoDB's server clock (its ``hello``), reported as a metric, logged when it is
too far either way, and then followed, so that a replica whose host's clock is off neither takes
over runs still running nor has its own taken over."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from datetime import datetime, timedelta

import httpx
import pytest

from cronjob.domain.schedule import Schedule
from cronjob.ports.clock import Clock, SystemClock
from cronjob.ports.metrics import NullMetrics
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.aligned_clock import AlignedClock
from cronjob.services.clock_check import ClockCheck, keep_checking
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_bootstrap.container import build_container
from cronjob_bootstrap.settings import Settings
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, TOKEN
from tests.support.builders import one_off
from tests.support.processes import free_port
from tests.support.serving import serving

SLACK = timedelta(seconds=20)  # a 30 s lease renewed every 10 s


class ShiftedClock(Clock):
    """The machine's clock, ``shift`` off: a host whose time synchronisation broke."""

    def __init__(self, shift: timedelta) -> None:
        self._shift = shift

    def now(self) -> datetime:
        return SystemClock().now() + self._shift


class SlowToRead(Clock):
    """The machine's clock, ``shift`` off, that moves ``step`` on at every reading: a measurement
    with it takes a round trip of at least ``step``."""

    def __init__(self, shift: timedelta, step: timedelta) -> None:
        self._shift = shift
        self._step = step
        self._steps = timedelta(0)

    def now(self) -> datetime:
        self._steps += self._step
        return SystemClock().now() + self._shift + self._steps


class Offsets(NullMetrics):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def clock_offset(self, seconds: float) -> None:
        self.seen.append(seconds)


@pytest.fixture
async def mongo(mongodb_uri: str) -> AsyncIterator[MongoScheduleRepository]:
    repo = MongoScheduleRepository.from_uri(mongodb_uri, f"clock_{uuid.uuid4().hex[:12]}",
                                            ScheduleCodec(default_trigger_parser()))
    yield repo
    await repo.close()


@pytest.mark.parametrize(("shift", "words"), [
    (60, ["60.0 s ahead of the store's", "keeps the store's time instead"]),
    (-5, ["5.0 s behind the store's", "keeps the store's time instead"]),
])
async def test_a_clock_off_the_mongodb_servers_is_measured_and_logged(
        mongo: MongoScheduleRepository, caplog: pytest.LogCaptureFixture, shift: int, words: list[str]) -> None:
    metrics = Offsets()
    aligned = AlignedClock(ShiftedClock(timedelta(seconds=shift)))
    check = ClockCheck(mongo, aligned, metrics, slack=SLACK)
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        offset = await check.check()
    # From now on the process tells the store's time (the test server runs on this host's clock).
    assert aligned.following and abs((aligned.now() - SystemClock().now()).total_seconds()) < 0.5
    assert offset is not None and abs(offset.total_seconds() - shift) < 0.5, offset
    assert len(metrics.seen) == 1 and abs(metrics.seen[0] - shift) < 0.5
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    for word in words:
        assert word in record.getMessage(), record.getMessage()
    assert "taken over" not in record.getMessage()


async def test_a_clock_that_agrees_is_quiet_and_one_put_right_is_said_once(
        mongo: MongoScheduleRepository, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Offsets()
    clock = ShiftedClock(timedelta(seconds=30))
    aligned = AlignedClock(clock)
    check = ClockCheck(mongo, aligned, metrics, slack=SLACK)
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        await check.check()
        clock._shift = timedelta(0)  # NTP put it right
        offset = await check.check()
        await check.check()
    assert offset is not None and abs(offset.total_seconds()) < 0.5
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert "back within" in caplog.records[1].getMessage()
    assert "keeps the host's time again" in caplog.records[1].getMessage()
    assert abs(metrics.seen[-1]) < 0.5
    assert not aligned.following and aligned.offset == timedelta(0)


async def test_a_host_clock_set_right_between_measurements_does_not_move_the_followed_time(
        mongo: MongoScheduleRepository) -> None:
    # NTP working again steps the host's clock 30 s back: until the next measurement (a minute),
    # the process must not fall 30 s behind the others.
    host = ShiftedClock(timedelta(seconds=30))
    aligned = AlignedClock(host)
    await ClockCheck(mongo, aligned, Offsets(), slack=SLACK).check()
    host._shift = timedelta(0)
    assert aligned.following and abs((aligned.now() - SystemClock().now()).total_seconds()) < 0.5


async def test_a_clock_within_the_tolerance_is_left_as_it_is(mongo: MongoScheduleRepository) -> None:
    aligned = AlignedClock(ShiftedClock(timedelta(seconds=1.5)))
    await ClockCheck(mongo, aligned, Offsets(), slack=SLACK).check()
    assert not aligned.following and aligned.offset == timedelta(0)


async def test_once_followed_the_stores_clock_is_kept_until_the_host_is_well_within(
        mongo: MongoScheduleRepository) -> None:
    # An offset hovering about the 2 s limit must not move the process's time back and forth.
    host = ShiftedClock(timedelta(seconds=3))
    aligned = AlignedClock(host)
    check = ClockCheck(mongo, aligned, Offsets(), slack=SLACK)
    await check.check()
    assert aligned.following
    host._shift = timedelta(seconds=1.6)
    await check.check()
    assert aligned.following and abs(aligned.offset.total_seconds() - 1.6) < 0.5
    assert abs((aligned.now() - SystemClock().now()).total_seconds()) < 0.5
    host._shift = timedelta(seconds=0.5)
    await check.check()
    assert not aligned.following and aligned.offset == timedelta(0)


async def test_a_measurement_too_slow_to_trust_is_not_followed(
        mongo: MongoScheduleRepository, caplog: pytest.LogCaptureFixture) -> None:
    aligned = AlignedClock(SlowToRead(timedelta(seconds=60), step=timedelta(seconds=1.5)))
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        offset = await ClockCheck(mongo, aligned, Offsets(), slack=SLACK).check()
    assert offset is not None and offset > timedelta(seconds=50)
    assert not aligned.following and aligned.offset == timedelta(0)
    [record] = caplog.records
    assert "too slow to measure (1.5 s) to be followed" in record.getMessage()
    assert "taken over" in record.getMessage()


class Slow(TaskHandler):
    """A task that takes ``seconds``, counting its runs."""

    task_type = "whatsapp.text"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.runs: list[str] = []

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.runs.append(schedule.id)
        await asyncio.sleep(self.seconds)
        return TaskOutcome()


async def _scheduler(repository: MongoScheduleRepository, clock: Clock, task: Slow, owner: str,
                     stop: asyncio.Event) -> asyncio.Task[None]:
    signal = InProcessWorkSignal(clock)
    # A 3 s lease, renewed every second: two clocks more than 2 s apart see a renewed lease lapse.
    settings = DispatcherSettings(owner=owner, lease_for=timedelta(seconds=3))
    dispatcher = Dispatcher(repository, {task.task_type: task}, clock, signal, settings)
    engine = AsyncioTimerEngine(dispatcher, repository, signal, clock, poll_interval=0.1)
    return asyncio.create_task(engine.run(stop))


@pytest.mark.parametrize("ahead", [2.5, -2.5])
async def test_a_replica_whose_host_clock_is_off_does_not_take_over_a_run_in_progress(
        mongodb_uri: str, ahead: float) -> None:
    """Two replicas, one whose host is ``ahead`` seconds off, more than a lease's slack: the run
    the right one holds (4 s, past several renewals) runs once, as it does once the off one keeps
    the store's time (without the check, the one ahead takes it over at its first poll, and the
    one behind renews leases that have lapsed for the other: it runs twice either way)."""
    database = f"clock_{uuid.uuid4().hex[:12]}"
    stores = [MongoScheduleRepository.from_uri(mongodb_uri, database, ScheduleCodec(default_trigger_parser()))
              for _ in range(2)]
    await stores[0].initialize()
    right, off = SystemClock(), AlignedClock(ShiftedClock(timedelta(seconds=ahead)))
    await ClockCheck(stores[1], off, Offsets(), slack=timedelta(seconds=2)).check()
    task, stop = Slow(4.0), asyncio.Event()
    # The replica that is ahead would claim the run itself, early: the right one claims it first.
    first, second = (right, off) if ahead > 0 else (off, right)
    schedulers = []
    try:
        await stores[0].add(one_off(right.now()))
        schedulers.append(await _scheduler(stores[0], first, task, "first", stop))
        for _ in range(100):
            if task.runs:
                break
            await asyncio.sleep(0.05)
        assert len(task.runs) == 1
        schedulers.append(await _scheduler(stores[1], second, task, "second", stop))
        await asyncio.sleep(4.5)
        assert len(task.runs) == 1, "run again by the other replica"
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*schedulers), 10)
        await stores[0].drop_database()
        for store in stores:
            await store.close()


async def test_a_store_on_this_hosts_clock_has_nothing_to_compare(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Offsets()
    aligned = AlignedClock(ShiftedClock(timedelta(seconds=60)))
    check = ClockCheck(InMemoryScheduleRepository(), aligned, metrics, slack=SLACK)
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        assert await check.check() is None
        await asyncio.wait_for(keep_checking(check, asyncio.Event()), 1.0)  # nothing to keep checking
    assert metrics.seen == [] and caplog.records == []
    assert not aligned.following and aligned.offset == timedelta(0)


async def test_a_served_process_on_a_host_whose_clock_is_off_creates_by_the_stores_time(
        mongodb_uri: str, tmp_path: Path) -> None:
    """The runtime measures before the API answers anything but 503, and every part reads the
    aligned clock: a schedule made at once by a process whose host is 60 s ahead is stamped with
    the store's time (this host's, the test server's), not 60 s ahead."""
    port = free_port()
    settings = Settings(api_tokens=TOKEN, port=port, mongodb_uri=mongodb_uri,
                        mongodb_database=f"served_{uuid.uuid4().hex[:10]}", data_dir=tmp_path)
    container = build_container(settings)
    container.host_clock.override(ShiftedClock(timedelta(seconds=60)))
    async with serving(container, settings):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            created = await http.post("/v1/schedules", json={
                "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "every 1 hour"})
            while created.status_code == 503:  # not set up yet: the measurement comes first
                await asyncio.sleep(0.05)
                created = await http.post("/v1/schedules", json={
                    "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
                    "schedule": "every 1 hour"})
        await container.repository().drop_database()
    assert created.status_code == 201, created.text
    stamped = datetime.fromisoformat(created.json()["created_at"].replace("Z", "+00:00"))
    assert abs((stamped - SystemClock().now()).total_seconds()) < 5, stamped
