"""A run's time limit: a task that outlasts it is stopped, its slot and lease freed, and the run
fails with ``run_timeout`` under the retry policy (the dispatcher with the in-memory store)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import MAX_RUN_TIMEOUT, Schedule, ScheduleStatus, check_run_timeout
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob_adapters.cut_short import cut_short
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_bootstrap.container import build_container
from cronjob_bootstrap.settings import Settings
from tests.support.clock import FixedClock

DUE = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
TYPE = "test.slow"


class Handler(TaskHandler):
    """Takes ``seconds`` (forever when None), then succeeds; ``on_cancel`` decides what a
    cancellation becomes (by default it goes on as the cancellation)."""

    task_type = TYPE

    def __init__(self, seconds: float | None = None, on_cancel: BaseException | None = None) -> None:
        self.seconds = seconds
        self.on_cancel = on_cancel
        self.cancelled = 0

    async def run(self, schedule: Schedule) -> TaskOutcome:
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


class Rig:
    """A store with one schedule due at DUE, and a dispatcher (of ``replica_limit``) to run it."""

    def __init__(self) -> None:
        self.clock = FixedClock(DUE)
        self.repository = InMemoryScheduleRepository()

    async def add(self, run_timeout: timedelta | None = None, retry: RetryPolicy | None = None) -> str:
        schedule = Schedule.create(id="s-1", task_type=TYPE, payload={}, trigger=OnceTrigger(DUE), timezone="UTC",
                                   first_run_at=DUE, now=DUE, run_timeout=run_timeout, retry=retry)
        await self.repository.add(schedule)
        return schedule.id

    async def run(self, handler: TaskHandler, *, replica_limit: timedelta = timedelta(hours=1),
                  drain: float = 5) -> tuple[Dispatcher, Schedule]:
        """Claim the schedule, start its run, let runs finish for up to ``drain`` seconds, then
        cancel the rest (a shutdown); the dispatcher and the stored schedule."""
        dispatcher = Dispatcher(self.repository, {TYPE: handler}, self.clock, InProcessWorkSignal(self.clock),
                                DispatcherSettings(owner="replica-a", run_timeout=replica_limit), jitter=lambda: 1.0)
        assert await dispatcher.dispatch_due() == 1
        await dispatcher.drain(drain)
        assert dispatcher.in_flight == 0
        stored = await self.repository.get("s-1")
        assert stored is not None
        return dispatcher, stored


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
    _, stored = await rig.run(handler, drain=0.05)  # the shutdown's grace ends long before the limit
    assert handler.cancelled == 1
    assert stored.status is ScheduleStatus.SCHEDULED and stored.next_run_at == DUE  # due again at once
    assert stored.attempts == [] and stored.last_error is None and stored.lease is None


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
