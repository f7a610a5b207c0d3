"""Dispatcher with the in-memory store, the recording sender and the WhatsApp handler."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.message import (
    DeliveryError,
    DeliveryOutcomeUnknown,
    MessageKind,
    OutboundMessage,
)
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.clock import SystemClock
from cronjob.ports.metrics import NullMetrics
from cronjob.ports.repository import StoreUnavailable
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import (
    WHATSAPP_TEMPLATE,
    WHATSAPP_TEXT,
    CreateScheduleCommand,
    RescheduleCommand,
    ScheduleMessageCommand,
)
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.observability.logs import JsonFormatter
from tests.support.clock import FixedClock
from tests.support.racing import RacingRepository
from tests.support.waiting import PROMPTLY, until

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
DUE = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
SEED_BODY = "Olá, {{1}}! Seu pedido será entregue em {{2}}."
RENDERED = "Olá, Leandro! Seu pedido será entregue em 2 dias úteis."
LEASE = timedelta(seconds=30)


class BlockingHandler(TaskHandler):
    """Runs until the test opens ``gate``; counts how many runs are in progress at once."""

    task_type = "test.blocking"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.active = 0
        self.max_active = 0

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.started.append(schedule.id)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.gate.wait()
        finally:
            self.active -= 1
        self.finished.append(schedule.id)
        return TaskOutcome(provider_message_id=f"done.{schedule.id}", result={"wamid": f"done.{schedule.id}"})


class ExplodingHandler(TaskHandler):
    """A handler with a bug."""

    task_type = "test.exploding"

    async def run(self, schedule: Schedule) -> TaskOutcome:
        raise RuntimeError("boom")


class SaveFailsRepository(InMemoryScheduleRepository):
    """The in-memory store, down for the first ``failures`` saves."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def save(self, schedule: Schedule, *, expected_status: ScheduleStatus,
                   attempt_id: str | None = None) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("store down")
        return await super().save(schedule, expected_status=expected_status, attempt_id=attempt_id)


@dataclass
class World:
    clock: FixedClock = field(default_factory=lambda: FixedClock(NOW))
    repository: InMemoryScheduleRepository = field(default_factory=InMemoryScheduleRepository)
    sender: RecordingMessageSender = field(default_factory=RecordingMessageSender)

    def __post_init__(self) -> None:
        self.signal = InProcessWorkSignal(self.clock)
        self.service = SchedulingService(self.repository, self.clock, self.signal)
        whatsapp = WhatsAppMessageHandler(self.sender)
        self.handlers: dict[str, TaskHandler] = {WHATSAPP_TEMPLATE: whatsapp, WHATSAPP_TEXT: whatsapp}

    def dispatcher(self, handlers: dict[str, TaskHandler] | None = None, **settings: object) -> Dispatcher:
        return Dispatcher(self.repository, self.handlers if handlers is None else handlers, self.clock,
                          self.signal, DispatcherSettings(owner="replica-a", lease_for=LEASE, **settings),  # type: ignore[arg-type]
                          jitter=lambda: 1.0)

    async def schedule(self, at: datetime = DUE, **changes: object) -> Schedule:
        fields: dict[str, object] = dict(
            to="5511999999999", body=SEED_BODY, kind=MessageKind.TEMPLATE, send_at=at,
            send_at_text=at.isoformat(), timezone="America/Sao_Paulo", params=("Leandro", "2 dias úteis"),
            template_name="pedido_entrega", language="pt_BR")
        fields.update(changes)
        return (await self.service.schedule_message(ScheduleMessageCommand(**fields))).schedule  # type: ignore[arg-type]

    async def stored(self, schedule_id: str) -> Schedule:
        schedule = await self.repository.get(schedule_id)
        assert schedule is not None
        return schedule


async def run_due(dispatcher: Dispatcher) -> int:
    """Claim what is due and wait for those runs to finish."""
    claimed = await dispatcher.dispatch_due()
    await dispatcher.drain(5)
    assert dispatcher.in_flight == 0
    return claimed


async def blocked_run(world: World) -> tuple[Dispatcher, BlockingHandler, Schedule]:
    """A dispatcher whose run of one schedule due at DUE has started and waits for ``gate``."""
    blocking = BlockingHandler()
    dispatcher = world.dispatcher(handlers={WHATSAPP_TEMPLATE: blocking})
    schedule = await world.schedule()
    world.clock.set(DUE)
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: blocking.started == [schedule.id])
    return dispatcher, blocking, schedule


