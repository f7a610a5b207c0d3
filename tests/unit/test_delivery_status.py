"""Delivery statuses reported by the provider: Schedule.record_delivery_status and DeliveryStatusService."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryDeferred, ErrorInfo
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.metrics import NullMetrics
from cronjob.services.delivery_status import (
    STATUS_RECHECK,
    DeliveryStatusService,
    StatusReport,
    StatusUpdate,
)
from cronjob.services.status_recheck import StatusRecheckHandler
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.builders import T0, one_off
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

LEASE = timedelta(seconds=30)
NOW = T0 + timedelta(minutes=5)


def sent(wamid: str = "wamid.1") -> Schedule:
    schedule = one_off()
    schedule.claim(owner="r1", attempt_id="a1", now=T0, until=T0 + LEASE)
    schedule.succeed(attempt_id="a1", now=T0, provider_message_id=wamid, result={"wamid": wamid})
    return schedule


def test_statuses_move_forward_and_are_logged_as_events() -> None:
    schedule = sent()
    assert schedule.delivery == {}
    assert schedule.record_delivery_status(status="sent", at=T0 + timedelta(seconds=1), now=NOW)
    assert schedule.record_delivery_status(status="delivered", at=T0 + timedelta(seconds=2), now=NOW)
    assert schedule.record_delivery_status(status="read", at=T0 + timedelta(seconds=9), now=NOW)
    assert schedule.delivery == {
        "status": "read",
        "sent_at": "2030-01-15T12:00:01.123Z",
        "delivered_at": "2030-01-15T12:00:02.123Z",
        "read_at": "2030-01-15T12:00:09.123Z",
    }
    events = [e for e in schedule.events if e.type.startswith("delivery.")]
    assert [e.type for e in events] == ["delivery.sent", "delivery.delivered", "delivery.read"]
    assert events[-1].data == {"at": "2030-01-15T12:00:09.123Z"}
    assert events[-1].attempt_id == "a1" and events[-1].at == NOW
    # Each update a new version, though all came at NOW (the stores keep milliseconds).
    assert schedule.status is ScheduleStatus.SUCCEEDED and schedule.updated_at == NOW + timedelta(milliseconds=2)


def test_a_duplicate_changes_nothing() -> None:
    schedule = sent()
    assert schedule.record_delivery_status(status="read", at=T0 + timedelta(seconds=9), now=NOW)
    before = (dict(schedule.delivery), list(schedule.events), schedule.updated_at)
    assert not schedule.record_delivery_status(status="read", at=T0 + timedelta(seconds=10),
                                               now=NOW + timedelta(seconds=1))
    assert (schedule.delivery, schedule.events, schedule.updated_at) == before


@pytest.mark.parametrize("late", ["sent", "delivered"])
def test_a_late_lower_status_fills_in_its_time_and_the_status_stays(late: str) -> None:
    """The provider does not keep order: a "sent" may come after "read" (or be applied after it)."""
    schedule = sent()
    assert schedule.record_delivery_status(status="read", at=T0 + timedelta(seconds=9), now=NOW)
    later = NOW + timedelta(seconds=1)
    assert schedule.record_delivery_status(status=late, at=T0 + timedelta(seconds=1), now=later)
    assert schedule.delivery == {"status": "read", "read_at": "2030-01-15T12:00:09.123Z",
                                 f"{late}_at": "2030-01-15T12:00:01.123Z"}
    assert schedule.events[-1].type == f"delivery.{late}" and schedule.updated_at == later
    before = (dict(schedule.delivery), list(schedule.events))
    assert not schedule.record_delivery_status(status=late, at=T0 + timedelta(seconds=2), now=later)  # a repeat
    assert (schedule.delivery, schedule.events) == before


def test_failed_is_recorded_after_any_status_with_the_error_and_is_final() -> None:
    schedule = sent()
    assert schedule.record_delivery_status(status="delivered", at=T0 + timedelta(seconds=2), now=NOW)
    error = ErrorInfo("131049", "This message was not delivered to maintain healthy ecosystem engagement.")
    assert schedule.record_delivery_status(status="failed", at=T0 + timedelta(seconds=3), now=NOW, error=error)
    assert schedule.delivery["status"] == "failed"
    assert schedule.delivery["error_code"] == "131049"
    assert schedule.delivery["error_message"].startswith("This message was not delivered")
    assert schedule.delivery["delivered_at"] == "2030-01-15T12:00:02.123Z"
    event = schedule.events[-1]
    assert event.type == "delivery.failed" and event.data["code"] == "131049"
    assert not schedule.record_delivery_status(status="failed", at=T0 + timedelta(seconds=4), now=NOW, error=error)
    assert schedule.record_delivery_status(status="sent", at=T0 + timedelta(seconds=1), now=NOW)  # late: fills in
    assert schedule.delivery["status"] == "failed" and "sent_at" in schedule.delivery


def test_unknown_statuses_and_naive_times_are_refused() -> None:
    schedule = sent()
    with pytest.raises(ValidationError):
        schedule.record_delivery_status(status="deleted", at=T0, now=NOW)
    with pytest.raises(ValidationError):
        schedule.record_delivery_status(status="read", at=T0.replace(tzinfo=None), now=NOW)
    assert schedule.delivery == {}


def test_a_new_send_starts_the_delivery_afresh() -> None:
    schedule = Schedule.create(
        id="rec", task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Oi"},
        trigger=IntervalTrigger(timedelta(hours=1), T0), timezone="UTC", first_run_at=T0,
        now=T0 - timedelta(minutes=1))
    schedule.claim(owner="r1", attempt_id="a1", now=T0, until=T0 + LEASE)
    schedule.succeed(attempt_id="a1", now=T0, provider_message_id="wamid.1")
    assert schedule.record_delivery_status(status="read", at=T0 + timedelta(seconds=5), now=NOW)
    schedule.claim(owner="r1", attempt_id="a2", now=T0 + timedelta(hours=1), until=T0 + timedelta(hours=1) + LEASE)
    schedule.succeed(attempt_id="a2", now=T0 + timedelta(hours=1), provider_message_id="wamid.2")
    assert schedule.delivery == {}
    assert schedule.record_delivery_status(status="sent", at=T0 + timedelta(hours=1, seconds=1),
                                           now=T0 + timedelta(hours=1, seconds=2))
    assert schedule.events[-1].attempt_id == "a2"


def test_copies_do_not_share_the_delivery() -> None:
    schedule = sent()
    copied = schedule.copy()
    assert copied.record_delivery_status(status="sent", at=T0, now=NOW)
    assert schedule.delivery == {}


# -- the service ---------------------------------------------------------------------------------


async def stored(repository: InMemoryScheduleRepository, wamid: str = "wamid.1") -> Schedule:
    schedule = one_off()
    await repository.add(schedule)
    [claimed] = await repository.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
    assert claimed.lease is not None
    attempt_id = claimed.lease.attempt_id
    claimed.succeed(attempt_id=attempt_id, now=T0, provider_message_id=wamid, result={"wamid": wamid})
    assert await repository.save(claimed, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    return claimed


async def test_the_service_applies_updates_in_time_order_and_ignores_unknown_ids() -> None:
    repository = InMemoryScheduleRepository()
    schedule = await stored(repository)
    service = DeliveryStatusService(repository, FixedClock(NOW))
    applied = await service.apply([
        StatusUpdate("wamid.1", "read", T0 + timedelta(seconds=9)),
        StatusUpdate("wamid.1", "delivered", T0 + timedelta(seconds=2)),
        StatusUpdate("wamid.1", "sent", T0 + timedelta(seconds=2)),  # same second: sent first
        StatusUpdate("wamid.other", "delivered", T0 + timedelta(seconds=3)),
        StatusUpdate("wamid.1", "deleted", T0 + timedelta(seconds=10)),
    ])
    assert applied == StatusReport(3)  # wamid.other is ignored: nothing is parked without a wait
    loaded = await repository.get(schedule.id)
    assert loaded is not None and loaded.delivery["status"] == "read"
    assert {"sent_at", "delivered_at", "read_at"} <= loaded.delivery.keys()
    assert await service.apply([StatusUpdate("wamid.1", "read", T0 + timedelta(seconds=9))]) == StatusReport(0)


class SlowLookups(InMemoryScheduleRepository):
    """The in-memory store, noting how many lookups by message id overlap; the first lookup of each
    message takes longer than the later ones (which would overtake it, if they ran beside it)."""

    def __init__(self) -> None:
        super().__init__()
        self.looking = self.most = 0
        self.seen: set[str] = set()

    async def get_by_provider_message_id(self, message_id: str) -> Schedule | None:
        self.looking += 1
        self.most = max(self.most, self.looking)
        first = message_id not in self.seen
        self.seen.add(message_id)
        await asyncio.sleep(0.005 if first else 0)
        self.looking -= 1
        return await super().get_by_provider_message_id(message_id)


async def test_a_notification_s_messages_are_applied_together_each_one_s_statuses_in_order() -> None:
    # A campaign's notification holds many messages' statuses, and Meta waits for its answer.
    repository = SlowLookups()
    ids = [f"wamid.{i}" for i in range(40)]
    for wamid in ids:
        await repository.add(sent(wamid))
    service = DeliveryStatusService(repository, FixedClock(NOW))
    updates = [StatusUpdate(wamid, status, T0 + timedelta(seconds=second))
               for wamid in ids for status, second in (("read", 9), ("sent", 1), ("delivered", 2))]
    assert await service.apply(updates) == StatusReport(120)
    assert 1 < repository.most <= 16
    for wamid in ids:
        loaded = await repository.get_by_provider_message_id(wamid)
        assert loaded is not None and loaded.delivery["status"] == "read"
        assert [e.type for e in loaded.events if e.type.startswith("delivery.")] == [
            "delivery.sent", "delivery.delivered", "delivery.read"]


async def test_the_service_records_a_failure_with_the_provider_error() -> None:
    repository = InMemoryScheduleRepository()
    schedule = await stored(repository)
    service = DeliveryStatusService(repository, FixedClock(NOW))
    assert await service.apply([StatusUpdate("wamid.1", "failed", T0 + timedelta(seconds=2),
                                             error_code="131026", error_message="Message undeliverable")]) == StatusReport(1)
    loaded = await repository.get(schedule.id)
    assert loaded is not None
    assert (loaded.delivery["error_code"], loaded.delivery["error_message"]) == ("131026", "Message undeliverable")


class RacingRepository(InMemoryScheduleRepository):
    """Loses the first ``losses`` unfenced writes, as if another writer had changed the schedule
    between the read and the write."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.saves = 0

    async def save(self, schedule: Schedule, *, expected_status: ScheduleStatus,
                   attempt_id: str | None = None, expected_updated_at: datetime | None = None) -> bool:
        self.saves += 1
        if self.losses > 0 and attempt_id is None:
            self.losses -= 1
            return False
        return await super().save(schedule, expected_status=expected_status, attempt_id=attempt_id,
                                  expected_updated_at=expected_updated_at)


