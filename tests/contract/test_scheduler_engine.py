"""The SchedulerEngine contract (see cronjob.ports.engine), run against every engine adapter.

Each test runs the real dispatcher over the shipped in-memory store, the recording sender and
the real clock (one replica: ``tests.support.engine_rig.Rig``). Ordering is asserted strictly ("not
before it is due"); durations only loosely, as the timeouts of the waits ("within a few seconds"),
so that a loaded two-core CI machine does not make them flake.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.message import MessageKind
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import StoreUnavailable
from cronjob.services.commands import ScheduleMessageCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.support.engine_rig import ENGINES, POLL, Rig
from tests.support.waiting import PROMPTLY, until


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class FlakyClaimRepository(InMemoryScheduleRepository):
    """The in-memory store, raising on the first ``failures`` calls of ``claim_due``."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.claim_calls = 0

    async def claim_due(self, **kwargs: Any) -> list[Schedule]:  # type: ignore[override]
        self.claim_calls += 1
        if self.claim_calls <= self.failures:
            raise StoreUnavailable(f"store down (call {self.claim_calls})")
        return await super().claim_due(**kwargs)


def on_the_millisecond(instant: datetime) -> datetime:
    """``instant`` rounded up to a whole millisecond (stores keep milliseconds: claim times too)."""
    extra = instant.microsecond % 1000
    return instant + timedelta(microseconds=1000 - extra) if extra else instant


async def test_work_due_soon_runs_once_and_not_before_it_is_due(engine_kind: str) -> None:
    rig = Rig(engine_kind)
    due = on_the_millisecond(rig.clock.now() + timedelta(seconds=0.3))
    schedule_id = await rig.schedule(due, "na hora")
    async with rig.running():
        await until(lambda: len(rig.sender.sent) == 1, timeout=PROMPTLY)  # the bound: promptly once due
        assert rig.sender.sent[0].body == "na hora"
        assert rig.sender.sent_at[0] >= due, "sent before it was due"
        await until(lambda: rig.dispatcher.in_flight == 0)
        stored = await rig.repository.get(schedule_id)
        assert stored is not None and stored.status is ScheduleStatus.SUCCEEDED
        [attempt] = stored.attempts
        assert attempt.started_at >= due, "claimed before it was due"
        await asyncio.sleep(3 * POLL)  # a few more polls: still once
        assert len(rig.sender.sent) == 1


async def test_a_burst_due_at_one_instant_is_run_exactly_once_each(engine_kind: str) -> None:
    rig = Rig(engine_kind)
    due = on_the_millisecond(rig.clock.now() + timedelta(seconds=0.5))
    ids = [await rig.schedule(due, f"m{i}") for i in range(200)]
    async with rig.running():
        await until(lambda: len(rig.sender.sent) >= 200, timeout=3 * PROMPTLY)
        await until(lambda: rig.dispatcher.in_flight == 0)
        await asyncio.sleep(3 * POLL)  # a few more polls: nothing runs twice
    bodies = sorted(m.body for m in rig.sender.sent)
    assert bodies == sorted(f"m{i}" for i in range(200))
    assert min(rig.sender.sent_at) >= due
    assert {await rig.status(i) for i in ids} == {ScheduleStatus.SUCCEEDED}


async def test_work_added_through_the_api_while_running_is_picked_up(engine_kind: str) -> None:
    # A poll far longer than the bound below: only the WorkSignal can make the engine look in time.
    rig = Rig(engine_kind, poll_interval=30.0)
    async with rig.running():
        await until(lambda: rig.engine.last_tick is not None)
        await asyncio.sleep(0.1)  # the engine now waits for its next look
        added = rig.clock.now()
        schedule_id = await rig.schedule(added, "agora")
        await until(lambda: len(rig.sender.sent) == 1, timeout=PROMPTLY)  # the bound: promptly once added
        await until(lambda: rig.dispatcher.in_flight == 0)
        assert await rig.status(schedule_id) is ScheduleStatus.SUCCEEDED