@pytest.fixture
def world() -> World:
    return World()


async def test_a_due_message_is_sent_once_and_succeeds(world: World) -> None:
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE)
    assert await run_due(dispatcher) == 1
    assert world.sender.sent == [
        OutboundMessage(
            to="5511999999999",
            kind=MessageKind.TEMPLATE,
            body=RENDERED,
            idempotency_key=f"{schedule.id}:{DUE.isoformat()}",
            template_name="pedido_entrega",
            language="pt_BR",
            params=("Leandro", "2 dias úteis"),
        )
    ]
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED
    assert stored.result["wamid"] == "wamid.fake.1"
    assert stored.lease is None and stored.next_run_at is None and stored.last_error is None
    [attempt] = stored.attempts
    assert (attempt.number, attempt.outcome, attempt.owner) == (1, "succeeded", "replica-a")
    assert attempt.provider_message_id == "wamid.fake.1"
    assert attempt.scheduled_for == DUE and attempt.started_at == attempt.finished_at == DUE
    # Nothing more to do, even much later.
    world.clock.advance(timedelta(days=1))
    assert await run_due(dispatcher) == 0
    assert len(world.sender.sent) == 1


async def test_work_that_is_not_due_is_not_claimed(world: World) -> None:
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE - timedelta(milliseconds=1))
    assert await run_due(dispatcher) == 0
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SCHEDULED and stored.lease is None
    assert world.sender.sent == []


async def test_a_retryable_error_reschedules_with_backoff(world: World) -> None:
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE)
    world.sender.fail_with(DeliveryError("131056", "pair rate limit hit", retryable=True, http_status=429))
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SCHEDULED
    assert stored.next_run_at == DUE + timedelta(seconds=10)  # default policy, first retry, no jitter
    assert stored.next_run_at > world.clock.now()
    assert stored.lease is None
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "retrying")]
    assert stored.last_error is not None
    assert (stored.last_error.code, stored.last_error.retryable) == ("131056", True)
    assert world.sender.sent == []

    # Not before the backoff ends...
    world.clock.set(DUE + timedelta(seconds=9))
    assert await run_due(dispatcher) == 0
    # ...then the same occurrence is sent, with the same delivery key.
    world.clock.set(DUE + timedelta(seconds=10))
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "retrying"), (2, "succeeded")]
    assert [m.idempotency_key for m in world.sender.sent] == [f"{schedule.id}:{DUE.isoformat()}"]
    assert stored.last_error is None


async def test_a_provider_retry_after_is_honoured(world: World) -> None:
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE)
    world.sender.fail_with(DeliveryError("http_429", "slow down", retryable=True, retry_after_seconds=120))
    await run_due(dispatcher)
    assert (await world.stored(schedule.id)).next_run_at == DUE + timedelta(seconds=120)


async def test_a_permanent_error_fails_the_schedule(world: World) -> None:
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE)
    world.sender.fail_with(DeliveryError("132001", "template name does not exist", retryable=False))
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.DEAD
    assert stored.last_error is not None
    assert (stored.last_error.code, stored.last_error.message) == ("132001", "template name does not exist")
    assert stored.next_run_at is None and stored.lease is None
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "failed")]
    world.clock.advance(timedelta(days=1))
    assert await run_due(dispatcher) == 0
    assert world.sender.sent == []


async def test_exhausting_max_attempts_fails_the_schedule(world: World) -> None:
    dispatcher = world.dispatcher()
    policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=1), max_delay=timedelta(seconds=60))
    schedule = await world.schedule(retry=policy)
    world.sender.fail_with(*(DeliveryError("http_503", "unavailable", retryable=True) for _ in range(3)))
    world.clock.set(DUE)
    next_runs: list[datetime | None] = []
    for _ in range(3):
        assert await run_due(dispatcher) == 1
        stored = await world.stored(schedule.id)
        next_runs.append(stored.next_run_at)
        world.clock.advance(timedelta(minutes=5))
    assert next_runs == [DUE + timedelta(seconds=1), DUE + timedelta(minutes=5, seconds=2), None]
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.DEAD
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "retrying"), (2, "retrying"), (3, "failed")]
    assert stored.last_error is not None and stored.last_error.code == "http_503"
    assert await run_due(dispatcher) == 0
    assert world.sender.sent == []


