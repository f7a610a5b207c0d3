"""Engine policies over the in-memory store: misfire, recurring occurrences, per-type limits, shutdown."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.message import DeliveryError, MessageKind
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import (
    WHATSAPP_TEMPLATE,
    WHATSAPP_TEXT,
    CreateScheduleCommand,
    ScheduleMessageCommand,
)
from cronjob.services.scheduling import ScheduleConflict, SchedulingService
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.clock import FixedClock
from tests.support.racing import RacingRepository

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
TEXT = {"to": "5511999999999", "kind": "text", "body": "Oi, {{1}}", "params": ["Ana"]}


class Rig:
    """Store, clock, service and a dispatcher, all real and in memory."""

    def __init__(self, repository: InMemoryScheduleRepository | None = None, **settings: object) -> None:
        self.clock = FixedClock(NOW)
        self.repository = repository or InMemoryScheduleRepository()
        self.sender = RecordingMessageSender()
        self.signal = InProcessWorkSignal(self.clock)
        self.service = SchedulingService(self.repository, self.clock, self.signal,
                                         parse_trigger=default_trigger_parser())
        whatsapp = WhatsAppMessageHandler(self.sender)
        self.handlers: dict[str, TaskHandler] = {WHATSAPP_TEMPLATE: whatsapp, WHATSAPP_TEXT: whatsapp}
        self.settings = settings

    def dispatcher(self, **changes: object) -> Dispatcher:
        settings = DispatcherSettings(owner="r1", **{**self.settings, **changes})  # type: ignore[arg-type]
        return Dispatcher(self.repository, self.handlers, self.clock, self.signal, settings, jitter=lambda: 1.0)

    async def one_off(self, at: datetime, **changes: object) -> Schedule:
        fields: dict[str, object] = dict(to="5511999999999", body="Oi", kind=MessageKind.TEXT, send_at=at,
                                         send_at_text=at.isoformat(), timezone="America/Sao_Paulo")
        fields.update(changes)
        return (await self.service.schedule_message(ScheduleMessageCommand(**fields))).schedule  # type: ignore[arg-type]

    async def recurring(self, rule: str, **changes: object) -> Schedule:
        command = CreateScheduleCommand(task_type=WHATSAPP_TEXT, payload=dict(TEXT), schedule=rule,
                                        timezone="America/Sao_Paulo", **changes)  # type: ignore[arg-type]
        return (await self.service.create(command)).schedule

    async def stored(self, schedule_id: str) -> Schedule:
        schedule = await self.repository.get(schedule_id)
        assert schedule is not None
        return schedule


class Gated(TaskHandler):
    """Text messages whose runs wait for ``gate``; ``running`` counts the runs that started."""

    task_type = WHATSAPP_TEXT

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running = 0

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.running += 1
        await self.gate.wait()
        return TaskOutcome(provider_message_id="wamid.1")


async def run_due(dispatcher: Dispatcher) -> int:
    claimed = await dispatcher.dispatch_due()
    await dispatcher.drain(5)
    return claimed


async def test_a_one_off_later_than_its_grace_is_missed_with_the_reason() -> None:
    rig = Rig()
    on_time = await rig.one_off(NOW + timedelta(minutes=1), misfire_grace=timedelta(minutes=10))
    late = await rig.one_off(NOW + timedelta(minutes=2), misfire_grace=timedelta(minutes=10))
    rig.clock.set(NOW + timedelta(minutes=11, seconds=30))  # 10.5 and 9.5 minutes late
    assert await run_due(rig.dispatcher()) == 2
    missed, sent = await rig.stored(on_time.id), await rig.stored(late.id)
    assert missed.status is ScheduleStatus.MISSED and sent.status is ScheduleStatus.SUCCEEDED
    assert missed.last_error is not None and missed.last_error.code == "missed"
    assert "beyond its misfire grace of 600 s" in missed.last_error.message
    assert [a.outcome for a in missed.attempts] == ["missed"]
    assert len(rig.sender.sent) == 1


async def test_one_offs_get_the_default_grace_of_one_hour() -> None:
    rig = Rig()
    schedule = await rig.one_off(NOW + timedelta(minutes=1))
    assert schedule.misfire.grace == timedelta(hours=1)
    rig.clock.set(NOW + timedelta(hours=2))
    await run_due(rig.dispatcher())
    assert (await rig.stored(schedule.id)).status is ScheduleStatus.MISSED
    assert rig.sender.sent == []


async def test_send_by_is_a_hard_deadline() -> None:
    rig = Rig()
    schedule = await rig.one_off(NOW + timedelta(minutes=1), send_by=NOW + timedelta(minutes=5),
                                 misfire_grace=timedelta(0))  # zero: always run
    rig.clock.set(NOW + timedelta(minutes=5, seconds=1))
    await run_due(rig.dispatcher())
    stored = await rig.stored(schedule.id)
    assert stored.status is ScheduleStatus.MISSED
    assert stored.last_error is not None and "send_by deadline" in stored.last_error.message


async def test_recurring_occurrences_follow_the_scheduled_time_not_the_run_time() -> None:
    rig = Rig()
    schedule = await rig.recurring("every 10 minutes")
    first = NOW + timedelta(minutes=10)
    assert schedule.next_run_at == first
    dispatcher = rig.dispatcher()
    for k in range(3):
        rig.clock.set(first + timedelta(minutes=10 * k, seconds=7))  # each run 7 s late
        assert await run_due(dispatcher) == 1
    stored = await rig.stored(schedule.id)
    assert stored.status is ScheduleStatus.SCHEDULED
    assert stored.next_run_at == first + timedelta(minutes=30)  # not drifted by the 7 s
    assert [a.scheduled_for for a in stored.attempts] == [first + timedelta(minutes=10 * k) for k in range(3)]
    keys = [m.idempotency_key for m in rig.sender.sent]
    assert len(keys) == len(set(keys)) == 3


async def test_recurring_misses_coalesce_into_one_run_by_default() -> None:
    rig = Rig()
    schedule = await rig.recurring("every 10 minutes")
    rig.clock.set(NOW + timedelta(hours=1, minutes=5))  # down for 6 occurrences
    dispatcher = rig.dispatcher()
    assert await run_due(dispatcher) == 1
    assert await run_due(dispatcher) == 0
    stored = await rig.stored(schedule.id)
    assert len(rig.sender.sent) == 1
    assert stored.next_run_at == NOW + timedelta(hours=1, minutes=10)
    # The one run stands for the latest occurrence due, as APScheduler's coalescing does: its key
    # names the period a receiver should process now, not the oldest one missed.
    assert [a.scheduled_for for a in stored.attempts] == [NOW + timedelta(hours=1)]
    assert rig.sender.sent[0].idempotency_key == f"{schedule.id}:{(NOW + timedelta(hours=1)).isoformat()}"


async def test_coalescing_runs_the_latest_occurrence_still_within_the_grace() -> None:
    rig = Rig()
    schedule = await rig.recurring("every 10 minutes", misfire_grace=timedelta(minutes=25))
    rig.clock.set(NOW + timedelta(hours=1, minutes=5))  # the oldest is 55 min late, the latest 5
    while await run_due(rig.dispatcher()):
        pass
    stored = await rig.stored(schedule.id)
    assert [(a.scheduled_for, a.outcome) for a in stored.attempts] == [(NOW + timedelta(hours=1), "succeeded")]
    assert len(rig.sender.sent) == 1 and stored.next_run_at == NOW + timedelta(hours=1, minutes=10)


async def test_coalescing_misses_once_when_even_the_latest_occurrence_is_beyond_the_grace() -> None:
    rig = Rig()
    schedule = await rig.recurring("every 10 minutes", misfire_grace=timedelta(minutes=2))
    rig.clock.set(NOW + timedelta(hours=1, minutes=5))
    while await run_due(rig.dispatcher()):
        pass
    stored = await rig.stored(schedule.id)
    assert [(a.scheduled_for, a.outcome) for a in stored.attempts] == [(NOW + timedelta(hours=1), "missed")]
    assert rig.sender.sent == [] and stored.next_run_at == NOW + timedelta(hours=1, minutes=10)


async def test_without_coalescing_each_occurrence_within_the_grace_still_runs() -> None:
    rig = Rig()
    schedule = await rig.recurring("every 10 minutes", coalesce=False, misfire_grace=timedelta(minutes=25))
    rig.clock.set(NOW + timedelta(hours=1, minutes=5))  # due: +10 .. +60; within the grace: +40, +50, +60
    while await run_due(rig.dispatcher()):
        pass
    stored = await rig.stored(schedule.id)
    at = [NOW + timedelta(minutes=m) for m in (10, 40, 50, 60)]
    assert [(a.scheduled_for, a.outcome) for a in stored.attempts] == [
        (at[0], "missed"), (at[1], "succeeded"), (at[2], "succeeded"), (at[3], "succeeded")]
    assert len(rig.sender.sent) == 3 and stored.next_run_at == NOW + timedelta(hours=1, minutes=10)


async def test_recurring_without_coalescing_runs_every_missed_occurrence() -> None:
    rig = Rig()
    schedule = await rig.recurring("every 10 minutes", coalesce=False)
    rig.clock.set(NOW + timedelta(hours=1, minutes=5))
    dispatcher = rig.dispatcher()
    while await run_due(dispatcher):
        pass
    stored = await rig.stored(schedule.id)
    assert len(rig.sender.sent) == 6
    assert stored.next_run_at == NOW + timedelta(hours=1, minutes=10)


async def test_recurring_occurrences_beyond_the_grace_are_recorded_as_missed() -> None:
    rig = Rig()
    schedule = await rig.recurring("daily at 08:00", misfire_grace=timedelta(minutes=30))
    first = schedule.next_run_at
    assert first is not None
    rig.clock.set(first + timedelta(hours=3))
    await run_due(rig.dispatcher())
    stored = await rig.stored(schedule.id)
    assert rig.sender.sent == []
    assert stored.status is ScheduleStatus.SCHEDULED and [a.outcome for a in stored.attempts] == ["missed"]
    assert stored.next_run_at == first + timedelta(days=1)


async def test_the_timer_engine_runs_a_monthly_schedule_on_its_days_and_coalesces_what_fell_due_while_down() -> None:
    rig = Rig()  # NOW is 2030-01-15 08:00 in São Paulo (-03:00)
    schedule = await rig.recurring("monthly on 1st,last at 09:00", misfire_grace=timedelta(hours=1))
    day = [datetime(2030, month, dom, 12, 0, tzinfo=UTC)
           for month, dom in ((1, 31), (2, 1), (2, 28), (3, 1), (3, 31), (4, 1), (4, 30))]
    assert schedule.next_run_at == day[0]
    engine = AsyncioTimerEngine(rig.dispatcher(), rig.repository, rig.signal, rig.clock, poll_interval=0.02,
                                drain_timeout=1)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))

    async def the_clock_reaches(moment: datetime, next_run_at: datetime) -> None:
        rig.clock.set(moment)
        async with asyncio.timeout(5):
            while (await rig.stored(schedule.id)).next_run_at != next_run_at:
                await asyncio.sleep(0.01)

    try:
        await asyncio.sleep(0.1)
        assert rig.sender.sent == []  # not due yet
        await the_clock_reaches(day[0] + timedelta(seconds=2), day[1])  # Jan 31, then Feb 1
        await the_clock_reaches(day[1] + timedelta(seconds=2), day[2])  # then February's last day, the 28th
        # Down until Mar 1 09:30: Feb 28 and Mar 1 fell due, one run as Mar 1 (within its grace).
        await the_clock_reaches(day[3] + timedelta(minutes=30), day[4])
        # Down until Apr 1 11:00: Mar 31 and Apr 1 fell due, Apr 1 two hours ago: missed, on to Apr 30.
        await the_clock_reaches(day[5] + timedelta(hours=2), day[6])
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    stored = await rig.stored(schedule.id)
    assert [(a.scheduled_for, a.outcome) for a in stored.attempts] == [
        (day[0], "succeeded"), (day[1], "succeeded"), (day[3], "succeeded"), (day[5], "missed")]
    assert [m.idempotency_key for m in rig.sender.sent] == [
        f"{schedule.id}:{at.isoformat()}" for at in (day[0], day[1], day[3])]


async def test_per_type_limits_queue_the_rest_in_the_store() -> None:
    rig = Rig(max_in_flight=10)
    rig.handlers[WHATSAPP_TEXT] = slow = Gated()
    texts = [await rig.one_off(NOW + timedelta(seconds=i)) for i in range(5)]
    templates = [await rig.one_off(NOW + timedelta(seconds=10 + i), kind=MessageKind.TEMPLATE,
                                   template_name="t") for i in range(3)]
    rig.clock.set(NOW + timedelta(minutes=1))
    dispatcher = rig.dispatcher(type_limits={WHATSAPP_TEXT: 2})
    assert await dispatcher.dispatch_due() == 5  # 2 texts (their limit) + 3 templates
    await asyncio.sleep(0.01)
    assert slow.running == 2 and dispatcher.types_at_limit
    assert await dispatcher.dispatch_due() == 0
    waiting = await rig.repository.list(status=ScheduleStatus.SCHEDULED)
    assert sorted(s.id for s in waiting) == sorted(s.id for s in texts[2:])
    assert [(await rig.stored(t.id)).status for t in templates] == [ScheduleStatus.SUCCEEDED] * 3
    slow.gate.set()
    await dispatcher.drain(5)
    while await run_due(dispatcher):
        pass
    assert slow.running == 5


async def test_shutdown_lets_short_runs_finish_and_releases_the_rest() -> None:
    rig = Rig()
    never = asyncio.Event()

    class Stuck(TaskHandler):
        task_type = WHATSAPP_TEXT

        async def run(self, schedule: Schedule) -> TaskOutcome:
            if schedule.payload["body"] == "stuck":
                await never.wait()
            return TaskOutcome(provider_message_id="done")

    rig.handlers[WHATSAPP_TEXT] = Stuck()
    quick = await rig.one_off(NOW)
    stuck = await rig.one_off(NOW, body="stuck")
    dispatcher = rig.dispatcher()
    engine = AsyncioTimerEngine(dispatcher, rig.repository, rig.signal, rig.clock, poll_interval=0.05,
                                drain_timeout=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await rig.stored(quick.id)).status is ScheduleStatus.SUCCEEDED
    released = await rig.stored(stuck.id)
    assert released.status is ScheduleStatus.SCHEDULED and released.lease is None
    assert released.next_run_at == NOW and released.attempts == []  # due again at once, for anyone


async def test_a_recurring_schedule_can_be_cancelled_while_it_runs_a_one_off_cannot() -> None:
    rig = Rig()
    rig.handlers[WHATSAPP_TEXT] = gated = Gated()
    recurring = await rig.recurring("every 10 minutes")
    one_off = await rig.one_off(NOW + timedelta(minutes=10))
    rig.clock.set(NOW + timedelta(minutes=10))
    dispatcher = rig.dispatcher()
    assert await dispatcher.dispatch_due() == 2
    await asyncio.sleep(0)  # both runs are in progress
    assert (await rig.stored(recurring.id)).status is ScheduleStatus.RUNNING
    cancelled = await rig.service.cancel(recurring.id)
    assert cancelled.status is ScheduleStatus.CANCELLED
    with pytest.raises(ScheduleConflict, match="running and can no longer be cancelled"):
        await rig.service.cancel(one_off.id)
    gated.gate.set()
    await dispatcher.drain(5)
    stored = await rig.stored(recurring.id)
    assert (stored.status, stored.next_run_at, stored.lease) == (ScheduleStatus.CANCELLED, None, None)
    # The run's own write was fenced out (the cancel took its lease); its record is kept by the
    # cancelled schedule all the same (Schedule.keep_run), its outcome marked after_cancel.
    assert [(a.outcome, a.provider_message_id) for a in stored.attempts] == [("succeeded", "wamid.1")]
    assert [e.data.get("after_cancel") for e in stored.events if e.type == "succeeded"] == ["true"]
    assert (await rig.stored(one_off.id)).status is ScheduleStatus.SUCCEEDED
    rig.clock.set(NOW + timedelta(hours=1))
    assert await run_due(dispatcher) == 0  # no later occurrence


async def test_a_cancel_that_races_the_end_of_a_run_reads_again_and_cancels() -> None:
    """The run ends (and its next occurrence is stored) between the cancel's read and its write:
    the write, conditional on what was read, fails; the cancel reads again and succeeds."""

    rig = Rig(repository=(store := RacingRepository()))
    rig.handlers[WHATSAPP_TEXT] = gated = Gated()
    recurring = await rig.recurring("every 10 minutes")
    rig.clock.set(NOW + timedelta(minutes=10))
    dispatcher = rig.dispatcher()
    assert await dispatcher.dispatch_due() == 1

    async def the_run_ends() -> None:
        gated.gate.set()
        await dispatcher.drain(5)
        assert (await rig.stored(recurring.id)).status is ScheduleStatus.SCHEDULED

    store.race = the_run_ends
    assert (await rig.service.cancel(recurring.id)).status is ScheduleStatus.CANCELLED
    stored = await rig.stored(recurring.id)
    assert stored.status is ScheduleStatus.CANCELLED and store.race is None
    assert [a.outcome for a in stored.attempts] == ["succeeded"]  # the run ended first: it is kept


@pytest.mark.parametrize("rule", ["every 0 minutes", "at noon", "cron 61 * * * *", "once @ 2030-13-01 10:00"])
async def test_bad_rules_are_refused_before_anything_is_stored(rule: str) -> None:
    from cronjob.domain.errors import ValidationError

    rig = Rig()
    with pytest.raises(ValidationError) as error:
        await rig.recurring(rule)
    assert error.value.field == "schedule"
    assert await rig.repository.count_by_status() == {}


async def test_a_paused_schedule_is_not_run_until_resumed() -> None:
    rig = Rig()
    one_off = await rig.one_off(NOW + timedelta(minutes=1))
    recurring = await rig.recurring("every 10 minutes")
    first = (await rig.stored(recurring.id)).next_run_at
    assert first is not None
    assert (await rig.service.pause(one_off.id)).status is ScheduleStatus.PAUSED
    assert (await rig.service.pause(recurring.id)).status is ScheduleStatus.PAUSED
    again = await rig.service.pause(recurring.id)  # pausing a paused one changes nothing
    assert again.status is ScheduleStatus.PAUSED and [e.type for e in again.events].count("paused") == 1
    rig.clock.set(first + timedelta(minutes=25))  # the one-off and two occurrences fall due meanwhile
    dispatcher = rig.dispatcher()
    assert await run_due(dispatcher) == 0 and rig.sender.sent == []

    resumed = await rig.service.resume(recurring.id)
    assert resumed.status is ScheduleStatus.SCHEDULED
    assert resumed.next_run_at == resumed.occurrence == first + timedelta(minutes=30)  # nothing made up
    assert resumed.events[-1].data["skipped_from"] == "2030-01-15T11:10:00.000Z" and first == NOW + timedelta(minutes=10)
    assert (await rig.service.resume(one_off.id)).next_run_at == NOW + timedelta(minutes=1)
    assert await run_due(dispatcher) == 1  # the one-off, late but within its hour of grace
    assert (await rig.stored(one_off.id)).status is ScheduleStatus.SUCCEEDED and len(rig.sender.sent) == 1
    rig.clock.set(first + timedelta(minutes=30))
    assert await run_due(dispatcher) == 1
    assert len(rig.sender.sent) == 2
    assert (await rig.service.resume(recurring.id)).status is ScheduleStatus.SCHEDULED  # not paused: as it is
    with pytest.raises(ScheduleConflict, match="succeeded; only a paused one can be resumed"):
        await rig.service.resume(one_off.id)


async def test_a_resumed_one_off_past_its_grace_is_missed() -> None:
    rig = Rig()
    schedule = await rig.one_off(NOW + timedelta(minutes=1), misfire_grace=timedelta(minutes=5))
    await rig.service.pause(schedule.id)
    rig.clock.set(NOW + timedelta(minutes=30))
    await rig.service.resume(schedule.id)
    assert await run_due(rig.dispatcher()) == 1
    stored = await rig.stored(schedule.id)
    assert stored.status is ScheduleStatus.MISSED and rig.sender.sent == []
    assert stored.last_error is not None and "misfire grace of 300 s" in stored.last_error.message


async def test_a_running_or_ended_schedule_is_not_paused() -> None:
    rig = Rig()
    rig.handlers[WHATSAPP_TEXT] = gated = Gated()
    recurring = await rig.recurring("every 10 minutes")
    rig.clock.set(NOW + timedelta(minutes=10))
    dispatcher = rig.dispatcher()
    assert await dispatcher.dispatch_due() == 1
    with pytest.raises(ScheduleConflict, match="running; only a scheduled one can be paused .*once the run has ended"):
        await rig.service.pause(recurring.id)
    gated.gate.set()
    await dispatcher.drain(5)
    assert (await rig.service.pause(recurring.id)).status is ScheduleStatus.PAUSED  # once it ended
    cancelled = await rig.service.cancel(recurring.id)  # a paused schedule can be cancelled
    assert cancelled.status is ScheduleStatus.CANCELLED and cancelled.next_run_at is None
    with pytest.raises(ScheduleConflict, match="cancelled; only a scheduled one can be paused"):
        await rig.service.pause(recurring.id)


async def test_a_pause_that_races_a_claim_is_a_conflict_and_the_run_goes_on() -> None:
    """A replica claims the schedule between the pause's read and its write: the write,
    conditional on what was read, fails; read again, it runs: 409, and the run is not disturbed."""

    rig = Rig(repository=(store := RacingRepository()))
    schedule = await rig.one_off(NOW)
    dispatcher = rig.dispatcher()

    async def claimed() -> None:
        assert await dispatcher.dispatch_due() == 1

    store.race = claimed
    with pytest.raises(ScheduleConflict, match="running"):
        await rig.service.pause(schedule.id)
    await dispatcher.drain(5)
    stored = await rig.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED and "paused" not in [e.type for e in stored.events]
    assert len(rig.sender.sent) == 1


class Refused(TaskHandler):
    """Text messages refused for good while ``failing``, sent otherwise."""

    task_type = WHATSAPP_TEXT

    def __init__(self) -> None:
        self.failing = True

    async def run(self, schedule: Schedule) -> TaskOutcome:
        if self.failing:
            raise DeliveryError("131026", "message undeliverable", retryable=False)
        return TaskOutcome(provider_message_id="wamid.ok")


async def test_a_recurring_schedule_is_paused_after_so_many_dead_occurrences_in_a_row() -> None:
    rig = Rig()
    rig.handlers[WHATSAPP_TEXT] = handler = Refused()
    schedule = await rig.recurring("every 10 minutes", pause_after_failures=2)
    first = schedule.next_run_at
    assert first is not None
    dispatcher = rig.dispatcher()
    for n in (1, 2):
        rig.clock.set(first + (n - 1) * timedelta(minutes=10))
        assert await run_due(dispatcher) == 1
        assert (await rig.stored(schedule.id)).failed_in_a_row == n
    paused = await rig.stored(schedule.id)
    assert paused.status is ScheduleStatus.PAUSED and paused.next_run_at == first + timedelta(minutes=20)
    assert [e.type for e in paused.events[-3:]] == ["failed", "dead", "paused"]
    assert paused.events[-1].data["reason"] == "2 occurrences in a row ended dead (pause_after_failures 2)"
    rig.clock.set(first + timedelta(minutes=45))
    assert await run_due(dispatcher) == 0  # held until a user resumes it

    handler.failing = False
    resumed = await rig.service.resume(schedule.id)
    assert (resumed.failed_in_a_row, resumed.next_run_at) == (0, first + timedelta(minutes=50))
    rig.clock.set(first + timedelta(minutes=50))
    assert await run_due(dispatcher) == 1
    handler.failing = True
    rig.clock.set(first + timedelta(minutes=60))
    assert await run_due(dispatcher) == 1  # one dead occurrence: counted, not yet paused
    stored = await rig.stored(schedule.id)
    assert (stored.status, stored.failed_in_a_row) == (ScheduleStatus.SCHEDULED, 1)
    handler.failing = False
    rig.clock.set(first + timedelta(minutes=70))
    assert await run_due(dispatcher) == 1
    assert (await rig.stored(schedule.id)).failed_in_a_row == 0  # a success starts the count afresh


class RefusedLate(Refused):
    """Refused for good after a run that lasted ``lasting`` on ``clock``."""

    def __init__(self, clock: FixedClock, lasting: timedelta) -> None:
        super().__init__()
        self.clock, self.lasting = clock, lasting

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.clock.advance(self.lasting)
        return await super().run(schedule)


async def test_a_dead_occurrence_of_a_recurring_schedule_says_when_it_runs_next() -> None:
    rig = Rig()
    rig.handlers[WHATSAPP_TEXT] = RefusedLate(rig.clock, timedelta(minutes=15))
    schedule = await rig.recurring("every 10 minutes")
    first = schedule.next_run_at
    assert first == datetime(2030, 1, 15, 11, 10, tzinfo=UTC)
    rig.clock.set(first)
    assert await run_due(rig.dispatcher()) == 1  # ends at 11:25: 11:20 fell due meanwhile, coalesced

    stored = await rig.stored(schedule.id)
    dead = stored.events[-1]
    assert (stored.status, dead.type) == (ScheduleStatus.SCHEDULED, "dead")
    assert stored.next_run_at == datetime(2030, 1, 15, 11, 30, tzinfo=UTC)
    assert dead.data == {"reason": "permanent error", "code": "131026", "message": "message undeliverable",
                         "next_run_at": "2030-01-15T11:30:00.000Z"}

    # A one-off that dies has no next run, and says none.
    rig.handlers[WHATSAPP_TEXT] = Refused()
    one_off = await rig.one_off(rig.clock.now())
    assert await run_due(rig.dispatcher()) == 1
    ended = await rig.stored(one_off.id)
    assert ended.status is ScheduleStatus.DEAD and "next_run_at" not in ended.events[-1].data


async def test_pause_after_failures_is_for_recurring_schedules() -> None:
    from cronjob.domain.errors import ValidationError

    rig = Rig()
    with pytest.raises(ValidationError, match="recurring") as refused:
        await rig.recurring("once @ 2030-01-15 12:00", pause_after_failures=3)
    assert refused.value.field == "pause_after_failures"
    with pytest.raises(ValidationError, match="at least 1"):
        await rig.recurring("every 10 minutes", pause_after_failures=0)
    assert await rig.service.list(limit=10) == []


async def test_run_now_runs_a_recurring_schedule_once_more_and_keeps_its_rule() -> None:
    rig = Rig()
    recurring = await rig.recurring("every 10 minutes")
    one_off = await rig.one_off(NOW + timedelta(hours=3))
    first = recurring.next_run_at
    assert first == NOW + timedelta(minutes=10)
    rig.clock.set(NOW + timedelta(minutes=2))
    ran = await rig.service.run_now(recurring.id)
    assert ran.next_run_at == ran.occurrence == NOW + timedelta(minutes=2)
    assert ran.events[-1].data["run_now_from"] == "2030-01-15T11:10:00.000Z"
    assert (await rig.service.run_now(recurring.id)).updated_at == ran.updated_at  # due already: as it is
    await rig.service.run_now(one_off.id)
    dispatcher = rig.dispatcher()
    assert await run_due(dispatcher) == 2 and len(rig.sender.sent) == 2
    assert (await rig.stored(one_off.id)).status is ScheduleStatus.SUCCEEDED
    stored = await rig.stored(recurring.id)
    assert stored.status is ScheduleStatus.SCHEDULED and stored.next_run_at == first  # the rule goes on
    rig.clock.set(first)
    assert await run_due(dispatcher) == 1
    keys = [message.idempotency_key for message in rig.sender.sent]
    assert len(set(keys)) == 3  # each run its own occurrence
    await rig.service.pause(recurring.id)
    with pytest.raises(ScheduleConflict, match="paused; only a scheduled one can be run now"):
        await rig.service.run_now(recurring.id)


class SlowClaims(InMemoryScheduleRepository):
    """The in-memory store whose claims are answered ``delay`` later by ``clock`` (a store
    coming back from an outage: the claim was made, its answer took that long)."""

    def __init__(self, clock: FixedClock, delay: timedelta) -> None:
        super().__init__()
        self._clock = clock
        self._delay = delay

    async def claim_due(self, **kwargs: Any) -> list[Schedule]:
        claimed = await super().claim_due(**kwargs)
        if claimed:
            self._clock.advance(self._delay)
        return claimed


async def test_a_run_claimed_slowly_starts_after_the_occurrence_it_runs_as() -> None:
    """A claim answered 30 s late (a store coming back from an outage): the run coalesces the
    occurrences due when it begins and runs once, as the latest of them, and its attempt says it
    started when it began, not when it was claimed (before that occurrence was due)."""
    clock = FixedClock(NOW)
    rig = Rig(SlowClaims(clock, timedelta(seconds=30)))
    rig.clock = clock
    rig.service = SchedulingService(rig.repository, clock, rig.signal, parse_trigger=default_trigger_parser())
    schedule = await rig.recurring("every 10 seconds")
    first = schedule.next_run_at
    assert first is not None
    clock.set(first + timedelta(seconds=1))
    assert await run_due(rig.dispatcher()) == 1
    stored = await rig.stored(schedule.id)
    [attempt] = stored.attempts
    began = first + timedelta(seconds=31)
    assert attempt.scheduled_for == first + timedelta(seconds=30) <= attempt.started_at == began
    assert [e.at for e in stored.events if e.type == "started"] == [began]
    assert len(rig.sender.sent) == 1
    assert stored.next_run_at == first + timedelta(seconds=40)