async def test_work_added_without_a_signal_is_found_by_the_poll(engine_kind: str) -> None:
    """Another process's work: in the shared store, and its signal never reaches this engine."""
    rig = Rig(engine_kind)
    async with rig.running():
        await until(lambda: rig.engine.last_tick is not None)
        await asyncio.sleep(POLL / 2)
        elsewhere = SchedulingService(rig.repository, rig.clock, InProcessWorkSignal(rig.clock))
        added = rig.clock.now()
        await elsewhere.schedule_message(ScheduleMessageCommand(
            to="5511999999999", body="de outro processo", kind=MessageKind.TEXT, send_at=added,
            send_at_text=added.isoformat(), timezone="UTC"))
        await until(lambda: len(rig.sender.sent) == 1, timeout=PROMPTLY)  # the bound: by a poll soon after
        assert [m.body for m in rig.sender.sent] == ["de outro processo"]


async def test_stop_returns_promptly_even_with_a_long_poll_interval(engine_kind: str) -> None:
    rig = Rig(engine_kind, poll_interval=30.0)
    task = asyncio.create_task(rig.engine.run(rig.stop))
    await until(lambda: rig.engine.last_tick is not None)
    await asyncio.sleep(0.05)
    assert not task.done()
    rig.stop.set()
    await asyncio.wait_for(task, timeout=PROMPTLY)
    assert task.exception() is None


async def test_stop_lets_a_run_in_progress_finish_and_claims_nothing_more(engine_kind: str) -> None:
    gate = asyncio.Event()
    rig = Rig(engine_kind, gate=gate)
    running_id = await rig.schedule(rig.clock.now(), "em andamento")
    task = asyncio.create_task(rig.engine.run(rig.stop))
    await until(lambda: rig.sender.started == 1)
    rig.stop.set()
    late_id = await rig.schedule(rig.clock.now(), "depois do stop")  # due, but the engine is stopping
    await asyncio.sleep(2 * POLL)
    assert not task.done(), "run() returned while a run was still in progress"
    gate.set()  # the handler finishes now
    await asyncio.wait_for(task, timeout=PROMPTLY)  # the bound: run() returns promptly once it has
    assert [m.body for m in rig.sender.sent] == ["em andamento"]
    assert await rig.status(running_id) is ScheduleStatus.SUCCEEDED
    assert await rig.status(late_id) is ScheduleStatus.SCHEDULED


async def test_stop_waiting_cuts_the_drain_short_and_releases_the_run_in_progress(engine_kind: str) -> None:
    rig = Rig(engine_kind, gate=asyncio.Event(), drain_timeout=60.0)  # the gate is never opened
    running_id = await rig.schedule(rig.clock.now(), "longa demais")
    task = asyncio.create_task(rig.engine.run(rig.stop))
    await until(lambda: rig.sender.started == 1)
    rig.stop.set()
    await asyncio.sleep(2 * POLL)
    assert not task.done(), "run() returned while a run was still in progress"
    assert rig.engine.stop_waiting() == 1  # a second SIGTERM
    await asyncio.wait_for(task, timeout=PROMPTLY)
    assert task.exception() is None and rig.sender.sent == []
    stored = await rig.repository.get(running_id)
    assert stored is not None and stored.status is ScheduleStatus.SCHEDULED and stored.lease is None


async def test_a_failing_store_does_not_kill_the_engine(engine_kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    repository = FlakyClaimRepository(failures=3)
    rig = Rig(engine_kind, repository)
    schedule_id = await rig.schedule(rig.clock.now(), "depois da falha")
    async with rig.running() as task:
        await until(lambda: len(rig.sender.sent) == 1, timeout=3 * PROMPTLY)
        assert not task.done()
        assert repository.claim_calls > 3
        await until(lambda: rig.dispatcher.in_flight == 0)
    assert await rig.status(schedule_id) is ScheduleStatus.SUCCEEDED
    assert [m.body for m in rig.sender.sent] == ["depois da falha"]
    assert any("StoreUnavailable" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


async def test_last_tick_advances_while_running(engine_kind: str) -> None:
    rig = Rig(engine_kind)
    assert rig.engine.last_tick is None
    before = rig.clock.now()
    async with rig.running():
        await until(lambda: rig.engine.last_tick is not None)
        first = rig.engine.last_tick
        assert first is not None and first >= before and first.utcoffset() == timedelta(0)
        await until(lambda: rig.engine.last_tick is not None and rig.engine.last_tick > first)