async def test_the_dispatcher_default_policy_applies_without_a_schedule_policy(world: World) -> None:
    dispatcher = world.dispatcher(default_retry=RetryPolicy(max_attempts=1))
    schedule = await world.schedule()
    world.clock.set(DUE)
    world.sender.fail_with(DeliveryError("http_503", "unavailable", retryable=True))
    await run_due(dispatcher)
    assert (await world.stored(schedule.id)).status is ScheduleStatus.DEAD


async def test_an_unknown_outcome_is_parked_and_not_sent_again(world: World) -> None:
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE)
    world.sender.fail_with(DeliveryOutcomeUnknown("timed out after the request was written"))
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.UNKNOWN
    assert stored.last_error is not None and stored.last_error.code == "outcome_unknown"
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "unknown")]
    assert stored.next_run_at is None
    world.clock.advance(timedelta(days=2))
    assert await run_due(dispatcher) == 0
    assert world.sender.sent == []
    assert (await world.stored(schedule.id)).status is ScheduleStatus.UNKNOWN


async def test_an_unknown_task_type_fails(world: World) -> None:
    dispatcher = world.dispatcher(handlers={WHATSAPP_TEMPLATE: WhatsAppMessageHandler(world.sender)})
    schedule = await world.schedule(kind=MessageKind.TEXT, template_name=None)
    assert schedule.task_type == WHATSAPP_TEXT
    world.clock.set(DUE)
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.DEAD
    assert stored.last_error is not None and stored.last_error.code == "unknown_task_type"
    assert world.sender.sent == []


async def test_a_crashing_handler_is_retried_under_the_policy(world: World) -> None:
    dispatcher = world.dispatcher(handlers={WHATSAPP_TEMPLATE: ExplodingHandler()})
    schedule = await world.schedule()
    world.clock.set(DUE)
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SCHEDULED
    assert stored.last_error is not None and stored.last_error.code == "internal_error"
    assert "boom" in stored.last_error.message


async def test_a_store_outage_while_recording_is_retried(world: World) -> None:
    world.repository = SaveFailsRepository(failures=1)
    world.__post_init__()
    dispatcher = world.dispatcher()
    schedule = await world.schedule()
    world.clock.set(DUE)
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED
    assert world.repository.failures == 0
    assert len(world.sender.sent) == 1


class OutageRepository(InMemoryScheduleRepository):
    """The in-memory store, refusing every write of a run (outcome and lease renewal) while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("database or disk is full")

    async def save(self, schedule: Schedule, **conditions: Any) -> bool:
        self._check()
        return await super().save(schedule, **conditions)

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        self._check()
        return await super().renew_lease(schedule_id, attempt_id, until)


class OutageAtFinish(TaskHandler):
    """Sends as the WhatsApp handler does, and the store goes down as it finishes."""

    def __init__(self, inner: TaskHandler, repository: OutageRepository) -> None:
        self.inner, self.repository = inner, repository

    async def run(self, schedule: Schedule) -> TaskOutcome:
        outcome = await self.inner.run(schedule)
        self.repository.down = True
        return outcome


async def test_an_outage_past_the_save_attempts_but_within_the_lease_loses_no_outcome(world: World) -> None:
    # Giving up after a few tries would leave the run to be claimed again once its lease lapses,
    # and the message sent twice, although the store came back long before.
    world.repository = repository = OutageRepository()
    world.__post_init__()
    dispatcher = world.dispatcher(handlers={WHATSAPP_TEMPLATE: OutageAtFinish(world.handlers[WHATSAPP_TEMPLATE],
                                                                              repository)},
                                  save_attempts=3, save_retry=(0.02, 0.05))
    schedule = await world.schedule()
    world.clock.set(DUE)
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: repository.refused >= 10, PROMPTLY)  # many more tries than save_attempts
    repository.down = False
    await dispatcher.drain(5)
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED and stored.lease is None
    assert len(world.sender.sent) == 1


async def test_an_outcome_still_not_written_when_the_lease_lapses_is_given_up(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.repository = repository = OutageRepository()
    world.__post_init__()
    lease = timedelta(seconds=0.6)
    dispatcher = Dispatcher(world.repository, {WHATSAPP_TEMPLATE: OutageAtFinish(world.handlers[WHATSAPP_TEMPLATE],
                                                                                 repository)},
                            world.clock, world.signal,
                            DispatcherSettings(owner="replica-a", lease_for=lease, save_attempts=2,
                                               save_retry=(0.02, 0.05)), jitter=lambda: 1.0)
    schedule = await world.schedule()
    world.clock.set(DUE)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING):
        assert await dispatcher.dispatch_due() == 1
        await dispatcher.drain(5)
    given_up_after = loop.time() - started
    assert lease.total_seconds() - 0.1 <= given_up_after < lease.total_seconds() + 1.0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]  # an outage, not a bug
    given_up = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    # One line when the write is first refused, one when it is given up: not one per try.
    assert repository.refused > 3
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "-> succeeded" in r.getMessage()]
    assert len(said) == 2 and said[0].endswith("-> succeeded: the store is unavailable (StoreUnavailable: database or"
                                                " disk is full); writing it again until its lease lapses"), said
    assert given_up == [f"schedule {schedule.id} attempt {(await world.stored(schedule.id)).lease.attempt_id}"  # type: ignore[union-attr]
                        " -> succeeded not recorded: the store is unavailable (StoreUnavailable: database or disk"
                        " is full); it runs again once its lease lapses"]
    assert (await world.stored(schedule.id)).status is ScheduleStatus.RUNNING  # claimable once the lease lapses


class CountingMetrics(NullMetrics):
    """Keeps the finished attempts it is told of."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, str]] = []

    def attempt_finished(self, task_type: str, outcome: str, code: str | None) -> None:
        self.finished.append((task_type, outcome))


