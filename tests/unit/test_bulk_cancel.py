"""Cancelling all of a user's live schedules, with the in-memory store and a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.services.bulk_cancel import cancel_user_schedules
from cronjob.services.scheduling import CreateScheduleCommand, SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
S = ScheduleStatus


async def make(service: SchedulingService, user: str, schedule: str = "once @ 2030-01-15T12:00:00Z") -> Schedule:
    created = await service.create(CreateScheduleCommand(
        task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Oi", "kind": "text"},
        schedule=schedule, timezone="UTC", user_id=user))
    return created.schedule


async def test_every_live_schedule_of_the_user_is_cancelled_and_nothing_else() -> None:
    clock = FixedClock(NOW)
    repository = InMemoryScheduleRepository()
    service = SchedulingService(repository, clock, RecordingSignal(clock))
    waiting = [await make(service, "u1") for _ in range(330)]  # more pages than passes
    paused = await make(service, "u1")
    await service.pause(paused.id)
    recurring = await make(service, "u1", "every 10 minutes from 2030-01-15T10:00:00Z")
    sending = await make(service, "u1", "once @ 2030-01-15T10:59:00Z")
    sent = await make(service, "u1", "once @ 2030-01-15T10:58:00Z")
    others = await make(service, "u2")
    nobody = await make(service, "")
    own = Schedule.create(id="own", task_type="whatsapp.status", payload={}, trigger=OnceTrigger(NOW),
                          timezone="UTC", first_run_at=NOW, now=NOW, user_id="u1")
    await repository.add(own)
    later = NOW + timedelta(minutes=10)  # the recurring one's first run is due
    clock.set(later)
    claimed = await repository.claim_due(now=later, owner="r", lease_for=timedelta(seconds=30), limit=10,
                                         task_types=("whatsapp.text",))
    assert {s.id for s in claimed} == {recurring.id, sending.id, sent.id}
    done = next(s for s in claimed if s.id == sent.id)
    assert done.lease is not None
    attempt_id = done.lease.attempt_id
    done.succeed(attempt_id=attempt_id, now=later)
    assert await repository.save(done, expected_status=S.RUNNING, attempt_id=attempt_id)

    result = await cancel_user_schedules(service, "u1")

    assert sorted(result.cancelled) == sorted([s.id for s in waiting] + [paused.id, recurring.id])
    assert list(result.refused) == [sending.id]  # a one-off being sent cannot be stopped
    assert "running and can no longer be cancelled" in result.refused[sending.id]
    for schedule_id in result.cancelled:
        stored = await repository.get(schedule_id)
        assert stored is not None and stored.status is S.CANCELLED
        assert stored.events[-1].type == "cancelled"
    for untouched, status in ((sending, S.RUNNING), (sent, S.SUCCEEDED), (others, S.SCHEDULED),
                              (nobody, S.SCHEDULED), (own, S.SCHEDULED)):
        stored = await repository.get(untouched.id)
        assert stored is not None and stored.status is status, untouched.id

    again = await cancel_user_schedules(service, "u1")  # nothing twice; the one being sent still refused
    assert again.cancelled == [] and list(again.refused) == [sending.id]
