"""Cancelling all of a user's live schedules, with the in-memory store and a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.repository import StoreUnavailable
from cronjob.services.bulk import Selection
from cronjob.services.bulk_cancel import cancel_schedules
from cronjob.services.commands import CreateScheduleCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.app import WritesDownStore
from tests.support.clock import FixedClock
from tests.support.racing import RacingRepository
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
    waiting = [await make(service, "u1") for _ in range(3100)]  # more pages (of 1000) than passes (3)
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

    result = await cancel_schedules(service, Selection(user_id="u1"))

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

    again = await cancel_schedules(service, Selection(user_id="u1"))  # nothing twice; the one being sent still refused
    assert again.cancelled == [] and list(again.refused) == [sending.id]


async def test_a_schedule_that_changes_status_between_the_walks_is_cancelled_and_answered_once() -> None:
    """Each live status is walked in turn: a recurring schedule listed running, whose run ends
    (back to ``scheduled``, at its next occurrence) before the ``scheduled`` walk, is listed by
    both, and still cancelled once and answered once."""
    clock = FixedClock(NOW)
    repository = RacingRepository()
    service = SchedulingService(repository, clock, RecordingSignal(clock))
    recurring = await make(service, "u1", "every 10 minutes from 2030-01-15T11:10:00Z")
    waiting = await make(service, "u1")
    later = NOW + timedelta(minutes=10)
    clock.set(later)
    [running] = await repository.claim_due(now=later, owner="r", lease_for=timedelta(seconds=30), limit=10)
    assert running.id == recurring.id and running.lease is not None
    attempt_id = running.lease.attempt_id

    async def run_ends(filters: dict[str, Any]) -> bool:
        if filters["status"] is not S.RUNNING:
            return False
        running.succeed(attempt_id=attempt_id, now=later)
        assert await repository.save(running, expected_status=S.RUNNING, attempt_id=attempt_id)
        return True

    repository.between_pages = run_ends
    result = await cancel_schedules(service, Selection(user_id="u1"))

    assert repository.between_pages is None  # the run ended between the walks
    assert sorted(result.cancelled) == sorted([recurring.id, waiting.id]) and result.refused == {}
    stored = await repository.get(recurring.id)
    assert stored is not None and stored.status is S.CANCELLED
    assert [e.type for e in stored.events].count("cancelled") == 1


async def test_the_live_schedules_carrying_every_label_are_cancelled_and_with_a_user_only_theirs() -> None:
    clock = FixedClock(NOW)
    repository = InMemoryScheduleRepository()
    service = SchedulingService(repository, clock, RecordingSignal(clock))

    async def labelled(user: str, labels: dict[str, str]) -> Schedule:
        created = await service.create(CreateScheduleCommand(
            task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Oi", "kind": "text"},
            schedule="once @ 2030-01-15T12:00:00Z", timezone="UTC", user_id=user, labels=labels))
        return created.schedule

    reminders = [await labelled(user, {"order": "123", "kind": "reminder"}) for user in ("u1", "u1", "u2")]
    receipt = await labelled("u1", {"order": "123", "kind": "receipt"})
    other_order = await labelled("u1", {"order": "124", "kind": "reminder"})

    by_user_and_labels = await cancel_schedules(service, Selection(user_id="u2", labels={"order": "123"}))
    assert by_user_and_labels.cancelled == [reminders[2].id]
    by_labels = await cancel_schedules(service, Selection(labels={"kind": "reminder", "order": "123"}))
    assert sorted(by_labels.cancelled) == sorted(s.id for s in reminders[:2]) and not by_labels.refused
    for kept in (receipt, other_order):
        stored = await repository.get(kept.id)
        assert stored is not None and stored.status is S.SCHEDULED

    for nothing in ({}, {"labels": {}}, {"user_id": None, "labels": None}):
        with pytest.raises(ValidationError, match="never everyone's"):
            await cancel_schedules(service, Selection(**nothing))  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as bad:
        await cancel_schedules(service, Selection(labels={"bad key": "1"}))
    assert bad.value.field == "labels"
    assert {s.status for s in await service.list()} == {S.SCHEDULED, S.CANCELLED}


async def test_a_store_that_goes_away_mid_way_is_its_own_error_not_a_group_of_them() -> None:
    clock = FixedClock(NOW)
    repository = WritesDownStore()
    service = SchedulingService(repository, clock, RecordingSignal(clock))
    for _ in range(40):
        await make(service, "u1")
    repository.down = True
    with pytest.raises(StoreUnavailable, match="connection refused"):  # the API's 503, not a 500
        await cancel_schedules(service, Selection(user_id="u1"))