@pytest.mark.parametrize(("losses", "applied"), [(2, 1), (3, 0)])
async def test_a_lost_race_is_reloaded_and_retried(losses: int, applied: int) -> None:
    repository = RacingRepository(losses)
    schedule = await stored(repository)
    service = DeliveryStatusService(repository, FixedClock(NOW), attempts=3)
    assert await service.apply([StatusUpdate("wamid.1", "delivered", T0 + timedelta(seconds=2))]) == StatusReport(applied)
    loaded = await repository.get(schedule.id)
    assert loaded is not None and loaded.delivery.get("status") == ("delivered" if applied else None)


async def a_recurring_schedule_in_its_second_run(repository: InMemoryScheduleRepository) -> tuple[Schedule, Schedule]:
    """A recurring schedule whose first run sent wamid.1, and whose second run is in progress."""
    schedule = Schedule.create(
        id="rec", task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Oi"},
        trigger=IntervalTrigger(timedelta(hours=1), T0), timezone="UTC", first_run_at=T0,
        now=T0 - timedelta(minutes=1))
    await repository.add(schedule)
    [first] = await repository.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
    first.succeed(attempt_id=first.lease.attempt_id, now=T0, provider_message_id="wamid.1")  # type: ignore[union-attr]
    assert await repository.save(first, expected_status=ScheduleStatus.RUNNING,
                                 attempt_id=first.attempts[-1].attempt_id)
    [second] = await repository.claim_due(now=T0 + timedelta(hours=1), owner="r1", lease_for=LEASE, limit=1)
    return schedule, second


