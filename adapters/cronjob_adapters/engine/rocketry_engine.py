"""The SchedulerEngine port on Rocketry (the ``rocketry`` extra, pinned to ``rocketry-fix``).

Rocketry is only the wake-up source here: its scheduler loop, in this process's event loop,
evaluates one task's start condition every cycle and runs the task when it holds; the task calls
``Dispatcher.dispatch_due``. Claims, leases, fencing, retries and misfires all stay in the
dispatcher and the store, so this engine and the asyncio timer engine are interchangeable and
pass the same contract tests. Schedules never become Rocketry tasks: Rocketry evaluates every
task's condition on every cycle and registers tasks with a linear scan, which does not scale to
many schedules.

Importing ``rocketry`` swaps ``pydantic.v1`` into ``sys.modules["pydantic"]`` for the duration of
its own import (it is written for Pydantic 1); import it before anything from ``redbird``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rocketry import Session
from rocketry.conditions.api import every
from rocketry.core.condition import BaseCondition
from rocketry.log.defaults import create_default_handler

from cronjob_adapters.engine.base import EngineBase

log = logging.getLogger(__name__)

#: Rocketry's task and scheduler loggers (its ``Config`` defaults).
_TASK_LOGGER = "rocketry.task"
_SCHEDULER_LOGGER = "rocketry.scheduler"
#: A wait that ends this close to its deadline timed out (asyncio timers may fire a hair early).
_TIMER_SLACK = timedelta(milliseconds=2)


class _RecentTaskRecords(logging.Handler):
    """Rocketry's task history, bounded.

    Rocketry reads a task's past runs from the first handler of its task logger that has a
    ``repo``, and warns (then installs an unbounded in-memory one) when there is none. Our task
    runs at least once a poll interval and logs two records a run: keep only the last few.
    """

    def __init__(self, keep: int = 64) -> None:
        super().__init__(logging.INFO)
        self._inner = create_default_handler()  # a redbird RepoHandler over a MemoryRepo
        self.repo: Any = self._inner.repo
        self._keep = keep

    def emit(self, record: logging.LogRecord) -> None:
        self._inner.emit(record)
        del self.repo.collection[: -self._keep]


def _quiet_rocketry_logging() -> None:
    """Keep Rocketry's per-run INFO records out of the application's logs (idempotent).

    The task logger must stay at INFO (Rocketry reads its own records back to evaluate
    conditions), so it stops propagating; the scheduler logger still reports WARNING and above
    (a crash of Rocketry's loop is CRITICAL there).
    """
    task_logger = logging.getLogger(_TASK_LOGGER)
    if not any(isinstance(h, _RecentTaskRecords) for h in task_logger.handlers):
        task_logger.handlers.insert(0, _RecentTaskRecords())
    task_logger.setLevel(logging.INFO)
    task_logger.propagate = False
    logging.getLogger(_SCHEDULER_LOGGER).setLevel(logging.WARNING)


class _Holds(BaseCondition):
    """A Rocketry condition over a plain predicate (no parsing, no history reads)."""

    def __init__(self, name: str, predicate: Callable[[], bool]) -> None:
        self._name = name
        self._predicate = predicate

    def get_state(self) -> bool:
        return self._predicate()

    def __str__(self) -> str:
        return self._name


class RocketryEngine(EngineBase):
    """Runs a Rocketry session with one task, ``cronjob-dispatch-<id>``, that claims due work.

    The task's start condition is ``every <poll_interval> seconds | wake-up requested``. A
    wake-up is requested when the earliest due time the store reported arrives and when the
    WorkSignal reports earlier work (a small listener task waits on it; a run that finishes
    signals too, so a full replica claims again as soon as it has a free slot). Rocketry checks the condition every ``cycle_sleep``
    seconds (``min(0.1, poll_interval / 2)``), so wake-ups are at most that late; the poll
    bounds how late work created by other processes is seen. Store errors are logged and the
    store is left alone for a growing back-off (the ticks go on, so ``last_tick`` stays fresh).
    ``stop`` is Rocketry's shut condition: the session stops starting the task, waits for a
    tick in progress, and then the dispatcher drains its runs as in the timer engine.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes what :class:`EngineBase` takes."""
        super().__init__(*args, **kwargs)
        self._cycle_sleep = min(0.1, self._poll_interval / 2)
        self._stop: asyncio.Event | None = None
        self._wake_requested = False
        self._next_look_at: datetime | None = None  # None: at the next poll
        self._retry_at: datetime | None = None
        self._backoff = 0.5
        self._ticked = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        _quiet_rocketry_logging()
        self._stop = stop
        session = Session(config={
            "cycle_sleep": self._cycle_sleep,
            "shut_cond": _Holds("cronjob stop is set", stop.is_set),
            "silence_task_logging": True,  # a failing history write must not stop the loop
        })
        session.create_task(
            func=self._tick,
            # Rocketry reads a task's history by name from the (process-wide) task logger at
            # start-up: a fresh name per run, so an earlier engine's runs do not count as ours.
            name=f"cronjob-dispatch-{uuid.uuid4().hex[:12]}",
            execution="async",  # an asyncio task in this loop; never two at once (no multilaunch)
            start_cond=every(f"{self._poll_interval:.6f} seconds")
            | _Holds("cronjob wake-up requested", self._wake_due),
        )
        listener = asyncio.create_task(self._listen(), name="rocketry-engine-signal")
        try:
            await session.serve()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._dispatcher.drain(self._drain_timeout)

    def _wake_due(self) -> bool:
        if self._wake_requested:
            return True
        return self._next_look_at is not None and self._clock.now() >= self._next_look_at

    async def _listen(self) -> None:
        """Turn WorkSignal notifications into wake-up requests.

        The wait lasts until the engine's next planned look (the earliest due time or the next
        poll), so (per the WorkSignal contract) only work due before that wakes it; when the wait
        times out, the look is due anyway.
        """
        while True:
            self._ticked.clear()
            now = self._clock.now()
            armed_until = now + timedelta(seconds=self._poll_interval)
            if self._next_look_at is not None:
                armed_until = min(armed_until, self._next_look_at)
            idle = max((armed_until - now).total_seconds(), 0.0)
            await self._collect_if_quiet(idle)
            await self._signal.wait(idle)
            if self._clock.now() < armed_until - _TIMER_SLACK:
                self._wake_requested = True  # notified (on a time-out the look is due anyway)
            await self._ticked.wait()  # re-arm once a tick has planned the next look

    async def _tick(self) -> None:
        """The Rocketry task: claim what is due and plan when to look again. Never raises."""
        now = self._clock.now()
        self._last_tick = now
        self._wake_requested = False
        try:
            if self._stop is not None and self._stop.is_set():
                return  # stopping: claim nothing more
            if self._retry_at is not None and now < self._retry_at:
                return  # backing off from a failing store
            self._next_look_at = await self._plan()
            self._retry_at = None
            self._backoff = 0.5
        except Exception as exc:  # the store is down or flaky: keep going, slower
            log.warning("rocketry engine: %s: %s; retrying in %.1f s", type(exc).__name__, exc, self._backoff)
            self._retry_at = self._next_look_at = now + timedelta(seconds=self._backoff)
            self._backoff = min(self._backoff * 2, self._max_error_backoff)
        finally:
            self._ticked.set()

    async def _plan(self) -> datetime | None:
        """Claim what is due, batch after batch; return when to look again (None: at the next poll).

        Like the timer engine, go on claiming while a claim comes back full (yielding between
        batches) rather than one batch per Rocketry cycle, which would cap a burst at
        ``batch_size / cycle_sleep`` claims a second; a claim that came back short found all
        that was due, so it is not followed by one more, empty claim.
        """
        self._idle = False
        while await self._dispatcher.dispatch_due():
            if self._stop is not None and self._stop.is_set():
                return None
            if not self._dispatcher.more_may_be_due:
                break
            await asyncio.sleep(0)  # let running jobs and the API breathe between batches
            self._last_tick = self._clock.now()
        look = await self._next_look()
        if look.due_now:
            # Due but lost to another replica's claim a moment ago: look again shortly.
            return self._clock.now() + timedelta(seconds=0.01)
        return look.at