class AnswerLostRepository(InMemoryScheduleRepository):
    """The in-memory store whose first save is written but whose answer is lost (the store went
    away mid-reply): the caller sees an error, the write stands."""

    lost = 1

    async def save(self, schedule: Schedule, **conditions: Any) -> bool:
        written = await super().save(schedule, **conditions)
        if self.lost > 0:
            self.lost -= 1
            raise StoreUnavailable("connection reset while reading the reply")
        return written


async def test_a_write_whose_answer_was_lost_counts_as_written(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.repository = AnswerLostRepository()
    world.__post_init__()
    metrics = CountingMetrics()
    dispatcher = Dispatcher(world.repository, world.handlers, world.clock, world.signal,
                            DispatcherSettings(owner="replica-a", lease_for=LEASE), jitter=lambda: 1.0,
                            metrics=metrics)
    schedule = await world.schedule()
    world.clock.set(DUE)
    with caplog.at_level(logging.INFO):
        assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED and world.repository.lost == 0
    messages = [r.getMessage() for r in caplog.records]
    assert not any("lost its lease" in m for m in messages), messages  # no false alarm
    assert any(m.endswith("-> succeeded") for m in messages), messages
    assert metrics.finished == [("whatsapp.template", "succeeded")]  # counted once, as any run


class SlowReplyRepository(InMemoryScheduleRepository):
    """The in-memory store whose outcome writes answer only once a lease renewal has come in
    after them (a slow reply): that renewal finds the lease already released by the write."""

    def __init__(self) -> None:
        super().__init__()
        self.renewed_after_write = asyncio.Event()
        self.writing = False

    async def save(self, schedule: Schedule, **conditions: Any) -> bool:
        written = await super().save(schedule, **conditions)
        if conditions.get("attempt_id"):
            self.writing = True
            await asyncio.wait_for(self.renewed_after_write.wait(), 5)
        return written

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        renewed = await super().renew_lease(schedule_id, attempt_id, until)
        if self.writing:
            self.renewed_after_write.set()
        return renewed


async def test_a_renewal_refused_because_the_outcome_was_just_written_is_no_takeover(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.repository = SlowReplyRepository()
    world.__post_init__()
    dispatcher = Dispatcher(world.repository, world.handlers, world.clock, world.signal,
                            DispatcherSettings(owner="replica-a", lease_for=timedelta(seconds=0.3)))  # renewed every 0.1 s
    schedule = await world.schedule()
    world.clock.set(DUE)
    with caplog.at_level(logging.WARNING):
        assert await run_due(dispatcher) == 1
    assert (await world.stored(schedule.id)).status is ScheduleStatus.SUCCEEDED
    assert world.repository.renewed_after_write.is_set()
    assert not any("lease lost" in r.getMessage() for r in caplog.records), caplog.records


async def test_max_in_flight_is_respected(world: World) -> None:
    blocking = BlockingHandler()
    dispatcher = world.dispatcher(handlers={WHATSAPP_TEMPLATE: blocking}, max_in_flight=2)
    ids = [(await world.schedule(DUE + timedelta(seconds=i))).id for i in range(5)]
    world.clock.set(DUE + timedelta(minutes=1))

    assert await dispatcher.dispatch_due() == 2
    await until(lambda: len(blocking.started) == 2)
    assert dispatcher.in_flight == 2 and dispatcher.at_capacity
    assert await dispatcher.dispatch_due() == 0  # no free slot: nothing claimed
    counts = await world.repository.count_by_status()
    assert counts.get(ScheduleStatus.RUNNING) == 2 and counts.get(ScheduleStatus.SCHEDULED) == 3
    assert blocking.started == ids[:2]  # oldest due first

    blocking.gate.set()
    await dispatcher.drain(5)
    assert dispatcher.in_flight == 0
    for _ in range(3):
        await dispatcher.dispatch_due()
        await dispatcher.drain(5)
    assert sorted(blocking.finished) == sorted(ids)
    assert blocking.max_active == 2
    assert (await world.repository.count_by_status()) == {ScheduleStatus.SUCCEEDED: 5}


async def test_batch_size_limits_one_claim(world: World) -> None:
    dispatcher = world.dispatcher(batch_size=1)
    for i in range(3):
        await world.schedule(DUE + timedelta(seconds=i))
    world.clock.set(DUE + timedelta(minutes=1))
    assert [await run_due(dispatcher) for _ in range(4)] == [1, 1, 1, 0]
    assert len(world.sender.sent) == 3


async def test_a_run_whose_lease_was_taken_over_does_not_write_its_result(world: World) -> None:
    dispatcher, blocking, schedule = await blocked_run(world)

    # While replica A's handler is blocked, its lease lapses and replica B takes the schedule over.
    world.clock.set(DUE + LEASE + timedelta(seconds=1))
    [taken] = await world.repository.claim_due(now=world.clock.now(), owner="replica-b", lease_for=LEASE, limit=10)
    assert taken.id == schedule.id and taken.lease is not None and taken.lease.owner == "replica-b"

    blocking.gate.set()
    await dispatcher.drain(5)
    assert blocking.finished == [schedule.id]  # A's handler did finish...
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.RUNNING  # ...but its success was not written
    assert stored.lease == taken.lease
    assert stored.attempts == [] and stored.result == {}

    # B's result is the one that stands.
    attempt_id = taken.lease.attempt_id
    taken.succeed(attempt_id=attempt_id, now=world.clock.now(), provider_message_id="wamid.b")
    assert await world.repository.save(taken, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SUCCEEDED
    assert [a.owner for a in stored.attempts] == ["replica-b"]


@pytest.mark.parametrize("change", ["labels", "pause"])
async def test_a_user_s_change_read_before_a_run_is_applied_after_it_never_instead_of_it(change: str) -> None:
    """An API replica whose clock is 5 ms ahead of the scheduler's changes a recurring schedule
    (its version: 12:00:00.005) and a user's change reads it just before the scheduler claims
    it; the run, 5 ms long, ends at the same millisecond by the scheduler's clock. The change's
    write must find the schedule changed and apply itself to what the run left, not write back
    what it read: that undid the run (its attempt and events gone) and, for a change that
    leaves it scheduled, made the occurrence due again, to be sent twice."""
    world = World(repository=RacingRepository())
    api_clock = FixedClock(NOW)
    api = SchedulingService(world.repository, api_clock, InProcessWorkSignal(api_clock))
    created = (await api.create(CreateScheduleCommand(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi", "params": []},
        schedule=f"every 1 minutes from {DUE.isoformat()}", timezone="UTC"))).schedule
    assert created.next_run_at == DUE
    api_clock.set(DUE + timedelta(milliseconds=5))
    await api.reschedule(RescheduleCommand(created.id, labels={"order": "1"}))
    dispatcher = world.dispatcher()
    world.clock.set(DUE)

    async def run_meanwhile() -> None:
        assert await dispatcher.dispatch_due() == 1
        world.clock.advance(timedelta(milliseconds=5))
        await dispatcher.drain(5)

    assert isinstance(world.repository, RacingRepository)
    world.repository.race = run_meanwhile
    if change == "labels":
        answered = await api.reschedule(RescheduleCommand(created.id, labels={"order": "2"}))
    else:
        answered = await api.pause(created.id)
    stored = await world.stored(created.id)
    assert answered == stored
    assert [(a.scheduled_for, a.outcome) for a in stored.attempts] == [(DUE, "succeeded")]
    assert [e.type for e in stored.events][-3:] == ["started", "succeeded", "scheduled" if change == "labels"
                                                    else "paused"]
    assert stored.next_run_at == DUE + timedelta(minutes=1)
    world.clock.advance(timedelta(seconds=1))
    assert await run_due(dispatcher) == 0  # the occurrence ran once
    assert len(world.sender.sent) == 1


async def test_a_run_longer_than_its_lease_keeps_it_renewed_so_no_other_replica_takes_it() -> None:
    # On the real clock: the renewals are timed by the event loop.
    clock, lease = SystemClock(), timedelta(seconds=1.2)
    repository = InMemoryScheduleRepository()
    blocking = BlockingHandler()
    dispatcher = Dispatcher(repository, {BlockingHandler.task_type: blocking}, clock, InProcessWorkSignal(clock),
                            DispatcherSettings(owner="replica-a", lease_for=lease))
    now = clock.now()
    schedule = Schedule.create(id="long-run", task_type=BlockingHandler.task_type, payload={},
                               trigger=OnceTrigger(now), timezone="UTC", first_run_at=now, now=now)
    await repository.add(schedule)
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: blocking.started == [schedule.id])
    claimed = await repository.get(schedule.id)
    assert claimed is not None and claimed.lease is not None

    for _ in range(6):  # three seconds: two and a half lease lengths
        await asyncio.sleep(0.5)
        assert await repository.claim_due(now=clock.now(), owner="replica-b", lease_for=lease, limit=10) == []
    held = await repository.get(schedule.id)
    assert held is not None and held.lease is not None
    assert held.lease.attempt_id == claimed.lease.attempt_id
    assert held.lease.until - claimed.lease.until >= timedelta(seconds=2)  # renewed again and again

    blocking.gate.set()
    await dispatcher.drain(5)
    done = await repository.get(schedule.id)
    assert done is not None and done.status is ScheduleStatus.SUCCEEDED
    assert [a.owner for a in done.attempts] == ["replica-a"]


async def test_a_renewal_that_hangs_does_not_hold_back_the_renewals_of_other_runs() -> None:
    class StalledForA(InMemoryScheduleRepository):
        """Renewing schedule A's lease hangs for three seconds (a stalled connection)."""

        async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
            if schedule_id == "A":
                await asyncio.sleep(3.0)
            return await super().renew_lease(schedule_id, attempt_id, until)

    clock, lease = SystemClock(), timedelta(seconds=1.2)
    repository = StalledForA()
    blocking = BlockingHandler()
    dispatcher = Dispatcher(repository, {BlockingHandler.task_type: blocking}, clock, InProcessWorkSignal(clock),
                            DispatcherSettings(owner="replica-a", lease_for=lease))

    async def start(schedule_id: str) -> None:
        now = clock.now()
        await repository.add(Schedule.create(id=schedule_id, task_type=BlockingHandler.task_type, payload={},
                                             trigger=OnceTrigger(now), timezone="UTC", first_run_at=now, now=now))
        assert await dispatcher.dispatch_due() == 1

    await start("A")
    await asyncio.sleep(0.2)
    await start("B")
    taken: list[str] = []
    for _ in range(12):  # three seconds, while A's renewal hangs
        await asyncio.sleep(0.25)
        taken += [s.id for s in await repository.claim_due(now=clock.now(), owner="replica-b",
                                                            lease_for=timedelta(minutes=5), limit=10)]
    assert "B" not in taken  # B's lease was renewed on time (A's lapsed: its store call hangs)
    blocking.gate.set()
    await dispatcher.drain(5)
    b = await repository.get("B")
    assert b is not None and b.status is ScheduleStatus.SUCCEEDED


class JsonLines(logging.Handler):
    """Keeps each record as the JSON log line it is written as (the run's labels are read when
    it is emitted, from the task that logs it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def _one_blocking_run(repository: InMemoryScheduleRepository) -> tuple[Dispatcher, BlockingHandler]:
    """A dispatcher on ``repository`` with a 0.3 s lease (renewed every 0.1 s), and schedule "A"
    due now, whose run blocks until its handler's gate is set."""
    clock, blocking = SystemClock(), BlockingHandler()
    dispatcher = Dispatcher(repository, {BlockingHandler.task_type: blocking}, clock, InProcessWorkSignal(clock),
                            DispatcherSettings(owner="replica-a", lease_for=timedelta(seconds=0.3)))
    now = clock.now()
    await repository.add(Schedule.create(id="A", task_type=BlockingHandler.task_type, payload={},
                                         trigger=OnceTrigger(now), timezone="UTC", first_run_at=now, now=now))
    return dispatcher, blocking


async def test_the_lease_keeper_s_lines_carry_the_run_they_are_about() -> None:
    """A log stack finds a run's lines by its ``schedule_id`` and ``attempt_id`` labels: the
    lease keeper's warnings (a renewal failed, the lease lost) are lines of that run too."""
    class RenewalsFail(InMemoryScheduleRepository):
        async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
            raise StoreUnavailable("connection refused")

    repository = RenewalsFail()
    dispatcher, blocking = await _one_blocking_run(repository)
    captured = JsonLines()
    logger = logging.getLogger("cronjob.services.dispatcher")
    logger.addHandler(captured)
    try:
        assert await dispatcher.dispatch_due() == 1
        await until(lambda: any("could not renew" in line["message"] for line in captured.lines), PROMPTLY)
        blocking.gate.set()
        await dispatcher.drain(5)
    finally:
        logger.removeHandler(captured)
    done = await repository.get("A")
    assert done is not None and done.status is ScheduleStatus.SUCCEEDED
    attempt_id = done.attempts[-1].attempt_id
    renewals = [line for line in captured.lines if "could not renew" in line["message"]]
    assert renewals and all(line.get("schedule_id") == "A" and line.get("attempt_id") == attempt_id
                            for line in renewals), renewals


async def test_renewals_that_keep_failing_are_said_once_and_their_return_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """An outage fails every run's renewal each third of a lease: one line per run, not one per
    try (100 runs in flight: 300 lines a 30 s lease), and one when a renewal works again."""
    class RenewalsFail(InMemoryScheduleRepository):
        failed = 0
        down = True

        async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
            if self.down:
                self.failed += 1
                raise StoreUnavailable("connection refused")
            return await super().renew_lease(schedule_id, attempt_id, until)

    repository = RenewalsFail()
    dispatcher, blocking = await _one_blocking_run(repository)
    with caplog.at_level(logging.INFO, logger="cronjob.services.dispatcher"):
        assert await dispatcher.dispatch_due() == 1
        await until(lambda: repository.failed >= 4, PROMPTLY)
        repository.down = False
        await until(lambda: any("renewed" in r.getMessage() for r in caplog.records), PROMPTLY)
        blocking.gate.set()
        await dispatcher.drain(5)
    renewals = [r.getMessage() for r in caplog.records if "renew" in r.getMessage()]
    assert renewals == ["could not renew the lease of schedule A (StoreUnavailable: connection refused); will try"
                        " again every 0.1 s", "renewed the lease of schedule A again"], renewals


async def test_a_claim_that_comes_back_late_renews_its_lease_or_is_not_run(world: World) -> None:
    class SlowClaims(InMemoryScheduleRepository):
        """Claims at the time asked, but the caller's clock has moved on by the time it returns."""

        def __init__(self, clock: object, delay: timedelta) -> None:
            super().__init__()
            self.clock, self.delay = clock, delay

        async def claim_due(self, **kwargs: object) -> list[Schedule]:  # type: ignore[override]
            claimed = await super().claim_due(**kwargs)  # type: ignore[arg-type]
            self.clock.advance(self.delay)  # type: ignore[attr-defined]
            return claimed

    slow = SlowClaims(world.clock, LEASE * 0.8)
    world.repository = slow
    world.__post_init__()
    schedule = await world.schedule()
    world.clock.set(DUE)
    dispatcher = world.dispatcher()
    assert await run_due(dispatcher) == 1  # 80 % of the lease gone: renewed, then sent
    assert len(world.sender.sent) == 1
    assert (await world.stored(schedule.id)).status is ScheduleStatus.SUCCEEDED

    lost = await world.schedule(DUE + timedelta(minutes=1))
    slow.delay = LEASE * 2  # lapsed before the claim returned; another replica takes it
    world.clock.set(DUE + timedelta(minutes=1))
    claimed = await dispatcher.dispatch_due()
    [taken] = await slow.claim_due(now=world.clock.now(), owner="replica-b", lease_for=LEASE, limit=5)
    await dispatcher.drain(5)
    assert claimed == 1 and taken.id == lost.id
    assert len(world.sender.sent) == 1  # replica-a did not send what it no longer held


async def test_unknown_outcomes_are_retried_when_configured_to(world: World) -> None:
    dispatcher = world.dispatcher(retry_unknown=True)
    schedule = await world.schedule()
    world.clock.set(DUE)
    world.sender.fail_with(DeliveryOutcomeUnknown("timed out after the request was written"))
    assert await run_due(dispatcher) == 1
    stored = await world.stored(schedule.id)
    assert stored.status is ScheduleStatus.SCHEDULED
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "retrying")]
    assert stored.last_error is not None and stored.last_error.code == "outcome_unknown"
    world.clock.set(stored.next_run_at)  # type: ignore[arg-type]
    assert await run_due(dispatcher) == 1
    assert len(world.sender.sent) == 1
    assert (await world.stored(schedule.id)).status is ScheduleStatus.SUCCEEDED


