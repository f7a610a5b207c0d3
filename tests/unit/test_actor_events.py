"""Who asked for a change: the events a user's command causes name its actor (``data.by``,
``data.request_id``), through the scheduling service and the bulk changes, over the in-memory
store with a hand-driven clock; the events of runs name no one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronjob.domain.actor import Actor
from cronjob.domain.message import ErrorInfo, MessageKind
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule, ScheduleEvent, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.services.bulk import Selection
from cronjob.services.bulk_cancel import cancel_schedules
from cronjob.services.bulk_pause import pause_schedules, resume_schedules
from cronjob.services.bulk_retry import retry_schedules
from cronjob.services.commands import CreateScheduleCommand, RescheduleCommand, ScheduleMessageCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
ANA = Actor(by="token:aaaaaaaaaaaa", request_id="req-ana")
BIA = Actor(by="token:bbbbbbbbbbbb", request_id="req-bia")


class Rig:
    """A service over the in-memory store, with its clock."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.repository = InMemoryScheduleRepository()
        self.service = SchedulingService(self.repository, self.clock, RecordingSignal(self.clock))

    async def make(self, actor: Actor | None, schedule: str = "once @ 2030-01-15T12:00:00Z",
                   labels: dict[str, str] | None = None) -> str:
        created = await self.service.create(CreateScheduleCommand(
            task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Oi", "kind": "text"},
            schedule=schedule, timezone="UTC", user_id="u1", labels=labels, actor=actor))
        return created.schedule.id

    async def events(self, schedule_id: str) -> list[ScheduleEvent]:
        stored = await self.repository.get(schedule_id)
        assert stored is not None
        return stored.events

    async def last(self, schedule_id: str) -> dict[str, str]:
        return (await self.events(schedule_id))[-1].data

    async def kill(self, schedule_id: str) -> None:
        """Run it once, failing for good: ``dead``, by the engine's events."""
        stored = await self.repository.get(schedule_id)
        assert stored is not None
        version = stored.updated_at
        stored.claim(owner="r", attempt_id="a1", now=self.clock.now(), until=self.clock.now() + timedelta(seconds=30))
        stored.mark_started(attempt_id="a1", now=self.clock.now())
        stored.fail(attempt_id="a1", now=self.clock.now(), error=ErrorInfo("190", "expired"),
                    decision=RetryDecision(None, "not retryable"))
        assert await self.repository.save(stored, expected_status=ScheduleStatus.SCHEDULED,
                                          expected_updated_at=version)


def named(actor: Actor) -> dict[str, str]:
    return {"by": actor.by, "request_id": str(actor.request_id)}


