"""The retention of the service's own finished jobs: RetentionKeeper and RetentionHandler over the
in-memory store, a run of the retention schedule by the Dispatcher, and the scheduler start's
``keep_retention``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import StoreUnavailable
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.retention import (
    INTERVAL,
    RETENTION,
    RETENTION_ID,
    Kept,
    RetentionHandler,
    RetentionKeeper,
)
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_bootstrap.runtime import keep_retention
from tests.support.builders import T0, one_off
from tests.support.builders import ended as ended_job
from tests.support.clock import FixedClock

OWN = ["webhook.delivery", "whatsapp.status"]
WEEK = 168
NOW = T0 + timedelta(days=30)


def keeper(repository: InMemoryScheduleRepository, clock: FixedClock, hours: int = WEEK) -> RetentionKeeper:
    return RetentionKeeper(repository, clock, keep_hours=hours, task_types=OWN)


async def stored(repository: InMemoryScheduleRepository) -> Schedule:
    schedule = await repository.get(RETENTION_ID)
    assert schedule is not None
    return schedule


async def finished(repository: InMemoryScheduleRepository, task_type: str, *, created: timedelta,
                   ended: timedelta, dead: bool = False) -> str:
    """A job of ``task_type`` made ``created`` before NOW that succeeded (or died) ``ended`` before it."""
    job = ended_job(task_type, made=NOW - created, at=NOW - ended, dead=dead)
    await repository.add(job)
    return job.id


async def test_three_replicas_starting_together_store_one_retention_schedule() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    kept = await asyncio.gather(*(keeper(repository, clock).keep() for _ in range(3)))
    assert sorted(k.value for k in kept) == ["created", "current", "current"]
    [only] = await repository.list(task_types=[RETENTION], limit=10)
    assert only.id == RETENTION_ID and only.status is ScheduleStatus.SCHEDULED
    assert only.payload == {"keep_hours": WEEK, "task_types": OWN}
    assert isinstance(only.trigger, IntervalTrigger) and only.trigger.every == INTERVAL
    # A restart with the same setting changes nothing.
    version = only.updated_at
    assert await keeper(repository, clock).keep() is Kept.CURRENT
    assert (await stored(repository)).updated_at == version


async def test_a_changed_setting_replaces_it_and_zero_switches_it_off() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    assert await keeper(repository, clock).keep() is Kept.CREATED
    clock.advance(60)
    assert await keeper(repository, clock, hours=24).keep() is Kept.REPLACED
    replaced = await stored(repository)
    assert replaced.payload["keep_hours"] == 24 and replaced.status is ScheduleStatus.SCHEDULED
    assert len(await repository.list(task_types=[RETENTION], limit=10)) == 1
    assert await keeper(repository, clock, hours=0).keep() is Kept.SWITCHED_OFF
    assert (await stored(repository)).status is ScheduleStatus.CANCELLED
    assert await keeper(repository, clock, hours=0).keep() is Kept.OFF


async def test_one_cancelled_by_hand_is_made_again_at_the_next_start() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    await keeper(repository, clock).keep()
    cancelled = await stored(repository)
    cancelled.cancel(now=clock.advance(1))
    assert await repository.save(cancelled, expected_status=ScheduleStatus.SCHEDULED)
    assert await keeper(repository, clock).keep() is Kept.REPLACED
    assert (await stored(repository)).status is ScheduleStatus.SCHEDULED


async def test_one_running_with_another_setting_is_left_to_its_run() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    await keeper(repository, clock).keep()
    [claimed] = await repository.claim_due(now=clock.advance(INTERVAL), owner="r", lease_for=timedelta(seconds=30),
                                           limit=10)
    assert claimed.id == RETENTION_ID
    assert await keeper(repository, clock).keep() is Kept.CURRENT  # the same setting: nothing to do
    assert await keeper(repository, clock, hours=24).keep() is Kept.BUSY
    assert (await stored(repository)).payload["keep_hours"] == WEEK


async def test_a_run_deletes_only_the_own_jobs_finished_longer_ago_than_the_retention() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    days = timedelta(days=1)
    old_delivery = await finished(repository, "webhook.delivery", created=10 * days, ended=10 * days)
    old_dead = await finished(repository, "webhook.delivery", created=9 * days, ended=8 * days, dead=True)
    old_status = await finished(repository, "whatsapp.status", created=8 * days, ended=8 * days)
    # A dead letter counts from when it died: made 10 days ago, dead for one, it stays.
    recent_dead = await finished(repository, "webhook.delivery", created=10 * days, ended=days, dead=True)
    recent = await finished(repository, "webhook.delivery", created=2 * days, ended=2 * days)
    users = await finished(repository, "whatsapp.text", created=60 * days, ended=60 * days)
    live = one_off(NOW + days, now=NOW - 20 * days, task_type="webhook.delivery")
    await repository.add(live)
    await keeper(repository, clock).keep()

    outcome = await RetentionHandler(repository, clock).run(await stored(repository))

    assert outcome.result == {"deleted": "3", "before": "2030-02-07T12:00:00.123Z", "more": "false"}
    left = {s.id for s in await repository.list(limit=100)}
    assert {old_delivery, old_dead, old_status}.isdisjoint(left)
    assert {recent_dead, recent, users, live.id, RETENTION_ID} <= left


async def test_a_run_deletes_in_pages_and_leaves_the_rest_to_the_next() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    for _ in range(5):
        await finished(repository, "webhook.delivery", created=timedelta(days=9), ended=timedelta(days=9))
    await keeper(repository, clock).keep()
    calls: list[int] = []

    class Counting(InMemoryScheduleRepository):
        async def delete_finished(self, **kwargs: object) -> int:  # type: ignore[override]
            deleted = await repository.delete_finished(**kwargs)  # type: ignore[arg-type]
            calls.append(deleted)
            return deleted

    handler = RetentionHandler(Counting(), clock, page=2, pages=2)
    schedule = await stored(repository)
    assert (await handler.run(schedule)).result["more"] == "true"
    assert calls == [2, 2]
    assert (await handler.run(schedule)).result == {
        "deleted": "1", "before": "2030-02-07T12:00:00.123Z", "more": "false"}
    assert calls == [2, 2, 1]


async def test_the_dispatcher_runs_it_and_it_goes_on_to_its_next_occurrence() -> None:
    # Started between two milliseconds: it runs at its rule's instants, one run each.
    started = NOW + timedelta(microseconds=400)
    repository, clock = InMemoryScheduleRepository(), FixedClock(started)
    old = await finished(repository, "webhook.delivery", created=timedelta(days=9), ended=timedelta(days=9))
    signal = InProcessWorkSignal(clock)
    await RetentionKeeper(repository, clock, signal, keep_hours=WEEK, task_types=OWN).keep()
    dispatcher = Dispatcher(repository, {RETENTION: RetentionHandler(repository, clock)}, clock, signal,
                            DispatcherSettings(owner="replica-a"))
    first = NOW + timedelta(minutes=1, milliseconds=1)
    clock.set(first)
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert await dispatcher.dispatch_due() == 0  # not again a moment later
    assert await repository.get(old) is None
    after = await stored(repository)
    assert after.status is ScheduleStatus.SCHEDULED and after.result["deleted"] == "1"
    assert after.next_run_at == first + INTERVAL and after.next_run_at == after.trigger.next_fire_time(first)
    assert [a.attempt_id for a in after.attempts] and len(after.attempts) == 1


async def test_the_scheduler_start_asks_again_while_the_store_is_down_then_stops_asking() -> None:
    class DownAtFirst(InMemoryScheduleRepository):
        gets = 0

        async def get(self, schedule_id: str) -> Schedule | None:
            DownAtFirst.gets += 1
            if DownAtFirst.gets <= 2:
                raise StoreUnavailable("not yet")
            return await super().get(schedule_id)

    repository, clock = DownAtFirst(), FixedClock(NOW)
    kept = await asyncio.wait_for(keep_retention(keeper(repository, clock), asyncio.Event(), delay=0.01), 5)
    assert kept is Kept.CREATED and DownAtFirst.gets == 3
    stop = asyncio.Event()
    stop.set()
    assert await keep_retention(keeper(repository, clock), stop) is None
