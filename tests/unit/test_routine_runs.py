"""A ``python`` routine's run through the dispatcher (the in-memory store, the real handler): what
it returns becomes the run's result, or a failure that is not retried; a plain ``def`` routine
runs in a thread of its own, so that it blocks nothing else."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.services import log_context
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.tasks.python import (
    MAX_ABANDONED_THREADS,
    MAX_RESULT_CHARS,
    PythonTaskHandler,
    RoutineContext,
    RoutineRegistry,
    routine,
)
from cronjob_adapters.tasks.routine_threads import abandoned_threads
from tests.support.clock import FixedClock
from tests.support.waiting import PROMPTLY, until

DUE = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


class NoArgs(BaseModel):
    pass


class Rig:
    """One ``python`` schedule due at DUE, running the routine ``it`` of a registry of its own."""

    def __init__(self) -> None:
        self.clock = FixedClock(DUE)
        self.repository = InMemoryScheduleRepository()
        self.registry = RoutineRegistry()
        self.calls = 0

    def register(self, function: Callable[..., Any]) -> None:
        routine("it", NoArgs, registry=self.registry)(function)

    def dispatcher(self) -> Dispatcher:
        handler = PythonTaskHandler(self.registry, self.repository, self.clock)
        return Dispatcher(self.repository, {"python": handler}, self.clock, InProcessWorkSignal(self.clock),
                          DispatcherSettings(owner="replica-a"), jitter=lambda: 1.0)

    async def run(self, run_timeout: timedelta | None = None) -> Schedule:
        """Add the schedule, claim it, wait for its run to end; the stored schedule."""
        schedule = Schedule.create(id="s-1", task_type="python", payload={"routine": "it", "args": {}},
                                   trigger=OnceTrigger(DUE), timezone="UTC", first_run_at=DUE, now=DUE,
                                   run_timeout=run_timeout)
        await self.repository.add(schedule)
        dispatcher = self.dispatcher()
        assert await dispatcher.dispatch_due() == 1
        await until(lambda: dispatcher.in_flight == 0)
        stored = await self.repository.get("s-1")
        assert stored is not None
        return stored


@pytest.fixture
def rig() -> Rig:
    return Rig()


# -- what a routine returns ---------------------------------------------------------------------


async def test_a_result_with_keys_named_as_an_event_s_own_fields_is_recorded(rig: Rig) -> None:
    """The result is also the ``succeeded`` event's data: keys such as ``type`` are the routine's
    business, not a clash (this once crashed the write, and the run was taken again at every
    lapse of its lease, for ever)."""

    async def it(args: NoArgs, context: RoutineContext) -> dict[str, str]:
        rig.calls += 1
        return {"type": "incremental", "now": "2030", "attempt_id": "mine", "rows": "12"}

    rig.register(it)
    stored = await rig.run()
    assert stored.status is ScheduleStatus.SUCCEEDED and rig.calls == 1
    assert stored.result == {"type": "incremental", "now": "2030", "attempt_id": "mine", "rows": "12"}
    succeeded = stored.events[-1]
    assert succeeded.type == "succeeded" and succeeded.data["type"] == "incremental"
    assert succeeded.attempt_id == stored.attempts[-1].attempt_id  # the run's own, not the result's


async def test_keys_and_values_of_a_result_are_kept_as_text(rig: Rig) -> None:
    async def it(args: NoArgs, context: RoutineContext) -> dict[Any, Any]:
        return {1: "one", "count": 3, "ok": True}

    rig.register(it)
    stored = await rig.run()
    assert stored.status is ScheduleStatus.SUCCEEDED
    assert stored.result == {"1": "one", "count": "3", "ok": "True"}


@pytest.mark.parametrize(("returned", "says"), [
    ([1, 2, 3], "routine 'it' returned list, not a dict (or None)"),
    ("done", "routine 'it' returned str, not a dict (or None)"),
    ({"blob": "x" * MAX_RESULT_CHARS}, f"of {MAX_RESULT_CHARS + 4} characters (keys and values), "
                                       f"more than {MAX_RESULT_CHARS}"),
    ({"name": "caf\udce9"}, "cannot be stored: name: a lone surrogate"),  # surrogateescape
])
async def test_a_result_that_cannot_be_one_fails_the_run_once_without_a_retry(
        rig: Rig, returned: object, says: str) -> None:
    """The routine has done its work: a retry would only do it again, for the same result."""

    async def it(args: NoArgs, context: RoutineContext) -> object:
        rig.calls += 1
        return returned

    rig.register(it)
    stored = await rig.run()
    assert rig.calls == 1
    assert stored.status is ScheduleStatus.DEAD and stored.last_error is not None
    assert stored.last_error.code == "invalid_result" and not stored.last_error.retryable
    assert says in stored.last_error.message and stored.last_error.message.endswith("so it is not run again")


# -- a plain def routine ---------------------------------------------------------------------


async def test_a_plain_def_routine_runs_in_a_thread_while_the_loop_goes_on(rig: Rig) -> None:
    started, released = threading.Event(), threading.Event()

    def it(args: NoArgs, context: RoutineContext) -> dict[str, str]:
        started.set()
        went_on = released.wait(timeout=PROMPTLY)  # set by the event loop: only if it is not blocked
        return {"went_on": str(went_on), "thread": threading.current_thread().name,
                "schedule_id": log_context.schedule_id.get() or "", "id": context.schedule.id}

    rig.register(it)
    running = asyncio.create_task(rig.run())
    await until(started.is_set)
    released.set()
    stored = await running
    assert stored.status is ScheduleStatus.SUCCEEDED
    # The log context of the run is the thread's too.
    assert stored.result == {"went_on": "True", "thread": "routine it", "schedule_id": "s-1", "id": "s-1"}


async def test_a_plain_def_routine_that_raises_is_retried_as_any(rig: Rig) -> None:
    def it(args: NoArgs, context: RoutineContext) -> None:
        raise ConnectionError("the ERP did not answer")

    rig.register(it)
    stored = await rig.run()
    assert stored.status is ScheduleStatus.SCHEDULED and stored.last_error is not None  # a retry waits
    assert stored.last_error.code == "internal_error" and stored.last_error.retryable
    assert stored.last_error.message == "ConnectionError: the ERP did not answer"


def _exits(args: NoArgs, context: RoutineContext) -> None:
    sys.exit(3)


async def _exits_async(args: NoArgs, context: RoutineContext) -> None:
    sys.exit(3)


@pytest.mark.parametrize("function", [_exits, _exits_async])
async def test_sys_exit_in_a_routine_fails_its_run_not_the_service(rig: Rig, function: Callable[..., Any]) -> None:
    """An async one once ended the whole process (API and scheduler), its schedule left running,
    to end the process again once its lease lapsed."""
    rig.register(function)
    stored = await rig.run()
    assert stored.status is ScheduleStatus.SCHEDULED  # retried as any error
    assert stored.last_error is not None and stored.last_error.message == "RuntimeError: SystemExit: 3"


async def test_a_plain_def_routine_past_its_limit_ends_its_run_while_its_thread_runs_on(rig: Rig) -> None:
    released, ended = threading.Event(), threading.Event()

    def it(args: NoArgs, context: RoutineContext) -> dict[str, str]:
        released.wait(timeout=PROMPTLY)
        ended.set()
        return {"late": "yes"}

    rig.register(it)
    try:
        stored = await rig.run(run_timeout=timedelta(seconds=0.05))
        assert not ended.is_set()  # stopped at its limit, not when the thread ended
        assert stored.status is ScheduleStatus.SCHEDULED and stored.last_error is not None
        assert stored.last_error.code == "run_timeout" and stored.result == {}
    finally:
        released.set()
    await until(ended.is_set)
    await asyncio.sleep(0.05)  # its outcome, handed to the loop, is dropped without a word
    stored_after = await rig.repository.get("s-1")
    assert stored_after is not None and stored_after.result == {}


async def test_a_plain_def_that_hands_back_a_coroutine_has_it_awaited(rig: Rig) -> None:
    async def work(context: RoutineContext) -> dict[str, str]:
        return {"on_loop": str(threading.current_thread() is threading.main_thread())}

    rig.register(lambda args, context: work(context))
    stored = await rig.run()
    assert stored.result == {"on_loop": "True"}


async def test_a_plain_def_routine_that_keeps_hanging_runs_no_more_while_its_given_up_threads_run_on(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Each run past its limit leaves its thread behind; with MAX_ABANDONED_THREADS of them still
    running, the next run fails at once (retried as any failure) instead of leaving one more; once
    they end, it runs again."""
    released = threading.Event()
    calls = 0

    def it(args: NoArgs, context: RoutineContext) -> dict[str, str]:
        nonlocal calls
        calls += 1
        released.wait(timeout=PROMPTLY)
        return {}

    rig.register(it)
    try:
        for run in range(MAX_ABANDONED_THREADS):
            stored = await rig.run(run_timeout=timedelta(seconds=0.05))
            assert stored.last_error is not None and stored.last_error.code == "run_timeout"
            assert abandoned_threads("it") == run + 1
            rig.repository = InMemoryScheduleRepository()  # a fresh schedule s-1 for the next run
        stuck = await rig.run(run_timeout=timedelta(seconds=0.05))
        assert stuck.last_error is not None and stuck.last_error.code == "routine_stuck"
        assert stuck.last_error.retryable and stuck.status is ScheduleStatus.SCHEDULED
        assert f"{MAX_ABANDONED_THREADS} earlier runs of routine 'it'" in stuck.last_error.message
        assert calls == MAX_ABANDONED_THREADS  # not called: no thread more
        assert "its run was given up while its thread runs on" in caplog.text
    finally:
        released.set()
    await until(lambda: abandoned_threads("it") == 0)
    rig.repository = InMemoryScheduleRepository()
    again = await rig.run(run_timeout=timedelta(seconds=5))
    assert again.status is ScheduleStatus.SUCCEEDED and calls == MAX_ABANDONED_THREADS + 1