async def test_every_change_a_user_asks_for_names_who_asked_and_in_which_request() -> None:
    rig = Rig()
    one = await rig.make(ANA)
    assert await rig.last(one) == {"next_run_at": "2030-01-15T12:00:00.000Z", **named(ANA)}
    message = await rig.service.schedule_message(ScheduleMessageCommand(
        to="5511999999999", body="Oi", kind=MessageKind.TEXT, send_at=NOW + timedelta(hours=1),
        send_at_text="2030-01-15T12:00:00Z", timezone="UTC", actor=BIA))
    assert message.schedule.events[-1].data["by"] == BIA.by

    await rig.service.pause(one, BIA)
    assert (await rig.events(one))[-1].type == "paused" and await rig.last(one) == {
        "next_run_at": "2030-01-15T12:00:00.000Z", **named(BIA)}
    await rig.service.resume(one, ANA)
    assert await rig.last(one) == {"next_run_at": "2030-01-15T12:00:00.000Z", **named(ANA)}
    await rig.service.reschedule(RescheduleCommand(schedule_id=one, schedule="once @ 2030-01-15T13:00:00Z",
                                                   actor=BIA))
    assert await rig.last(one) == {"next_run_at": "2030-01-15T13:00:00.000Z",
                                   "rescheduled_from": "2030-01-15T12:00:00.000Z", **named(BIA)}
    await rig.service.reschedule(RescheduleCommand(schedule_id=one, labels={"k": "v"}, actor=ANA))
    assert await rig.last(one) == {"labels_changed": "true", "next_run_at": "2030-01-15T13:00:00.000Z", **named(ANA)}
    await rig.service.reschedule(RescheduleCommand(
        schedule_id=one, task_type="whatsapp.text", payload={"to": "5511999999999", "body": "Olá", "kind": "text"},
        actor=BIA))
    assert await rig.last(one) == {"task_changed": "true", "next_run_at": "2030-01-15T13:00:00.000Z", **named(BIA)}
    await rig.service.run_now(one, actor=ANA)
    assert await rig.last(one) == {"next_run_at": "2030-01-15T11:00:00.000Z",
                                   "run_now_from": "2030-01-15T13:00:00.000Z", **named(ANA)}
    await rig.service.cancel(one, BIA)
    assert (await rig.events(one))[-1].type == "cancelled" and await rig.last(one) == named(BIA)

    dead = await rig.make(None, "once @ 2030-01-15T11:00:00Z")
    await rig.kill(dead)
    engine = [e for e in await rig.events(dead) if e.type != "scheduled"]
    assert [e.type for e in engine] == ["started", "failed", "dead"]
    assert not any({"by", "request_id"} & set(e.data) for e in engine)  # a run's events name no one
    assert "by" not in (await rig.events(dead))[0].data  # nor does a creation no one is named for
    await rig.service.retry(dead, ANA)
    assert await rig.last(dead) == {"next_run_at": "2030-01-15T11:00:00.001Z", "retried_from": "dead", **named(ANA)}


async def test_a_resume_that_ends_the_schedule_names_who_asked_in_both_its_events() -> None:
    rig = Rig()
    ending = await rig.make(None, "every 10 minutes from 2030-01-15T11:05:00Z until 2030-01-15T11:20:00Z")
    await rig.service.pause(ending, ANA)
    rig.clock.set(NOW + timedelta(hours=1))
    await rig.service.resume(ending, BIA)
    resumed, missed = (await rig.events(ending))[-2:]
    assert (resumed.type, missed.type) == ("resumed", "missed")
    assert resumed.data["by"] == missed.data["by"] == BIA.by
    assert resumed.data["request_id"] == missed.data["request_id"] == "req-bia"


async def test_a_bulk_change_names_one_actor_on_every_schedule_it_changes() -> None:
    rig = Rig()
    campaign = [await rig.make(None, labels={"campaign": "c1"}) for _ in range(3)]
    selection = Selection(labels={"campaign": "c1"})

    assert len((await pause_schedules(rig.service, selection, actor=ANA)).changed) == 3
    assert [await rig.last(i) for i in campaign] == [{"next_run_at": "2030-01-15T12:00:00.000Z", **named(ANA)}] * 3
    assert len((await resume_schedules(rig.service, selection, actor=BIA)).changed) == 3
    assert {(await rig.last(i))["by"] for i in campaign} == {BIA.by}
    assert len((await cancel_schedules(rig.service, selection, actor=ANA)).cancelled) == 3
    assert [await rig.last(i) for i in campaign] == [named(ANA)] * 3

    dead = [await rig.make(None, "once @ 2030-01-15T11:00:00Z") for _ in range(2)]
    for schedule_id in dead:
        await rig.kill(schedule_id)
    assert len((await retry_schedules(rig.service, status=ScheduleStatus.DEAD, actor=BIA)).retried) == 2
    assert {tuple(sorted((await rig.last(i)).items())) for i in dead} == {
        (("by", BIA.by), ("next_run_at", "2030-01-15T11:00:00.001Z"), ("request_id", "req-bia"),
         ("retried_from", "dead"))}


def test_an_actor_without_a_request_id_names_only_who() -> None:
    schedule = Schedule.create(id="s", task_type="whatsapp.text", payload={},
                               trigger=OnceTrigger(NOW), timezone="UTC", first_run_at=NOW, now=NOW,
                               actor=Actor(by="token:cccccccccccc"))
    assert schedule.events[-1].data == {"next_run_at": "2030-01-15T11:00:00.000Z", "by": "token:cccccccccccc"}
