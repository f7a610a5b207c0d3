"""A run's time limit: a task that outlasts it is stopped, its slot and lease freed, and the run
fails with ``run_timeout`` under the retry policy (the dispatcher with the in-memory store)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
from pydantic import BaseModel

from cronjob.domain.errors import InvalidTransition, ValidationError
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import MAX_RUN_TIMEOUT, Schedule, ScheduleEvent, ScheduleStatus, check_run_timeout
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.events import EventPublisher
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob_adapters.cut_short import cut_short
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.tasks.python import PythonTaskHandler, RoutineContext, RoutineRegistry, routine
from cronjob_bootstrap.container import build_container
from cronjob_bootstrap.settings import Settings
from tests.support.clock import FixedClock
from tests.support.waiting import until

DUE = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
TYPE = "test.slow"


class Handler(TaskHandler):
    """Takes ``seconds`` (forever when None), then succeeds; ``on_cancel`` decides what a
    cancellation becomes (by default it goes on as the cancellation)."""

    task_type = TYPE

    def __init__(self, seconds: float | None = None, on_cancel: BaseException | None = None) -> None:
        self.seconds = seconds
        self.on_cancel = on_cancel
        self.started = 0
        self.cancelled = 0

    async def run(self, schedule: Schedule) -> TaskOutcome:
        self.started += 1
        try:
            if self.seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            if self.on_cancel is not None:
                raise self.on_cancel from None
            raise
        return TaskOutcome(result={"done": "yes"})


class OwnTimeout(TaskHandler):
    """A task whose own wait timed out (not the run's limit): an error like any other."""

    task_type = TYPE

    async def run(self, schedule: Schedule) -> TaskOutcome:
        async with asyncio.timeout(0.001):
            await asyncio.Event().wait()
        raise AssertionError("not reached")


class CancellationWatch(EventPublisher):
    """Publishes nothing; notes, as each run's outcome is published (in the run's own task,
    after its handler), how many cancellations of that task are still pending."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> bool:
        if any(e.type != "started" for e in events):
            task = asyncio.current_task()
            assert task is not None
            self.pending.append(task.cancelling())
        return True

    async def withdraw(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> None:
        return None


class Rig:
    """A store with one schedule due at DUE, and a dispatcher to run it."""

    def __init__(self) -> None:
        self.clock = FixedClock(DUE)
        self.repository = InMemoryScheduleRepository()
        self.watch = CancellationWatch()

    async def add(self, run_timeout: timedelta | None = None, retry: RetryPolicy | None = None,
                  id: str = "s-1", payload: dict[str, Any] | None = None) -> str:
        schedule = Schedule.create(id=id, task_type=TYPE, payload=payload or {}, trigger=OnceTrigger(DUE), timezone="UTC",
                                   first_run_at=DUE, now=DUE, run_timeout=run_timeout, retry=retry)
        await self.repository.add(schedule)
        return schedule.id

    def dispatcher(self, handler: TaskHandler, replica_limit: timedelta = timedelta(hours=1),
                   lease_for: timedelta = timedelta(seconds=30)) -> Dispatcher:
        """A dispatcher with ``replica_limit``; its lease keeper looks every third of ``lease_for``."""
        return Dispatcher(self.repository, {TYPE: handler}, self.clock, InProcessWorkSignal(self.clock),
                          DispatcherSettings(owner="replica-a", run_timeout=replica_limit, lease_for=lease_for),
                          jitter=lambda: 1.0, publisher=self.watch)

    async def run(self, handler: TaskHandler, *, shutdown_after: float | None = None,
                  **settings: Any) -> tuple[Dispatcher, Schedule]:
        """Claim the schedule and run it until it ends by itself (no shutdown: it fails the test
        if it does not end within :data:`PROMPTLY`) or, with ``shutdown_after``, shut down after
        that many seconds; the dispatcher and the stored schedule."""
        dispatcher = self.dispatcher(handler, **settings)
        assert await dispatcher.dispatch_due() == 1
        if shutdown_after is None:
            await until(lambda: dispatcher.in_flight == 0)
        await dispatcher.drain(shutdown_after or 0)
        assert dispatcher.in_flight == 0
        return dispatcher, await self.stored()

    async def stored(self, id: str = "s-1") -> Schedule:
        stored = await self.repository.get(id)
        assert stored is not None
        return stored


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_a_run_past_its_schedules_limit_is_stopped_and_retried(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=0.05))
    handler = Handler()  # never ends by itself
    _, stored = await rig.run(handler)
    assert handler.cancelled == 1
    assert stored.status is ScheduleStatus.SCHEDULED and stored.lease is None  # a retry waits
    assert stored.last_error is not None and stored.last_error.code == "run_timeout"
    assert stored.last_error.retryable
    assert stored.last_error.message == "the run took longer than its time limit of 0.05 s and was stopped"
    assert [(a.outcome, a.error and a.error.code) for a in stored.attempts] == [("retrying", "run_timeout")]


async def test_a_run_stopped_at_its_limit_is_dead_once_its_retries_are_spent(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=0.05), retry=RetryPolicy(max_attempts=1))
    _, stored = await rig.run(Handler())
    assert stored.status is ScheduleStatus.DEAD
    assert stored.last_error is not None and stored.last_error.code == "run_timeout"


async def test_without_a_limit_of_its_own_a_run_has_the_replicas(rig: Rig) -> None:
    await rig.add()
    handler = Handler()
    dispatcher, stored = await rig.run(handler, replica_limit=timedelta(seconds=0.05))
    assert handler.cancelled == 1
    assert stored.last_error is not None and stored.last_error.message.endswith("limit of 0.05 s and was stopped")
    assert dispatcher.run_timeout(stored) == timedelta(seconds=0.05)


async def test_a_schedules_own_limit_overrides_the_replicas(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=10))
    handler = Handler(seconds=0.2)  # longer than the replica's limit, within the schedule's
    _, stored = await rig.run(handler, replica_limit=timedelta(seconds=0.05))
    assert handler.cancelled == 0
    assert stored.status is ScheduleStatus.SUCCEEDED and stored.result == {"done": "yes"}


async def test_a_tasks_own_timeout_is_an_error_not_the_run_limit(rig: Rig) -> None:
    await rig.add()
    _, stored = await rig.run(OwnTimeout())
    assert stored.last_error is not None and stored.last_error.code == "internal_error"
    assert stored.last_error.message.startswith("TimeoutError")


async def test_a_send_cut_short_at_the_limit_is_an_unknown_outcome_not_resent(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=0.05))
    handler = Handler(on_cancel=cut_short("the test send"))
    _, stored = await rig.run(handler)
    assert handler.cancelled == 1
    assert stored.status is ScheduleStatus.UNKNOWN
    assert stored.last_error is not None and stored.last_error.code == "outcome_unknown"
    assert "at the run's time limit" in stored.last_error.message


async def test_a_shutdown_within_the_limit_gives_the_run_back_rather_than_failing_it(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=30))
    handler = Handler()
    _, stored = await rig.run(handler, shutdown_after=0.05)  # the shutdown's grace ends long before the limit
    assert handler.cancelled == 1
    assert stored.status is ScheduleStatus.SCHEDULED and stored.next_run_at == DUE  # due again at once
    assert stored.attempts == [] and stored.last_error is None and stored.lease is None


async def test_a_limit_longer_than_a_renewal_period_is_kept_by_the_lease_keeper(rig: Rig) -> None:
    # Leases of 0.3 s: the keeper looks every 0.1 s; a 0.25 s limit is armed by it, not at the start.
    await rig.add(run_timeout=timedelta(seconds=0.25))
    handler = Handler()
    _, stored = await rig.run(handler, lease_for=timedelta(seconds=0.3))
    assert handler.cancelled == 1
    assert stored.last_error is not None and stored.last_error.code == "run_timeout"


async def test_a_short_limit_holds_for_a_run_that_starts_while_the_keeper_waits(rig: Rig) -> None:
    await rig.add(id="long")  # the replica's hour
    handler = Handler()
    dispatcher = rig.dispatcher(handler)
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: handler.started == 1)  # the keeper now waits 10 s, for this run's first renewal
    await rig.add(run_timeout=timedelta(seconds=0.05), id="short")
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: handler.cancelled == 1 and dispatcher.in_flight == 1)  # long before the keeper looks
    await dispatcher.drain(0)
    assert (await rig.stored("short")).last_error.code == "run_timeout"  # type: ignore[union-attr]
    assert (await rig.stored("long")).status is ScheduleStatus.SCHEDULED  # given back by the shutdown


async def test_a_run_that_lost_its_lease_is_still_stopped_at_its_limit(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=0.5))
    handler = Handler()
    dispatcher = rig.dispatcher(handler, lease_for=timedelta(seconds=0.3))
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: handler.started == 1)
    # Another replica takes the lease over once it lapsed: the keeper's next renewal is refused.
    rig.clock.set(DUE + timedelta(minutes=1))
    [taken] = await rig.repository.claim_due(now=rig.clock.now(), owner="replica-b", lease_for=timedelta(hours=1),
                                             limit=1)
    await until(lambda: dispatcher.in_flight == 0)  # stopped at 0.5 s, with no lease to keep it
    await dispatcher.drain(0)
    assert handler.cancelled == 1
    stored = await rig.stored()
    assert stored.lease is not None and stored.lease.attempt_id == taken.lease.attempt_id  # type: ignore[union-attr]
    assert stored.attempts == []  # its failure was not written over the new owner's run


async def test_a_handler_that_swallows_the_stop_ends_as_it_says_with_nothing_left_pending(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=0.05))

    class Stubborn(Handler):
        async def run(self, schedule: Schedule) -> TaskOutcome:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
            return TaskOutcome(result={"done": "anyway"})

    handler = Stubborn()
    _, stored = await rig.run(handler)
    assert handler.cancelled == 1
    assert stored.status is ScheduleStatus.SUCCEEDED and stored.result == {"done": "anyway"}
    assert rig.watch.pending == [0]  # the stop's cancellation was taken back: the run's writes go on


async def test_a_stopped_run_leaves_no_cancellation_pending_for_its_writes(rig: Rig) -> None:
    await rig.add(run_timeout=timedelta(seconds=0.05))
    await rig.run(Handler())
    assert rig.watch.pending == [0]


class SlowArgs(BaseModel):
    seconds: float | None = None  # None: forever


async def slow(args: SlowArgs, context: RoutineContext) -> dict[str, str]:
    await (asyncio.sleep(args.seconds) if args.seconds is not None else asyncio.Event().wait())
    return {"slept": str(args.seconds)}


def routine_handler(rig: Rig, timeout: timedelta | None) -> PythonTaskHandler:
    """The ``python`` task handler with one routine, ``slow``, of time limit ``timeout``."""
    registry = RoutineRegistry()
    routine("slow", SlowArgs, timeout=timeout, registry=registry)(slow)
    return PythonTaskHandler(registry, rig.repository, rig.clock)


async def test_a_routine_declares_its_own_limit(rig: Rig) -> None:
    await rig.add(payload={"routine": "slow"})
    _, stored = await rig.run(routine_handler(rig, timedelta(seconds=0.05)))  # the replica's: an hour
    assert stored.last_error is not None and stored.last_error.code == "run_timeout"
    assert stored.last_error.message.endswith("limit of 0.05 s and was stopped")


async def test_a_schedules_own_limit_comes_before_its_routines(rig: Rig) -> None:
    await rig.add(payload={"routine": "slow", "args": {"seconds": 0.2}}, run_timeout=timedelta(seconds=10))
    _, stored = await rig.run(routine_handler(rig, timedelta(seconds=0.05)))
    assert stored.status is ScheduleStatus.SUCCEEDED and stored.result == {"slept": "0.2"}


async def test_a_routine_without_a_limit_has_the_replicas(rig: Rig) -> None:
    await rig.add(payload={"routine": "slow"})
    _, stored = await rig.run(routine_handler(rig, None), replica_limit=timedelta(seconds=0.05))
    assert stored.last_error is not None and stored.last_error.message.endswith("limit of 0.05 s and was stopped")


@pytest.mark.parametrize("seconds", [0, 86_401])
def test_a_routine_with_a_limit_out_of_bounds_is_not_registered(seconds: float) -> None:
    registry = RoutineRegistry()
    with pytest.raises(ValueError, match="routine 'slow': a run's time limit must be more than 0 s"):
        routine("slow", SlowArgs, timeout=timedelta(seconds=seconds), registry=registry)(slow)
    assert registry.names() == []


@pytest.mark.parametrize("seconds", [0, -1, MAX_RUN_TIMEOUT.total_seconds() + 0.001])
def test_a_run_limit_must_be_positive_and_at_most_a_day(seconds: float) -> None:
    with pytest.raises(ValidationError) as refused:
        check_run_timeout(timedelta(seconds=seconds))
    assert refused.value.field == "run_timeout_seconds"
    with pytest.raises(ValidationError):
        Schedule.create(id="s", task_type=TYPE, payload={}, trigger=OnceTrigger(DUE), timezone="UTC",
                        first_run_at=DUE, now=DUE, run_timeout=timedelta(seconds=seconds))


def test_a_day_and_none_are_run_limits() -> None:
    assert check_run_timeout(MAX_RUN_TIMEOUT) == MAX_RUN_TIMEOUT
    assert check_run_timeout(None) is None


def test_the_service_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    schedule = Schedule.create(id="s", task_type=TYPE, payload={}, trigger=OnceTrigger(DUE), timezone="UTC",
                               first_run_at=DUE, now=DUE)
    assert build_container(Settings()).dispatcher().run_timeout(schedule) == timedelta(hours=1)
    monkeypatch.setenv("CRONJOB_RUN_TIMEOUT_SECONDS", "42.5")
    assert build_container(Settings()).dispatcher().run_timeout(schedule) == timedelta(seconds=42.5)
    for refused in ("0", "86401", "soon"):
        monkeypatch.setenv("CRONJOB_RUN_TIMEOUT_SECONDS", refused)
        with pytest.raises(pydantic.ValidationError, match="run_timeout_seconds"):
            Settings()


def test_a_waiting_schedules_limit_changes_with_its_labels_or_not_at_all() -> None:
    schedule = Schedule.create(id="s", task_type=TYPE, payload={}, trigger=OnceTrigger(DUE), timezone="UTC",
                               first_run_at=DUE, now=DUE - timedelta(hours=1), labels={"k": "v"})
    with pytest.raises(ValidationError):  # a bad label: the limit beside it is not taken either
        schedule.change_settings(labels={"-bad": ""}, run_timeout=timedelta(seconds=5), now=DUE)
    with pytest.raises(ValidationError) as refused:  # a bad limit: the labels beside it are not taken either
        schedule.change_settings(labels={"k": "w"}, run_timeout=timedelta(0), now=DUE)
    assert refused.value.field == "run_timeout_seconds"
    assert (schedule.labels, schedule.run_timeout, len(schedule.events)) == ({"k": "v"}, None, 1)
    schedule.change_settings(run_timeout=timedelta(seconds=5), now=DUE)
    assert (schedule.labels, schedule.run_timeout) == ({"k": "v"}, timedelta(seconds=5))
    assert schedule.events[-1].data == {"run_timeout_changed": "true", "next_run_at": "2030-01-15T12:00:00.000Z"}


def test_a_running_schedule_keeps_its_limit() -> None:
    schedule = Schedule.create(id="s", task_type=TYPE, payload={}, trigger=OnceTrigger(DUE), timezone="UTC",
                               first_run_at=DUE, now=DUE)
    schedule.claim(owner="r", attempt_id="a", now=DUE, until=DUE + timedelta(seconds=30))
    with pytest.raises(InvalidTransition, match="takes another run time limit .its run is in progress"):
        schedule.change_settings(run_timeout=timedelta(seconds=5), now=DUE)
    assert schedule.run_timeout is None
