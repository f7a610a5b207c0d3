"""A recurring schedule cancelled while one of its runs is in progress: the run goes on, and its
record (attempt, ``started`` and outcome events) is kept by the cancelled schedule once it ends.
The dispatcher with the in-memory store and the scheduling service, as a user cancels through it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from cronjob.domain.message import DeliveryError, DeliveryOutcomeUnknown
from cronjob.domain.schedule import Schedule, ScheduleEvent, ScheduleStatus
from cronjob.ports.events import EventPublisher
from cronjob.ports.repository import StoreUnavailable
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.commands import WHATSAPP_TEXT, CreateScheduleCommand
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.support.clock import FixedClock
from tests.support.racing import RacingRepository
from tests.support.waiting import until

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
DUE = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


class GatedHandler(TaskHandler):
    """Runs until the test opens ``gate``, then ends as ``outcome`` says: a TaskOutcome, or an
    exception to raise."""

    task_type = WHATSAPP_TEXT

    def __init__(self, outcome: TaskOutcome | Exception) -> None:
        self.gate = asyncio.Event()
        self.outcome = outcome
        self.started: list[str] = []

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.started.append(schedule.id)
        await self.gate.wait()
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class RecordingPublisher(EventPublisher):
    """Notes every publication and withdrawal: (kind, event type, the schedule's status then, event id)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str, str, str]] = []

    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> bool:
        self.said.extend(("published", e.type, schedule.status.value, e.id) for e in events)
        return True

    async def withdraw(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> None:
        self.said.extend(("withdrawn", e.type, schedule.status.value, e.id) for e in events)


class Rig:
    """A recurring schedule, every minute from DUE; a dispatcher whose handler waits for its gate."""

    def __init__(self, outcome: TaskOutcome | Exception = TaskOutcome(provider_message_id="wamid.last"),
                 repository: InMemoryScheduleRepository | None = None) -> None:
        self.clock = FixedClock(NOW)
        self.repository = repository or InMemoryScheduleRepository()
        self.signal = InProcessWorkSignal(self.clock)
        self.service = SchedulingService(self.repository, self.clock, self.signal)
        self.handler = GatedHandler(outcome)
        self.publisher = RecordingPublisher()
        self.dispatcher = Dispatcher(self.repository, {WHATSAPP_TEXT: self.handler}, self.clock, self.signal,
                                     DispatcherSettings(owner="replica-a", lease_for=LEASE, save_retry=(0.01, 0.05)),
                                     jitter=lambda: 1.0, publisher=self.publisher)

    async def start_run(self) -> str:
        """Create the schedule and start its run at DUE (the handler waits); its id."""
        created = (await self.service.create(CreateScheduleCommand(
            task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi", "params": []},
            schedule=f"every 1 minutes from {DUE.isoformat()}", timezone="UTC"))).schedule
        self.clock.set(DUE)
        assert await self.dispatcher.dispatch_due() == 1
        await until(lambda: self.handler.started == [created.id])
        return created.id

    async def cancel_then_end(self, schedule_id: str) -> str:
        """Cancel the schedule 2 s into its run, end the run 3 s later; the run's attempt id."""
        self.clock.advance(timedelta(seconds=2))
        cancelled = await self.service.cancel(schedule_id)
        attempt_id = cancelled.events[-1].data["while_running"]
        self.clock.advance(timedelta(seconds=3))
        self.handler.gate.set()
        await self.dispatcher.drain(5)
        return attempt_id

    async def stored(self, schedule_id: str) -> Schedule:
        schedule = await self.repository.get(schedule_id)
        assert schedule is not None
        return schedule


async def test_a_run_that_succeeds_after_its_schedule_was_cancelled_is_recorded_and_the_schedule_stays_cancelled(
        ) -> None:
    rig = Rig()
    schedule_id = await rig.start_run()
    attempt_id = await rig.cancel_then_end(schedule_id)

    stored = await rig.stored(schedule_id)
    assert (stored.status, stored.next_run_at, stored.lease) == (ScheduleStatus.CANCELLED, None, None)
    [attempt] = stored.attempts
    assert (attempt.attempt_id, attempt.outcome, attempt.provider_message_id) == (attempt_id, "succeeded",
                                                                                  "wamid.last")
    assert (attempt.scheduled_for, attempt.started_at, attempt.finished_at) == (
        DUE, DUE, DUE + timedelta(seconds=5))
    assert [(e.type, e.attempt_id) for e in stored.events] == [
        ("scheduled", None), ("started", attempt_id), ("cancelled", None), ("succeeded", attempt_id)]
    started, succeeded = stored.events[1], stored.events[3]
    assert "after_cancel" not in started.data  # as it was published when the run began
    assert succeeded.data == {"provider_message_id": "wamid.last", "after_cancel": "true"}
    assert stored.result == {"provider_message_id": "wamid.last"} and stored.last_error is None
    assert await rig.repository.get_by_provider_message_id("wamid.last") == stored  # its statuses find it

    # Webhooks: started as the run began (the id now stored); the outcome first published as if the
    # schedule went on, withdrawn once the run found it cancelled, then as it is kept.
    said = rig.publisher.said
    assert said[0] == ("published", "started", "running", started.id)
    assert [(kind, type_, status) for kind, type_, status, _ in said[1:]] == [
        ("published", "succeeded", "scheduled"), ("withdrawn", "succeeded", "scheduled"),
        ("published", "succeeded", "cancelled")]
    assert said[-1][3] == succeeded.id and said[1][3] != succeeded.id

    rig.clock.advance(timedelta(hours=1))  # and it never runs again
    assert await rig.dispatcher.dispatch_due() == 0


@pytest.mark.parametrize(("error", "outcome", "event_types"), [
    (DeliveryError("http_503", "unavailable", retryable=True), "failed", ["failed"]),  # no retry after a cancel
    (DeliveryError("132001", "no such template", retryable=False), "failed", ["failed", "dead"]),
    (DeliveryOutcomeUnknown("timed out after the request was written"), "unknown", ["unknown"]),
])
async def test_a_run_that_fails_after_its_schedule_was_cancelled_is_recorded_without_what_would_come_next(
        error: Exception, outcome: str, event_types: list[str]) -> None:
    rig = Rig(outcome=error)
    schedule_id = await rig.start_run()
    attempt_id = await rig.cancel_then_end(schedule_id)

    stored = await rig.stored(schedule_id)
    assert (stored.status, stored.next_run_at) == (ScheduleStatus.CANCELLED, None)
    assert [(a.attempt_id, a.outcome) for a in stored.attempts] == [(attempt_id, outcome)]
    assert stored.last_error is not None and stored.last_error.code == stored.attempts[0].error.code  # type: ignore[union-attr]
    kept = stored.events[3:]
    assert [e.type for e in stored.events[:3]] == ["scheduled", "started", "cancelled"]
    assert [e.type for e in kept] == event_types
    for event in kept:  # no retry time, no next occurrence: nothing comes after a cancel
        assert event.data["after_cancel"] == "true" and event.attempt_id == attempt_id
        assert "retry_at" not in event.data and "next_run_at" not in event.data


async def test_a_run_whose_lease_was_taken_over_and_then_cancelled_is_still_dropped() -> None:
    """Only the run the cancel took the lease from keeps its record: one whose lease had lapsed
    and been taken over by another replica is dropped, as ever (the new owner's stands)."""
    rig = Rig()
    schedule_id = await rig.start_run()
    rig.clock.advance(LEASE + timedelta(seconds=1))
    [taken] = await rig.repository.claim_due(now=rig.clock.now(), owner="replica-b", lease_for=LEASE, limit=1)
    assert taken.lease is not None
    cancelled = await rig.service.cancel(schedule_id)
    assert cancelled.events[-1].data == {"while_running": taken.lease.attempt_id}
    rig.handler.gate.set()
    await rig.dispatcher.drain(5)
    stored = await rig.stored(schedule_id)
    assert stored.attempts == [] and [e.type for e in stored.events] == ["scheduled", "cancelled"]


class DownForReads(InMemoryScheduleRepository):
    """The in-memory store whose ``get`` fails the first ``failures`` times once ``down`` is set."""

    down = False
    failures = 2

    async def get(self, schedule_id: str) -> Schedule | None:
        if self.down and self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("store down")
        return await super().get(schedule_id)


async def test_an_outage_while_keeping_the_record_is_tried_again() -> None:
    repository = DownForReads()
    rig = Rig(repository=repository)
    schedule_id = await rig.start_run()
    rig.clock.advance(timedelta(seconds=2))
    await rig.service.cancel(schedule_id)
    repository.down = True
    rig.handler.gate.set()
    await rig.dispatcher.drain(5)
    assert repository.failures == 0
    stored = await rig.stored(schedule_id)
    assert [a.outcome for a in stored.attempts] == ["succeeded"] and stored.status is ScheduleStatus.CANCELLED


async def test_a_change_that_races_the_kept_record_is_not_lost_and_neither_is_the_record() -> None:
    """A write of the cancelled schedule (a WhatsApp status of an earlier message) between the
    run's read and its write: the run reads it again and keeps its record on top of it."""
    repository = RacingRepository()
    rig = Rig(repository=repository)
    schedule_id = await rig.start_run()
    rig.clock.advance(timedelta(seconds=2))
    await rig.service.cancel(schedule_id)

    async def another_write() -> None:
        stored = await rig.stored(schedule_id)
        version = stored.updated_at
        stored.record_delivery_status(status="read", at=rig.clock.now(), now=rig.clock.now())
        assert await rig.repository.save(stored, expected_status=ScheduleStatus.CANCELLED,
                                         expected_updated_at=version)

    repository.race = another_write
    rig.handler.gate.set()
    await rig.dispatcher.drain(5)
    stored = await rig.stored(schedule_id)
    assert [a.outcome for a in stored.attempts] == ["succeeded"]
    assert [e.type for e in stored.events] == ["scheduled", "started", "cancelled", "delivery.read", "succeeded"]