async def test_a_status_parked_while_the_next_run_sends_ends_superseded_once_that_send_is_recorded() -> None:
    repository, clock, metrics = InMemoryScheduleRepository(), FixedClock(NOW), CountedStatuses()
    schedule, second = await a_recurring_schedule_in_its_second_run(repository)
    service = DeliveryStatusService(repository, clock, wait=WAIT, metrics=metrics)
    assert await service.apply([StatusUpdate("wamid.1", "read", T0 + timedelta(seconds=5))]) == StatusReport(0, 1)
    [job] = await parked_jobs(repository)
    assert job.payload["schedule_id"] == schedule.id
    handler = StatusRecheckHandler(service, clock)
    with pytest.raises(DeliveryDeferred):
        await handler.run(job)  # the second run is still going
    assert second.lease is not None
    second.succeed(attempt_id=second.lease.attempt_id, now=NOW, provider_message_id="wamid.2")
    assert await repository.save(second, expected_status=ScheduleStatus.RUNNING, attempt_id=second.attempts[-1].attempt_id)
    outcome = await handler.run(job)  # at once, not after the whole wait
    assert outcome.result == {"outcome": "superseded", "message_id": "wamid.1"}
    assert metrics.outcomes == ["parked", "superseded"]


async def test_a_status_parked_while_the_next_run_fails_is_applied_to_the_send_it_is_about() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    schedule, second = await a_recurring_schedule_in_its_second_run(repository)
    service = DeliveryStatusService(repository, clock, wait=WAIT)
    await service.apply([StatusUpdate("wamid.1", "read", T0 + timedelta(seconds=5))])
    [job] = await parked_jobs(repository)
    assert second.lease is not None
    attempt_id = second.lease.attempt_id
    second.release(attempt_id=attempt_id, now=NOW)  # no new send (a shutdown gave the run back)
    assert await repository.save(second, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    outcome = await StatusRecheckHandler(service, clock).run(job)  # wamid.1 is still the latest send
    assert outcome.result == {"outcome": "recorded", "message_id": "wamid.1"}
    stored = await repository.get(schedule.id)
    assert stored is not None and stored.delivery["status"] == "read"


async def test_a_running_schedule_is_not_written() -> None:
    repository = InMemoryScheduleRepository()
    schedule, second = await a_recurring_schedule_in_its_second_run(repository)
    service = DeliveryStatusService(repository, FixedClock(NOW))
    assert await service.apply([StatusUpdate("wamid.1", "read", T0 + timedelta(seconds=5))]) == StatusReport(0)
    assert await repository.get(schedule.id) == second
    waiting = DeliveryStatusService(repository, FixedClock(NOW), wait=timedelta(minutes=2))
    assert await waiting.apply([StatusUpdate("wamid.1", "read", T0 + timedelta(seconds=5))]) == StatusReport(0, 1)
    assert await repository.get(schedule.id) == second  # parked, not written under the run's lease


# -- a status before its message is recorded: parked, then applied -------------------------------

WAIT = timedelta(minutes=2)


async def parked_jobs(repository: InMemoryScheduleRepository) -> list[Schedule]:
    return await repository.list(task_types=[STATUS_RECHECK])


async def test_an_early_status_is_parked_once_and_applied_once_its_message_is_recorded() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    signal = RecordingSignal(clock)
    service = DeliveryStatusService(repository, clock, wait=WAIT, signal=signal)
    early = StatusUpdate("wamid.1", "delivered", NOW - timedelta(seconds=1))
    assert await service.apply([early]) == StatusReport(0, 1)
    [job] = await parked_jobs(repository)
    assert job.next_run_at == NOW + timedelta(seconds=1) and signal.notified == [job.next_run_at]
    assert job.idempotency_key == "whatsapp.status:wamid.1:delivered" and job.misfire.grace is None
    assert await service.apply([early]) == StatusReport(0, 0)  # Meta sent it again: still one job
    assert len(await parked_jobs(repository)) == 1

    handler = StatusRecheckHandler(service, clock)
    with pytest.raises(DeliveryDeferred) as waits:
        await handler.run(job)
    assert waits.value.seconds == 1.0  # the first looks come quickly...
    clock.advance(timedelta(seconds=10))
    with pytest.raises(DeliveryDeferred) as waits:
        await handler.run(job)
    assert waits.value.seconds == 10.0  # ...then as long as it has waited so far
    clock.advance(timedelta(seconds=95))
    with pytest.raises(DeliveryDeferred) as waits:
        await handler.run(job)
    assert waits.value.seconds == 15.0  # never past the end of the wait

    schedule = await stored(repository)  # the run's outcome is written at last
    outcome = await handler.run(job)
    assert outcome.result == {"outcome": "recorded", "message_id": "wamid.1"}
    loaded = await repository.get(schedule.id)
    assert loaded is not None and loaded.delivery["status"] == "delivered"
    assert loaded.delivery["delivered_at"] == "2030-01-15T12:04:59.123Z"  # when Meta said, not when applied
    assert (await handler.run(job)).result["outcome"] == "ignored"  # a second run changes nothing


class CountedStatuses(NullMetrics):
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def provider_status(self, outcome: str) -> None:
        self.outcomes.append(outcome)


async def test_a_parked_status_whose_message_never_comes_ends_unmatched_after_the_wait() -> None:
    repository, clock, metrics = InMemoryScheduleRepository(), FixedClock(NOW), CountedStatuses()
    service = DeliveryStatusService(repository, clock, wait=WAIT, metrics=metrics)
    foreign = StatusUpdate("wamid.foreign", "read", NOW)
    assert await service.apply([foreign, foreign]) == StatusReport(0, 1)
    [job] = await parked_jobs(repository)
    clock.advance(WAIT)
    outcome = await StatusRecheckHandler(service, clock).run(job)
    assert outcome.result == {"outcome": "unmatched", "message_id": "wamid.foreign", "waited_seconds": "120"}
    assert metrics.outcomes == ["parked", "ignored", "unmatched"]


async def test_without_a_wait_an_unknown_status_is_dropped_and_counted() -> None:
    metrics = CountedStatuses()
    service = DeliveryStatusService(InMemoryScheduleRepository(), FixedClock(NOW), metrics=metrics)
    assert await service.apply([StatusUpdate("wamid.foreign", "read", NOW)]) == StatusReport(0, 0)
    assert metrics.outcomes == ["dropped"]


async def test_a_failed_status_keeps_its_error_while_parked() -> None:
    repository, clock = InMemoryScheduleRepository(), FixedClock(NOW)
    service = DeliveryStatusService(repository, clock, wait=WAIT)
    failed = StatusUpdate("wamid.1", "failed", NOW, error_code="131026", error_message="Message undeliverable")
    await service.apply([failed])
    [job] = await parked_jobs(repository)
    assert (job.payload["at"], job.payload["received_at"]) == ("2030-01-15T12:05:00.123Z",) * 2
    assert StatusUpdate.from_payload(job.payload) == (failed, NOW)
    schedule = await stored(repository)
    assert (await StatusRecheckHandler(service, clock).run(job)).result["outcome"] == "recorded"
    loaded = await repository.get(schedule.id)
    assert loaded is not None and loaded.delivery["error_code"] == "131026"


def test_a_payload_parked_before_instants_were_written_with_z_still_reads() -> None:
    """Jobs parked by an earlier version hold ``isoformat()`` text (``+00:00``, microseconds)."""
    old = {"message_id": "wamid.1", "status": "read", "at": "2030-01-15T12:05:00.123000+00:00",
           "error_code": None, "error_message": None, "received_at": "2030-01-15T12:05:01+00:00",
           "schedule_id": None}
    assert StatusUpdate.from_payload(old) == (StatusUpdate("wamid.1", "read", NOW), NOW + timedelta(seconds=0.877))
