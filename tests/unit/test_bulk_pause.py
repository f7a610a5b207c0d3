"""Pausing and resuming all of a user's, or some labels', schedules at once, with the in-memory
store and a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.services.bulk import Selection
from cronjob.services.bulk_pause import pause_schedules, resume_schedules
from cronjob.services.commands import CreateScheduleCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
S = ScheduleStatus


class Rig:
    """A service over the in-memory store, with its clock."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.repository = InMemoryScheduleRepository()
        self.service = SchedulingService(self.repository, self.clock, RecordingSignal(self.clock))

    async def make(self, user: str, schedule: str = "once @ 2030-01-15T12:00:00Z",
                   labels: dict[str, str] | None = None) -> Schedule:
        created = await self.service.create(CreateScheduleCommand(
            task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Oi", "kind": "text"},
            schedule=schedule, timezone="UTC", user_id=user, labels=labels))
        return created.schedule

    async def status(self, schedule: Schedule) -> ScheduleStatus:
        stored = await self.repository.get(schedule.id)
        assert stored is not None
        return stored.status


async def test_a_user_s_waiting_schedules_are_paused_and_resumed_and_what_runs_is_reported() -> None:
    rig = Rig()
    waiting = [await rig.make("u1") for _ in range(1030)]  # more than a page
    recurring = await rig.make("u1", "every hour from 2030-01-15T10:30:00Z")
    running = await rig.make("u1", "every 10 minutes from 2030-01-15T10:00:00Z")
    sending = await rig.make("u1", "once @ 2030-01-15T10:59:00Z")
    theirs = await rig.make("u2")
    own = Schedule.create(id="own", task_type="whatsapp.status", payload={}, trigger=OnceTrigger(NOW),
                          timezone="UTC", first_run_at=NOW, now=NOW, user_id="u1")
    await rig.repository.add(own)
    rig.clock.set(NOW + timedelta(minutes=10))  # the 11:10 run of the ten-minute one is due
    claimed = await rig.repository.claim_due(now=rig.clock.now(), owner="r", lease_for=timedelta(seconds=30), limit=10,
                                             task_types=("whatsapp.text",))
    assert {s.id for s in claimed} == {running.id, sending.id}
    assert recurring.next_run_at == datetime(2030, 1, 15, 11, 30, tzinfo=UTC)

    paused = await pause_schedules(rig.service, Selection(user_id="u1"))

    assert sorted(paused.changed) == sorted([s.id for s in waiting] + [recurring.id])
    assert sorted(paused.refused) == sorted([running.id, sending.id])  # a run is not stopped
    assert all("running" in why for why in paused.refused.values())
    for schedule in [*waiting, recurring]:
        stored = await rig.repository.get(schedule.id)
        assert stored is not None and stored.status is S.PAUSED and stored.events[-1].type == "paused"
    for untouched, status in ((running, S.RUNNING), (sending, S.RUNNING), (theirs, S.SCHEDULED),
                              (own, S.SCHEDULED)):
        assert await rig.status(untouched) is status, untouched.id
    again = await pause_schedules(rig.service, Selection(user_id="u1"))  # nothing twice
    assert again.changed == [] and sorted(again.refused) == sorted([running.id, sending.id])

    rig.clock.set(NOW + timedelta(minutes=50))  # the hourly one's 11:30 fell due while paused
    resumed = await resume_schedules(rig.service, Selection(user_id="u1"))

    assert sorted(resumed.changed) == sorted([s.id for s in waiting] + [recurring.id]) and not resumed.refused
    for schedule in waiting:
        stored = await rig.repository.get(schedule.id)
        assert stored is not None and stored.status is S.SCHEDULED and stored.next_run_at == schedule.next_run_at
        assert stored.events[-1].type == "resumed"
    stored = await rig.repository.get(recurring.id)
    assert stored is not None and stored.status is S.SCHEDULED
    assert stored.next_run_at == datetime(2030, 1, 15, 12, 30, tzinfo=UTC)  # skips what fell due meanwhile
    assert (await resume_schedules(rig.service, Selection(user_id="u1"))).changed == []
    assert await rig.status(theirs) is S.SCHEDULED


async def test_labels_select_and_with_a_user_only_theirs() -> None:
    rig = Rig()
    campaign = [await rig.make(user, labels={"campaign": "bf", "kind": "promo"}) for user in ("u1", "u2")]
    other = await rig.make("u1", labels={"campaign": "xmas"})

    by_both = await pause_schedules(rig.service, Selection(user_id="u2", labels={"campaign": "bf"}))
    assert by_both.changed == [campaign[1].id]
    by_labels = await pause_schedules(rig.service, Selection(labels={"campaign": "bf", "kind": "promo"}))
    assert by_labels.changed == [campaign[0].id]
    assert await rig.status(other) is S.SCHEDULED
    assert sorted((await resume_schedules(rig.service, Selection(labels={"campaign": "bf"}))).changed) == sorted(
        s.id for s in campaign)


@pytest.mark.parametrize("act", [pause_schedules, resume_schedules])
async def test_a_selector_is_needed_and_checked(act: object) -> None:
    rig = Rig()
    await rig.make("u1")
    for nothing in ({}, {"labels": {}}, {"user_id": None, "labels": None}):
        with pytest.raises(ValidationError, match="never everyone's") as refused:
            await act(rig.service, Selection(**nothing))  # type: ignore[operator]
        assert refused.value.field == "userId"
    with pytest.raises(ValidationError) as bad:
        await act(rig.service, Selection(labels={"bad key": "1"}))  # type: ignore[operator]
    assert bad.value.field == "labels"
    assert [s.status for s in await rig.service.list()] == [S.SCHEDULED]