# -- a shutdown that will not wait (a second SIGTERM) ---------------------------------------------


async def test_stop_waiting_ends_a_drain_at_once_and_releases_the_runs_in_progress(world: World) -> None:
    dispatcher, blocking, schedule = await blocked_run(world)  # its gate is never opened
    draining = asyncio.create_task(dispatcher.drain(60))
    await asyncio.sleep(0.2)
    assert not draining.done()  # the grace: waiting for the run
    assert dispatcher.stop_waiting() == 1
    await asyncio.wait_for(draining, PROMPTLY)
    assert blocking.finished == [] and dispatcher.in_flight == 0
    stored = await world.stored(schedule.id)  # released, as at the end of the grace
    assert (stored.status, stored.lease, stored.next_run_at) == (ScheduleStatus.SCHEDULED, None, DUE)
    assert stored.attempts == []


async def test_runs_cut_short_before_they_began_free_their_slots(world: World) -> None:
    # A run counts itself out as its last step; one cancelled before its first never takes it.
    dispatcher = world.dispatcher(max_in_flight=2)
    for _ in range(2):
        await world.schedule()
    world.clock.set(DUE)
    assert await dispatcher.dispatch_due() == 2 and dispatcher.at_capacity
    dispatcher.stop_waiting()
    await dispatcher.drain(60)  # awaited here, without a pause: neither run has begun
    assert dispatcher.in_flight == 0 and not dispatcher.at_capacity


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="eager tasks came with Python 3.12")
async def test_runs_an_eager_task_factory_ran_to_their_end_take_no_slot(world: World) -> None:
    # Such a run ends, counting itself out, before its task is returned to be counted in.
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    try:
        dispatcher = world.dispatcher(max_in_flight=2)
        schedules = [await world.schedule() for _ in range(2)]
        world.clock.set(DUE)
        assert await dispatcher.dispatch_due() == 2
        assert dispatcher.in_flight == 0 and not dispatcher.at_capacity
        assert [(await world.stored(s.id)).status for s in schedules] == [ScheduleStatus.SUCCEEDED] * 2
    finally:
        loop.set_task_factory(None)


async def test_stop_waiting_before_the_drain_holds_for_that_drain_only(world: World) -> None:
    dispatcher, blocking, schedule = await blocked_run(world)
    assert dispatcher.stop_waiting() == 1  # the second signal came before the engine began to drain
    await asyncio.wait_for(dispatcher.drain(60), PROMPTLY)
    assert (await world.stored(schedule.id)).status is ScheduleStatus.SCHEDULED

    assert await dispatcher.dispatch_due() == 1  # due again at once; the next drain waits again
    await until(lambda: len(blocking.started) == 2)
    draining = asyncio.create_task(dispatcher.drain(60))
    await asyncio.sleep(0.2)
    assert not draining.done()
    blocking.gate.set()
    await asyncio.wait_for(draining, PROMPTLY)
    assert (await world.stored(schedule.id)).status is ScheduleStatus.SUCCEEDED
