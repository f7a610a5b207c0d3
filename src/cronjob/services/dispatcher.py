"""The dispatcher: claims due schedules, runs them through their task handler, records the outcome."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from cronjob.domain.message import DeliveryDeferred, DeliveryError, DeliveryOutcomeUnknown, ErrorInfo
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import Schedule, ScheduleEvent, ScheduleStatus, run_timeout_error
from cronjob.domain.trigger import UnreadableTrigger
from cronjob.ports.clock import Clock
from cronjob.ports.events import EventPublisher, NoPublisher
from cronjob.ports.metrics import Metrics, NullMetrics
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable
from cronjob.ports.signal import WorkSignal
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services import log_context
from cronjob.services.cancelled_run import keep_cancelled_run

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """How one replica claims and runs work.

    ``max_in_flight`` bounds the runs of this replica; ``type_limits`` bounds the runs of some
    task types (e.g. ``{"email": 5}``). Work beyond either waits in the store, in due order.
    ``run_timeout`` bounds how long a run's task may take, unless the schedule has a limit of its
    own (``Schedule.run_timeout``) or its task handler one for it (``TaskHandler.run_timeout``).
    A run's outcome that the store does not take is written again after ``save_retry`` (the
    first pause and the longest, in seconds, doubling in between), at least ``save_attempts``
    times and for as long as the run's lease holds.
    """

    owner: str
    lease_for: timedelta = timedelta(seconds=30)
    batch_size: int = 100
    max_in_flight: int = 100
    type_limits: Mapping[str, int] = field(default_factory=dict)
    default_retry: RetryPolicy = RetryPolicy()
    type_retry: Mapping[str, RetryPolicy] = field(default_factory=dict)
    retry_unknown: bool = False
    save_attempts: int = 5
    save_retry: tuple[float, float] = (0.2, 5.0)
    run_timeout: timedelta = timedelta(hours=1)


@dataclass(slots=True)
class _HeldLease:
    """A run in progress, for the lease keeper: its schedule and when (event-loop time) to renew."""

    schedule_id: str
    renew_at: float
    #: When (event-loop time) the lease lapses, as last written: at the claim, then at each renewal.
    lapses_at: float = math.inf
    renewal: asyncio.Task[None] | None = None  # the renewal in progress, if any
    finishing: bool = False  # the outcome is being written: a renewal refused now is that write's doing
    #: The run's time limit (see ``_call``): its task while the handler runs, the event-loop time
    #: by which the handler must end, the timer that stops it then, once armed, and whether it did.
    task: asyncio.Task[None] | None = None
    deadline: float = math.inf
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False
    renewal_failed: bool = False  # the last renewal failed (said once until one succeeds)


class Dispatcher:
    """Runs due work once per claim.

    ``dispatch_due`` claims at most as many schedules as there are free slots and starts a task
    for each; it does not wait for them. While a run lasts, one lease-keeper task (for all the
    runs) renews its lease; the run writes its outcome fenced by its attempt id: if another
    replica took the lease over, the write is refused and this replica's result is dropped (the
    new owner's stands). If a user cancelled the schedule while it ran (which took the lease
    away), the refused record is added to the cancelled schedule instead (``cancelled_run``).
    """

    def __init__(
        self,
        repository: ScheduleRepository,
        handlers: Mapping[str, TaskHandler],
        clock: Clock,
        signal: WorkSignal,
        settings: DispatcherSettings,
        *,
        jitter: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
        publisher: EventPublisher | None = None,
    ) -> None:
        self._repository = repository
        self._handlers = dict(handlers)
        self._clock = clock
        self._signal = signal
        self._settings = settings
        self._jitter = jitter
        self._metrics = metrics or NullMetrics()
        self._publisher = publisher or NoPublisher()
        self._in_flight: dict[asyncio.Task[None], str] = {}
        self._by_type: Counter[str] = Counter()
        self._more_may_be_due = False
        #: The runs in progress whose leases the keeper renews, by attempt id.
        self._held: dict[str, _HeldLease] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._renewals: set[asyncio.Task[None]] = set()  # renewals in progress
        #: Set by ``stop_waiting``: the drain in progress, or the next one, does not wait.
        self._cut_short = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """How many runs this replica has going."""
        return len(self._in_flight)

    @property
    def at_capacity(self) -> bool:
        """Whether every slot is taken (no claim until a run finishes)."""
        return len(self._in_flight) >= self._settings.max_in_flight

    @property
    def more_may_be_due(self) -> bool:
        """Whether a claim of the last ``dispatch_due`` got all it asked for, so more may be due
        right now; False when every claim came back short (nothing else was due when it looked)."""
        return self._more_may_be_due

    @property
    def types_at_limit(self) -> bool:
        """Whether some task type has used up its own limit (its due work waits for a slot)."""
        return any(self._by_type[t] >= cap for t, cap in self._settings.type_limits.items())

    async def dispatch_due(self) -> int:
        """Claim what is due (up to the free slots) and start running it. Returns how many were claimed.

        Task types with their own limit are claimed separately, each up to its free slots; the
        other types share what is left of the replica's slots.
        """
        settings = self._settings
        free = min(settings.max_in_flight - len(self._in_flight), settings.batch_size)
        claimed = 0
        full = False
        now = self._clock.now()

        async def claim(room: int, **types: tuple[str, ...]) -> None:
            nonlocal claimed, full
            batch = await self._repository.claim_due(
                now=now, owner=settings.owner, lease_for=settings.lease_for, limit=room, **types)
            full = full or len(batch) >= room
            claimed += self._start(batch)

        for task_type, cap in settings.type_limits.items():
            room = min(cap - self._by_type[task_type], free - claimed)
            if room > 0:
                await claim(room, task_types=(task_type,))
        if free - claimed > 0:
            await claim(free - claimed, exclude_types=tuple(settings.type_limits))
        self._more_may_be_due = full
        return claimed

    def _start(self, claimed: list[Schedule]) -> int:
        for schedule in claimed:
            if schedule.lease is not None and schedule.lease.taken_over_from is not None:
                self._metrics.lease_taken_over(schedule.task_type)
            task = asyncio.create_task(self._run(schedule), name=f"run-{schedule.id}")
            if task.done():  # run to its end already, by an eager task factory (Python 3.12+)
                continue
            self._in_flight[task] = schedule.task_type  # until the run ends: ``_finished``
            self._by_type[schedule.task_type] += 1
        if claimed:
            self._metrics.in_flight(len(self._in_flight))
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """Free the slot of the run ``task``, as its last step (not a done callback: that is one
        more callback for the event loop to schedule and run per run, about 4% of a burst's CPU),
        or in ``drain`` for one cancelled before it began."""
        was_full = len(self._in_flight) >= self._settings.max_in_flight
        task_type = self._in_flight.pop(task, None)
        if task_type is not None:
            cap = self._settings.type_limits.get(task_type)
            was_full = was_full or (cap is not None and self._by_type[task_type] >= cap)
            self._by_type[task_type] -= 1
        self._metrics.in_flight(len(self._in_flight))
        if was_full:
            # A slot the loop was waiting for is free: let it claim more without waiting for its
            # next poll. (Below the limits it claims what is due anyway: no need to wake it.)
            self._signal.notify(self._clock.now())

    def stop_waiting(self) -> int:
        """End a graceful shutdown's wait now (a second SIGTERM): the drain in progress, or the
        next one, cancels the runs in progress at once, as it does once its timeout is over.
        Returns how many runs are in progress."""
        self._cut_short.set()
        return len(self._in_flight)

    async def drain(self, timeout: float) -> None:
        """Graceful shutdown: wait up to ``timeout`` seconds (or until ``stop_waiting``) for runs
        in progress, then cancel the rest, which give their leases back (due again at once, for
        any replica)."""
        if self._in_flight and not self._cut_short.is_set():
            log.info("stopping: waiting up to %g s for %d running jobs", timeout, len(self._in_flight))
            finished = asyncio.ensure_future(asyncio.wait(set(self._in_flight)))
            cut_short = asyncio.ensure_future(self._cut_short.wait())
            try:
                await asyncio.wait({finished, cut_short}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                finished.cancel()  # only the wait: the runs go on until cancelled below
                cut_short.cancel()
        leftovers = set(self._in_flight)
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=10)
            for task in leftovers:
                if task.done() and task in self._in_flight:  # cancelled before it began: none of it ran
                    self._finished(task)
        if self._keeper is not None:
            # asyncio.wait, not await: neither the keeper's end nor its cancellation is raised
            # here, while a cancellation of drain itself still is.
            self._keeper.cancel()
            for renewal in self._renewals:
                renewal.cancel()
            await asyncio.wait({self._keeper, *self._renewals})
            self._keeper = None
        self._cut_short.clear()

    async def _run(self, schedule: Schedule) -> None:
        assert schedule.lease is not None, "claim_due returns leased schedules"
        attempt_id = schedule.lease.attempt_id
        log_context.schedule_id.set(schedule.id)
        log_context.attempt_id.set(attempt_id)
        try:
            if isinstance(schedule.trigger, UnreadableTrigger):
                # Nothing written, the lease not renewed: once it lapses a replica that reads the
                # rule (the version that wrote it) takes the run over; this one claims it again then.
                log.warning("schedule %s not run: its rule %r is not one this version reads (%s); left to a "
                            "replica of the version that wrote it", schedule.id, schedule.trigger.expression,
                            schedule.trigger.reason)
                return
            self._hold(schedule, attempt_id)  # renewed by the lease keeper while the run lasts
            due = schedule.next_run_at
            if not await self._lease_is_fresh(schedule, attempt_id):
                return
            now = self._clock.now()
            schedule.catch_up(now)  # coalescing: run once, as the latest occurrence due
            reason = schedule.misfire_reason(now)
            if reason is not None:
                schedule.miss(attempt_id=attempt_id, now=now, reason=reason)
                await self._record(schedule, attempt_id)
            elif (wait := self._held_back(schedule)) is not None:
                log.info("schedule %s held back %.1f s before it started", schedule.id, wait.total_seconds())
                schedule.defer(attempt_id=attempt_id, now=now, until=now + wait)
                await self._record(schedule, attempt_id)
            else:
                schedule.mark_started(attempt_id=attempt_id, now=now)
                # Only a run that starts: one missed or held back is no lateness of the scheduler's.
                self._metrics.dispatched(schedule.task_type, max((now - (due or now)).total_seconds(), 0.0))
                await self._publish(schedule, schedule.events[-1:])
                await self._execute(schedule, attempt_id)
        except asyncio.CancelledError:
            # Shutdown cut the run short: give the claim back so another replica runs it now
            # rather than after the lease lapses. (At-least-once: the work may have started.)
            if schedule.status is ScheduleStatus.RUNNING and schedule.lease is not None:
                schedule.release(attempt_id=attempt_id, now=self._clock.now())
                await self._record(schedule, attempt_id)
            raise
        except Exception:  # never let one run kill the loop; the lease lapses and it is retried
            log.exception("run of schedule %s attempt %s crashed", schedule.id, attempt_id)
        finally:
            self._held.pop(attempt_id, None)
            self._finished(asyncio.current_task())  # type: ignore[arg-type]

    def _held_back(self, schedule: Schedule) -> timedelta | None:
        """How long its handler holds the run back before it starts (see TaskHandler.hold_back)."""
        handler = self._handlers.get(schedule.task_type)
        wait = handler.hold_back(schedule) if handler is not None else None
        return wait if wait is not None and wait > timedelta(0) else None

    async def _lease_is_fresh(self, schedule: Schedule, attempt_id: str) -> bool:
        """A claim that came back late (a slow store, a long lock wait) may hold a lease with
        little time left, or already lapsed and taken over: renew it before doing anything, and
        skip the run when that fails, so two replicas never work on one occurrence knowingly."""
        assert schedule.lease is not None
        now = self._clock.now()
        if schedule.lease.until - now >= self._settings.lease_for / 2:
            return True
        until = now + self._settings.lease_for
        asked_at = asyncio.get_running_loop().time()
        if await self._repository.renew_lease(schedule.id, attempt_id, until):
            schedule.lease = replace(schedule.lease, until=until)
            if (held := self._held.get(attempt_id)) is not None:
                held.lapses_at = asked_at + self._settings.lease_for.total_seconds()
            return True
        log.warning("schedule %s attempt %s: the claim came back too late (lease lost); not run",
                    schedule.id, attempt_id)
        return False

    async def _execute(self, schedule: Schedule, attempt_id: str) -> None:
        handler = self._handlers.get(schedule.task_type)
        if handler is None:
            self._fail(schedule, attempt_id, ErrorInfo("unknown_task_type",
                                                       f"no handler for task type {schedule.task_type!r}"))
        else:
            try:
                outcome = await self._call(handler, schedule, attempt_id)
            except DeliveryError as exc:
                self._fail(
                    schedule, attempt_id,
                    ErrorInfo(exc.code, exc.message, exc.retryable, dict(exc.details)),
                    retry_after=exc.retry_after_seconds,
                )
            except DeliveryDeferred as exc:
                log.info("schedule %s deferred %.1f s: %s", schedule.id, exc.seconds, exc.reason)
                now = self._clock.now()
                schedule.defer(attempt_id=attempt_id, now=now, until=now + timedelta(seconds=exc.seconds))
            except DeliveryOutcomeUnknown as exc:
                if self._settings.retry_unknown:  # opted in: a possible duplicate beats a lost message
                    self._fail(schedule, attempt_id, ErrorInfo("outcome_unknown", exc.message, True))
                else:
                    schedule.outcome_unknown(attempt_id=attempt_id, now=self._clock.now(),
                                             error=ErrorInfo("outcome_unknown", exc.message))
            except Exception as exc:  # a bug or an unexpected peer: retried under the policy
                log.exception("handler for %s failed on schedule %s", schedule.task_type, schedule.id)
                self._fail(schedule, attempt_id, ErrorInfo("internal_error", f"{type(exc).__name__}: {exc}", True))
            else:
                schedule.succeed(attempt_id=attempt_id, now=self._clock.now(),
                                 provider_message_id=outcome.provider_message_id, result=outcome.result)
        await self._record(schedule, attempt_id)

    async def _call(self, handler: TaskHandler, schedule: Schedule, attempt_id: str) -> TaskOutcome:
        """``handler.run(schedule)`` within the run's time limit. Past it the handler is cancelled
        (a hung routine, a peer that never answers: its slot and lease are freed) and
        DeliveryError ``run_timeout`` is raised, retryable: the retry policy decides. How long the
        handler took is measured (``Metrics.run_took``) unless a shutdown cut it short."""
        # Not asyncio.timeout: a timer per run costs every run a heap entry on the event loop (a
        # burst of short runs measurably slower). The lease keeper, which sees every run at least
        # once a renewal period, arms a timer only once a deadline is that close (``_arm``).
        limit = self.run_timeout(schedule)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        kept = self._held.get(attempt_id)  # None: the keeper let go of it (lease lost)
        held = kept if kept is not None else _HeldLease(schedule.id, renew_at=math.inf)
        held.task, held.deadline = task, loop.time() + limit.total_seconds()
        if kept is None or limit <= self._settings.lease_for / 3:  # the keeper would not look in time
            self._arm(held)
        started, ended = loop.time(), True  # ended False: a shutdown cut it short, no run time of its own
        try:
            return await handler.run(schedule)
        except asyncio.CancelledError:
            if held.timed_out:
                held.timed_out = False  # its cancellation taken back, once
                if task.uncancel() == 0:  # no other (a shutdown's) pending: the run's time is up
                    log.warning("schedule %s attempt %s was stopped at its time limit of %s s",
                                schedule.id, attempt_id, f"{limit.total_seconds():g}")
                    error = run_timeout_error(limit)
                    raise DeliveryError(error.code, error.message, retryable=error.retryable) from None
            ended = False
            raise
        finally:
            if ended:
                self._metrics.run_took(schedule.task_type, loop.time() - started)
            held.task = None
            if held.timer is not None:
                held.timer.cancel()
                held.timer = None
            if held.timed_out:  # the handler caught the cancellation and ended otherwise: take it back
                held.timed_out = False
                task.uncancel()

    def _arm(self, held: _HeldLease) -> None:
        """Stop the handler of ``held`` at its deadline (at once if it passed), unless a timer does already."""
        if held.task is not None and held.timer is None:
            held.timer = asyncio.get_running_loop().call_at(held.deadline, self._time_up, held)

    @staticmethod
    def _time_up(held: _HeldLease) -> None:
        held.timer = None
        if held.task is not None and not held.timed_out:
            held.timed_out = True
            held.task.cancel()

    def run_timeout(self, schedule: Schedule) -> timedelta:
        """How long a run of ``schedule`` may take: its own limit, else its handler's for it, else the replica's."""
        if schedule.run_timeout is not None:
            return schedule.run_timeout
        handler = self._handlers.get(schedule.task_type)
        return (handler.run_timeout(schedule) if handler is not None else None) or self._settings.run_timeout

    def _fail(self, schedule: Schedule, attempt_id: str, error: ErrorInfo,
              retry_after: float | None = None) -> None:
        now = self._clock.now()
        previous = schedule.attempts_for_occurrence
        first_attempt_at = previous[0].started_at if previous else (
            schedule.lease.claimed_at if schedule.lease else now)
        policy = schedule.retry or self._settings.type_retry.get(schedule.task_type) or self._settings.default_retry
        decision = policy.decide(
            attempts_made=len(previous) + 1,
            retryable=error.retryable,
            first_attempt_at=first_attempt_at,
            now=now,
            jitter=self._jitter(),
            retry_after=timedelta(seconds=retry_after) if retry_after else None,
        )
        schedule.fail(attempt_id=attempt_id, now=now, error=error, decision=decision)

    async def _publish(self, schedule: Schedule, events: list[ScheduleEvent]) -> bool:
        """Hand ``events`` to the publisher; False when some delivery could not be stored."""
        if not events:
            return True
        try:
            return await self._publisher.publish(schedule, events)
        except Exception:  # the publisher's contract says it never raises; be safe anyway
            log.exception("publishing %d event(s) of schedule %s failed", len(events), schedule.id)
            return False

    async def _record(self, schedule: Schedule, attempt_id: str) -> None:
        """Publish the events the run recorded, then write the outcome, fenced; retry a store
        outage while the lease still holds (as it stood at the first write refused; at least
        ``save_attempts`` times). An outage that outlasts both is logged as a warning (an
        expected condition, not a crash): the outcome is left unwritten, and the run is taken
        over again once its lease lapses (at-least-once).

        Publishing first (the publisher's contract) means a crash between the two writes
        cannot lose the events: their deliveries are stored, and each waits until it finds its
        event stored, or gives it up if the outcome never is (a lost lease, a crash).

        Giving up before the lease lapses would have the run claimed again once it does, and
        its work done twice, after an outage shorter than the lease: so the last try is made
        as the lease lapses (still fenced: it is written unless another replica claimed it).
        """
        recorded = [e for e in schedule.events if e.attempt_id == attempt_id and e.type != "started"]
        if (held := self._held.get(attempt_id)) is not None:
            held.finishing = True
        published = False
        delay, longest = self._settings.save_retry
        loop = asyncio.get_running_loop()
        attempt = 0
        give_up_at: float | None = None  # the lease's lapse as it stood at the first failure
        while True:
            attempt += 1
            try:
                if not published:
                    published = await self._publish(schedule, recorded)
                saved = await self._repository.save(
                    schedule, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
                if not saved and attempt > 1:
                    # An earlier try may have been written with only its answer lost (the store
                    # went away mid-reply): then the fence refuses this one, but the outcome is in.
                    saved = await self._written_before(schedule.id, recorded)
            except Exception as error:
                if give_up_at is None:
                    # Not later, though the keeper may renew the lease meanwhile: a store that
                    # takes renewals but never this outcome must not hold the run's slot for ever.
                    held = self._held.get(attempt_id)
                    give_up_at = held.lapses_at if held is not None else loop.time()
                lease_left = give_up_at - loop.time()
                if attempt >= self._settings.save_attempts and lease_left <= 0:
                    if not isinstance(error, StoreUnavailable):  # not an outage: a bug, with its traceback
                        raise
                    log.warning("schedule %s attempt %s -> %s not recorded: the store is unavailable "
                                "(%s: %s); it runs again once its lease lapses", schedule.id, attempt_id,
                                schedule.status.value, type(error).__name__, error)
                    return
                if attempt == 1:  # once per run: an outage is tried again many times, by every run
                    outage = isinstance(error, StoreUnavailable)
                    log.warning("schedule %s attempt %s -> %s: %s (%s: %s); writing it again until its lease "
                                "lapses", schedule.id, attempt_id, schedule.status.value,
                                "the store is unavailable" if outage else "the write failed",
                                type(error).__name__, error, exc_info=not outage)
                else:
                    log.debug("schedule %s attempt %s: outcome write %d failed (%s); retrying",
                              schedule.id, attempt_id, attempt, type(error).__name__)
                await asyncio.sleep(delay if attempt < self._settings.save_attempts else min(delay, lease_left))
                delay = min(delay * 2, longest)
                continue
            if not saved:
                # Refused by the fence, which is no outage: a user cancelled the (recurring)
                # schedule while it ran, and the run's record is kept all the same; or another
                # replica took the lapsed lease over, and the new owner's outcome stands.
                await self._keep_cancelled(schedule, attempt_id, recorded)
            else:
                log.info("schedule %s attempt %s -> %s", schedule.id, attempt_id, schedule.status.value)
                if schedule.attempts and schedule.attempts[-1].attempt_id == attempt_id:
                    last = schedule.attempts[-1]
                    self._metrics.attempt_finished(schedule.task_type, last.outcome,
                                                   last.error.code if last.error else None)
                if schedule.status is ScheduleStatus.SCHEDULED and schedule.next_run_at is not None:
                    self._signal.notify(schedule.next_run_at)
                if not published:  # the store came back for the outcome: one more try
                    await self._publish(schedule, recorded)
            return

    async def _keep_cancelled(self, run: Schedule, attempt_id: str, published: list[ScheduleEvent]) -> None:
        """After the fenced write of a run was refused: keep its record when its schedule was
        cancelled while it ran (see :func:`keep_cancelled_run`), else say its result was dropped."""
        settings = self._settings
        kept = await keep_cancelled_run(self._repository, self._publisher, self._clock, run, attempt_id, published,
                                        tries=settings.save_attempts, pause=settings.save_retry)
        if kept is None:
            log.warning("schedule %s attempt %s lost its lease; its result was not written", run.id, attempt_id)
            return
        log.info("schedule %s attempt %s -> %s, kept by its schedule, cancelled while it ran", run.id, attempt_id,
                 kept.attempt.outcome)
        self._metrics.attempt_finished(run.task_type, kept.attempt.outcome,
                                       kept.attempt.error.code if kept.attempt.error else None)

    async def _written_before(self, schedule_id: str, recorded: list[ScheduleEvent]) -> bool:
        """Whether the store holds this run's outcome: every event it recorded."""
        if not recorded:
            return False
        stored = await self._repository.get(schedule_id)
        return stored is not None and {e.id for e in recorded} <= {e.id for e in stored.events}

    def _hold(self, schedule: Schedule, attempt_id: str) -> None:
        """Have the lease of a run that starts now renewed a third of a lease from now, and on."""
        assert schedule.lease is not None
        loop = asyncio.get_running_loop()
        lapses_at = loop.time() + (schedule.lease.until - self._clock.now()).total_seconds()
        self._held[attempt_id] = _HeldLease(schedule.id, loop.time() + self._settings.lease_for.total_seconds() / 3,
                                            lapses_at=lapses_at)
        if self._keeper is None or self._keeper.done():
            # In a context of its own: not in the log context of the run that happened to start it.
            self._keeper = loop.create_task(self._keep_leases(), name="lease-keeper", context=contextvars.Context())

    async def _keep_leases(self) -> None:
        """Renew the lease of every run in progress every third of its length, until it ends or
        its lease is lost (then the run's own writes are refused); one task for all the runs,
        rather than a timer each (most runs end long before their first renewal).

        Each renewal runs as a task of its own, not awaited here: a renewal that hangs (a
        stalled connection) must not hold back the renewals of the other runs.
        """
        loop = asyncio.get_running_loop()
        period = self._settings.lease_for.total_seconds() / 3
        while self._held:
            now = loop.time()
            for attempt_id, held in list(self._held.items()):
                if held.deadline <= now + period:
                    self._arm(held)  # it passes before the keeper's next look
                if held.renewal is None and held.renew_at <= now:
                    held.renewal = loop.create_task(self._renew(attempt_id, held, period))
                    self._renewals.add(held.renewal)
                    held.renewal.add_done_callback(self._renewals.discard)
            # A renewal in progress sets its next time a period ahead when it ends.
            waiting = [held.renew_at for held in self._held.values() if held.renewal is None]
            await asyncio.sleep(max(min(waiting) - now, 0.0) if waiting else period)

    async def _renew(self, attempt_id: str, lease: _HeldLease, period: float) -> None:
        schedule_id = lease.schedule_id
        # A task of its own, in a copy of the keeper's empty context: label its lines with the run.
        log_context.schedule_id.set(schedule_id)
        log_context.attempt_id.set(attempt_id)
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        renewed = False
        try:
            held = renewed = await self._repository.renew_lease(
                schedule_id, attempt_id, self._clock.now() + self._settings.lease_for)
        except Exception as error:
            if not lease.renewal_failed:  # once until one succeeds: every run's keeper tries each third of a lease
                outage = isinstance(error, StoreUnavailable)
                log.warning("could not renew the lease of schedule %s (%s: %s); will try again every %g s",
                            schedule_id, type(error).__name__, error, period, exc_info=not outage)
            lease.renewal_failed = True
            held = True  # try again in a third of a lease
        finally:
            lease.renewal = None
        if renewed:
            lease.lapses_at = asked_at + self._settings.lease_for.total_seconds()
            if lease.renewal_failed:
                log.info("renewed the lease of schedule %s again", schedule_id)
                lease.renewal_failed = False
        if attempt_id not in self._held or (not held and lease.finishing):
            return  # the run ended meanwhile, or its outcome write just released the lease
        if not held:
            log.warning("schedule %s attempt %s: lease lost (taken over by another replica, or the "
                        "schedule was cancelled)", schedule_id, attempt_id)
            self._held.pop(attempt_id, None)
            self._arm(lease)  # the keeper no longer sees it: its time limit on a timer of its own
        else:
            lease.renew_at = loop.time() + period
