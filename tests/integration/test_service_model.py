"""A model-based test of the scheduling service end to end, below the HTTP layer.

The system under test is the real :class:`SchedulingService`, two real :class:`Dispatcher`
replicas (different owners, two slots each, competing for claims over one store) and the real
:class:`WhatsAppMessageHandler`, over the shipped in-memory store, the SQLite store on a temp
file or the MongoDB test server (one repository instance per replica, as separate processes
would have: one SQLite connection or one MongoDB client each). Time is a
:class:`FixedClock` that only the machine moves; the sender is a :class:`RecordingMessageSender`
that can be scripted, per schedule, to fail its next sends (retryable, rate limited, permanent,
outcome unknown) and that logs every send with the clock time and the delivery key.

The Hypothesis state machine schedules one-off messages (some too far in the past, some with
``send_by``, a misfire grace, a retry policy or a client idempotency key, whose replay must
answer with the stored schedule) and recurring ones (``every N minutes``, with a grace and
coalescing or not); runs them now, pauses, resumes, cancels and retries them as an operator
would (even at the instant of the run they react to); scripts sender failures; moves the clock, then lets no replica, one
or both work until nothing is due at that instant; and "crashes" a replica: it claims due work
through ``claim_due`` (which must hand out the earliest due work) and dies before running any,
so its leases must lapse and a live replica take the work over.

Next to the real system runs a model: the expected status, due time, occurrence, attempts,
last error and sends of every schedule, computed from the product's documented rules (misfire
grace and ``send_by``, coalescing, retry backoff with the policy's limits, operator retry and
cancel, what the service refuses). After every step the machine asserts:

- the store agrees with the model, schedule by schedule (status, next run, occurrence, lease,
  attempts, last error and, for a miss, its reason, take-overs in the event log), and ``list``
  (all, and by status) and ``count_by_status_and_type`` return exactly the schedules accepted,
  newest first: nothing accepted is lost;
- the sends are exactly the ones the model expects, at the expected instants: on time and never
  before due, once per occurrence, retried only as the policy allows, never after a cancel;
- and, independently of the model: no send before its occurrence, the message as rendered at
  scheduling time, no delivery key sent again after a send that may have arrived (succeeded, or
  outcome unknown), no send of a schedule after its cancel, no occurrence with more attempts than
  its retry policy allows, no attempt recorded by the crashed replica, every successful send
  recorded on its schedule (attempt and ``provider_message_id``, and ``succeeded`` for a one-off).

When a run ends without failing, the clock is moved from one due one-off (or lapsing lease) to
the next and both replicas work until quiet: every one-off must then be final (succeeded, dead,
unknown, missed or cancelled), and nothing may be left running or scheduled in the past.

The sender never fails after a message was handed over except as scripted, and the crashed
replica never sends, so no duplicate is legitimate here: every delivery key is sent
successfully at most once.

The three stores run the same machine (derandomized, so CI sees the same walks every time;
MongoDB fewer walks, as the test server takes milliseconds per write). A few
scenarios too rare for random walks (an operator retry at the very instant of the run it reacts
to, a repeat of an accepted request long after its ``send_at``, a lease take-over) are replayed
through the same rules and checks at the end of the file.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import (
    DeliveryError,
    DeliveryOutcomeUnknown,
    MessageKind,
    OutboundMessage,
    SendReceipt,
)
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import HISTORY_LIMIT, Schedule, ScheduleStatus
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import (
    WHATSAPP_TEMPLATE,
    WHATSAPP_TEXT,
    CreateScheduleCommand,
    ScheduleMessageCommand,
)
from cronjob.services.scheduling import ScheduleConflict, SchedulingService
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.clock import FixedClock
from tests.support.store_machine import StoreMachine

S = ScheduleStatus

T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
ONE_MS = timedelta(milliseconds=1)  # the precision the stores keep
#: The service's defaults: a send_at up to this far in the past is accepted (and sent at once)...
PAST_GRACE = timedelta(minutes=5)
#: ... and a one-off without a misfire policy of its own is missed when claimed later than this.
ONE_OFF_GRACE = timedelta(hours=1)
#: The replicas' retry policy for schedules without one of their own (short max_age: reachable).
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=30),
                            max_delay=timedelta(minutes=5), max_age=timedelta(hours=2))
#: Slots per replica: small, so that a burst takes several rounds of claims.
SLOTS = 2
CRASHED = "replica-crashed"
FINAL = {S.SUCCEEDED, S.DEAD, S.UNKNOWN, S.MISSED, S.CANCELLED}
#: A bound on claim rounds at one instant (a livelock would otherwise hang the test).
MAX_ROUNDS = 500
#: Walks of the MongoDB machine: the test server takes milliseconds per write (see ../shared/design.md).
MONGODB_EXAMPLES = 30
TEXT_PAYLOAD = {"to": "5511999999999", "kind": "text", "body": "Oi, {{1}}", "params": ["Ana"]}


# -- the scripted sender ---------------------------------------------------------------------


class Failure(enum.Enum):
    """What a scripted send does instead of succeeding."""

    RETRYABLE = "retryable"
    RATE_LIMITED = "rate_limited"  # retryable, with the provider's retry-after
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


RETRY_AFTER = timedelta(seconds=90)
ERROR_CODES = {Failure.RETRYABLE: "131000", Failure.RATE_LIMITED: "130429", Failure.PERMANENT: "131026",
               Failure.UNKNOWN: "outcome_unknown"}


def error_for(failure: Failure) -> Exception:
    """The exception a provider adapter raises for ``failure``."""
    if failure is Failure.UNKNOWN:
        return DeliveryOutcomeUnknown("timed out after the request was written")
    return DeliveryError(ERROR_CODES[failure], f"scripted {failure.value} failure",
                         retryable=failure is not Failure.PERMANENT,
                         retry_after_seconds=RETRY_AFTER.total_seconds() if failure is Failure.RATE_LIMITED else None)


@dataclass(frozen=True, slots=True)
class Send:
    """One message handed to the sender: whose, its delivery key, when, and how it ended
    (``ok`` or a :class:`Failure` value), with the wamid of a successful one."""

    schedule_id: str
    key: str
    at: datetime
    outcome: str
    wamid: str | None = None
    to: str = ""
    body: str = ""

    @property
    def occurrence(self) -> datetime:
        return datetime.fromisoformat(self.key.split(":", 1)[1])

    @property
    def may_have_arrived(self) -> bool:
        return self.outcome in ("ok", Failure.UNKNOWN.value)


class ScriptedSender(RecordingMessageSender):
    """Fails the next sends of a schedule as scripted for it; logs every send with the clock time."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__()
        self._clock = clock
        self._scripts: dict[str, list[Failure]] = {}
        self.log: list[Send] = []

    def script(self, schedule_id: str, failures: list[Failure]) -> None:
        self._scripts.setdefault(schedule_id, []).extend(failures)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        await asyncio.sleep(0)  # let the other runs interleave, as a network call would
        schedule_id = message.idempotency_key.split(":", 1)[0]
        queued = self._scripts.get(schedule_id)
        if queued:
            failure = queued.pop(0)
            self.log.append(Send(schedule_id, message.idempotency_key, self._clock.now(), failure.value,
                                 to=message.to, body=message.body))
            raise error_for(failure)
        receipt = await super().send(message)
        self.log.append(Send(schedule_id, message.idempotency_key, self._clock.now(), "ok", receipt.message_id,
                             to=message.to, body=message.body))
        return receipt


# -- the model -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelAttempt:
    """What the store's Attempt must say (its id, owner and times of day aside)."""

    scheduled_for: datetime
    number: int
    outcome: str
    started_at: datetime
    error_code: str | None


@dataclass(slots=True)
class ModelSchedule:
    """What the product's rules say one schedule must look like."""

    id: str
    created_at: datetime
    idempotency_key: str | None
    retry: RetryPolicy  # the effective policy: the schedule's own, else the replicas' default
    grace: timedelta | None
    coalesce: bool
    send_by: datetime | None
    every: timedelta | None  # recurring: fires at anchor + k * every, k >= 1
    anchor: datetime | None
    status: ScheduleStatus
    next_run_at: datetime | None
    occurrence: datetime | None
    attempts: list[ModelAttempt] = field(default_factory=list)
    last_error: str | None = None  # its code
    crash_until: datetime | None = None  # held by the crashed replica until then
    script: list[Failure] = field(default_factory=list)
    sends: list[tuple[str, datetime, str]] = field(default_factory=list)  # expected (key, at, outcome)
    cancelled_after: int | None = None  # the sender log's length when the cancel was accepted
    takeovers: int = 0  # runs started on a lapsed lease of the crashed replica
    missed_for: str | None = None  # why the last miss: "send_by" or "grace"

    @property
    def recurring(self) -> bool:
        return self.every is not None

    @property
    def key(self) -> str:
        assert self.occurrence is not None
        return f"{self.id}:{self.occurrence.isoformat()}"

    def due(self, now: datetime) -> bool:
        if self.status is S.SCHEDULED:
            return self.next_run_at is not None and self.next_run_at <= now
        return self.status is S.RUNNING and self.crash_until is not None and self.crash_until < now

    def due_order(self) -> tuple[datetime, str]:
        assert self.next_run_at is not None
        return self.next_run_at, self.id

    def next_fire(self, after: datetime) -> datetime:
        assert self.every is not None and self.anchor is not None
        return self.anchor + ((after - self.anchor) // self.every + 1) * self.every

    def misfire_reason(self, now: datetime) -> str | None:
        """Why the occurrence must be missed at ``now`` ("send_by" or "grace"), None if it may run."""
        if self.send_by is not None and now > self.send_by:
            return "send_by"
        assert self.next_run_at is not None
        if self.grace is not None and now - self.next_run_at > self.grace:
            return "grace"
        return None

    def _attempt(self, now: datetime, outcome: str, error_code: str | None) -> None:
        assert self.occurrence is not None
        number = sum(1 for a in self.attempts if a.scheduled_for == self.occurrence) + 1
        self.attempts.append(ModelAttempt(self.occurrence, number, outcome, now, error_code))
        self.crash_until = None

    def _advance_or(self, final: ScheduleStatus, now: datetime) -> None:
        if not self.recurring:
            self.status, self.next_run_at = final, None
            return
        assert self.occurrence is not None
        upcoming = self.next_fire(self.occurrence)
        if upcoming <= now and self.coalesce:
            upcoming = self.next_fire(now)
        self.status, self.next_run_at, self.occurrence = S.SCHEDULED, upcoming, upcoming

    def run(self, now: datetime) -> None:
        """One claimed run at ``now`` (every run of the machine is claimed, started and ended
        at one instant: the clock stands still while the replicas work)."""
        if (self.recurring and self.coalesce and self.next_run_at == self.occurrence
                and not any(a.scheduled_for == self.occurrence for a in self.attempts)):
            # Coalescing: one run for every occurrence due, as the latest of them (README).
            assert self.occurrence is not None
            latest = self.next_fire(now) - self.every  # type: ignore[operator]
            if latest > self.occurrence:
                self.next_run_at = self.occurrence = latest
        reason = self.misfire_reason(now)
        if reason is None and self.crash_until is not None:
            self.takeovers += 1  # its "started" event names the owner whose lease lapsed
        if reason is not None:
            self._attempt(now, "missed", "missed")
            self.last_error, self.missed_for = "missed", reason
            self._advance_or(S.MISSED, now)
            if self.status is S.SCHEDULED and self.next_run_at is not None and self.next_run_at <= now:
                # Those older than the grace would be missed too; without coalescing, those
                # still within it run (README: "false runs each of them").
                if self.coalesce or self.grace is None:
                    self.next_run_at = self.occurrence = self.next_fire(now)
                else:
                    within = self.next_fire(now - self.grace - timedelta(microseconds=1))
                    self.next_run_at = self.occurrence = max(within, self.next_run_at)
            return
        failure = self.script.pop(0) if self.script else None
        self.sends.append((self.key, now, "ok" if failure is None else failure.value))
        if failure is None:
            self._attempt(now, "succeeded", None)
            self.last_error = None
            self._advance_or(S.SUCCEEDED, now)
        elif failure is Failure.UNKNOWN:
            self._attempt(now, "unknown", "outcome_unknown")
            self.last_error = "outcome_unknown"
            self._advance_or(S.UNKNOWN, now)
        else:
            retry_at = self._retry_at(failure, now)
            self.last_error = ERROR_CODES[failure]
            if retry_at is None:
                self._attempt(now, "failed", self.last_error)
                self._advance_or(S.DEAD, now)
            else:
                self._attempt(now, "retrying", self.last_error)
                self.status, self.next_run_at = S.SCHEDULED, retry_at

    def _retry_at(self, failure: Failure, now: datetime) -> datetime | None:
        """The retry policy, as documented on RetryPolicy (jitter 1.0: the replicas' jitter)."""
        if failure is Failure.PERMANENT:
            return None
        previous = [a for a in self.attempts if a.scheduled_for == self.occurrence]
        made = len(previous) + 1
        if made >= self.retry.max_attempts:
            return None
        backoff = min(self.retry.initial_delay * 2 ** (made - 1), self.retry.max_delay)
        delay = max(backoff, self.retry.min_delay, RETRY_AFTER if failure is Failure.RATE_LIMITED else timedelta(0))
        first = previous[0].started_at if previous else now
        retry_at = now + delay
        return None if retry_at - first > self.retry.max_age else retry_at

    def work_until_quiet(self, now: datetime) -> None:
        for _ in range(MAX_ROUNDS):
            if not self.due(now):
                return
            self.run(now)
        raise AssertionError(f"model: {self.id} still due after {MAX_ROUNDS} runs at {now}")


# -- strategies ------------------------------------------------------------------------------

retry_policies = st.one_of(
    st.none(),
    st.builds(RetryPolicy, max_attempts=st.integers(1, 4),
              initial_delay=st.sampled_from([timedelta(seconds=5), timedelta(seconds=60), timedelta(seconds=600)]),
              max_delay=st.just(timedelta(seconds=600)),
              max_age=st.sampled_from([timedelta(minutes=10), timedelta(hours=1), timedelta(hours=24)])),
)
client_keys = st.sampled_from([None, None, "order-1", "order-2"])

# -- the machine -----------------------------------------------------------------------------


class ServiceModel(StoreMachine):
    """The service, two replicas and a crash-prone third over one store, against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(T0)
        self.repositories = self.open_stores(2, "service-model")  # one per replica
        self.sender = ScriptedSender(self.clock)
        self.signal = InProcessWorkSignal(self.clock)
        ids = itertools.count(1)
        self.service = SchedulingService(self.repositories[0], self.clock, self.signal,
                                         parse_trigger=default_trigger_parser(),
                                         new_id=lambda: f"s{next(ids):04d}")
        handler = WhatsAppMessageHandler(self.sender)
        handlers = {WHATSAPP_TEMPLATE: handler, WHATSAPP_TEXT: handler}
        self.replicas = {
            name: Dispatcher(repository, handlers, self.clock, self.signal,
                             DispatcherSettings(owner=f"replica-{name}", lease_for=LEASE, batch_size=SLOTS,
                                                max_in_flight=SLOTS, default_retry=DEFAULT_RETRY),
                             jitter=lambda: 1.0)
            for name, repository in zip("ab", self.repositories, strict=True)
        }
        self.models: dict[str, ModelSchedule] = {}
        self.by_key: dict[str, str] = {}

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def pick(self, index: int) -> ModelSchedule:
        models = list(self.models.values())
        return models[index % len(models)]

    def accepted(self, model: ModelSchedule) -> None:
        self.models[model.id] = model
        if model.idempotency_key:
            self.by_key[model.idempotency_key] = model.id

    # -- creating --------------------------------------------------------------------------

    @rule(offset=st.integers(-400, -200) | st.integers(-60, 600) | st.integers(-400, 3600), send_by=st.none() | st.integers(-60, 3600),
          misfire=st.none() | st.just("always") | st.integers(0, 3600), retry=retry_policies, key=client_keys)
    def schedule_one_off(self, offset: int, send_by: int | None, misfire: str | int | None,
                         retry: RetryPolicy | None, key: str | None) -> None:
        now = self.now
        send_at = now + timedelta(seconds=offset)
        deadline = None if send_by is None else send_at + timedelta(seconds=send_by)
        # The command's grace: None is the service's default; zero (as "always") means no limit.
        grace = None if misfire is None else timedelta(seconds=0 if misfire == "always" else int(misfire))
        command = ScheduleMessageCommand(
            to="+5511999999999", body="Oi, {{1}}", kind=MessageKind.TEXT, params=("Ana",), send_at=send_at,
            send_at_text=send_at.isoformat(), timezone="UTC", idempotency_key=key, retry=retry, misfire_grace=grace,
            send_by=deadline)
        if key in self.by_key:
            # A repeat returns the first schedule (README: "a repeat returns the first schedule"),
            # whatever else it says, and however long after the first request it comes.
            replay = self.run(self.service.schedule_message(command))
            assert not replay.created and replay.schedule.id == self.by_key[key]
            return
        if send_at < now - PAST_GRACE:
            with pytest.raises(ValidationError):
                self.run(self.service.schedule_message(command))
            return
        if deadline is not None and deadline < send_at:
            with pytest.raises(ValidationError):
                self.run(self.service.schedule_message(command))
            return
        scheduled = self.run(self.service.schedule_message(command))
        assert scheduled.created
        schedule = scheduled.schedule
        assert (schedule.status, schedule.next_run_at, schedule.task_type) == (S.SCHEDULED, send_at, WHATSAPP_TEXT)
        self.accepted(ModelSchedule(
            id=schedule.id, created_at=now, idempotency_key=key, retry=retry or DEFAULT_RETRY,
            grace=ONE_OFF_GRACE if grace is None else grace or None, coalesce=True, send_by=deadline,
            every=None, anchor=None, status=S.SCHEDULED, next_run_at=send_at, occurrence=send_at))

    @rule(minutes=st.sampled_from([7, 30, 90]), grace=st.none() | st.integers(0, 1800), coalesce=st.booleans(),
          retry=retry_policies, key=client_keys)
    def schedule_recurring(self, minutes: int, grace: int | None, coalesce: bool, retry: RetryPolicy | None,
                           key: str | None) -> None:
        now = self.now
        grace_for = None if grace is None else timedelta(seconds=grace)
        command = CreateScheduleCommand(task_type=WHATSAPP_TEXT, payload=dict(TEXT_PAYLOAD),
                                        schedule=f"every {minutes} minutes", timezone="UTC",
                                        idempotency_key=key, retry=retry, misfire_grace=grace_for,
                                        coalesce=coalesce)
        scheduled = self.run(self.service.create(command))
        if key in self.by_key:
            assert not scheduled.created and scheduled.schedule.id == self.by_key[key]
            return
        assert scheduled.created
        every = timedelta(minutes=minutes)
        first = now + every
        assert scheduled.schedule.next_run_at == first
        self.accepted(ModelSchedule(
            id=scheduled.schedule.id, created_at=now, idempotency_key=key, retry=retry or DEFAULT_RETRY,
            grace=grace_for or None, coalesce=coalesce, send_by=None,
            every=every, anchor=now, status=S.SCHEDULED, next_run_at=first, occurrence=first))

    # -- operating -------------------------------------------------------------------------

    @precondition(lambda self: self.models)
    @rule(index=st.integers(min_value=0))
    def cancel(self, index: int) -> None:
        model = self.pick(index)
        # A recurring schedule also while a run holds it (here: the crashed replica's, whose
        # lease the cancel takes away).
        if model.status in (S.SCHEDULED, S.PAUSED, S.CANCELLED) or (model.status is S.RUNNING and model.recurring):
            cancelled = self.run(self.service.cancel(model.id))
            assert cancelled.status is S.CANCELLED
            if model.status is not S.CANCELLED:
                model.status, model.next_run_at, model.crash_until = S.CANCELLED, None, None
                model.cancelled_after = len(self.sender.log)
        else:
            with pytest.raises(ScheduleConflict):
                self.run(self.service.cancel(model.id))

    @precondition(lambda self: self.models)
    @rule(index=st.integers(min_value=0))
    def pause(self, index: int) -> None:
        """Held where it is: never claimed, its due time kept (a crashed replica's run is running)."""
        model = self.pick(index)
        if model.status in (S.SCHEDULED, S.PAUSED):
            paused = self.run(self.service.pause(model.id))
            assert (paused.status, paused.next_run_at) == (S.PAUSED, model.next_run_at), model.id
            model.status = S.PAUSED
        else:
            with pytest.raises(ScheduleConflict):
                self.run(self.service.pause(model.id))

    @precondition(lambda self: any(m.status is S.PAUSED for m in self.models.values()))
    @rule(index=st.integers(min_value=0))
    def resume(self, index: int) -> None:
        """A one-off keeps its time; a recurring schedule skips what fell due while it was paused."""
        paused = [m for m in self.models.values() if m.status is S.PAUSED]
        self._resume(paused[index % len(paused)])

    def _resume(self, model: ModelSchedule) -> None:
        resumed = self.run(self.service.resume(model.id))
        assert model.next_run_at is not None
        if model.recurring and model.next_run_at <= self.now:
            model.next_run_at = model.occurrence = model.next_fire(self.now)
        model.status = S.SCHEDULED
        assert (resumed.status, resumed.next_run_at) == (S.SCHEDULED, model.next_run_at), model.id

    @precondition(lambda self: self.models)
    @rule(index=st.integers(min_value=0))
    def run_now(self, index: int) -> None:
        """Due now: a retry now (same occurrence), else a new occurrence at now; one due already
        is left as it is, unless the claim would miss it for its grace (as the claim judges it);
        a one-off past its send_by is refused."""
        model = self.pick(index)
        now = self.now
        if model.status is not S.SCHEDULED or (model.send_by is not None and now > model.send_by):
            with pytest.raises(ScheduleConflict):
                self.run(self.service.run_now(model.id))
            return
        ran = self.run(self.service.run_now(model.id))
        assert model.next_run_at is not None
        if model.next_run_at > now or self._missed_when_claimed(model, now):
            due = now
            if not any(a.scheduled_for == model.occurrence for a in model.attempts):
                if model.attempts and model.attempts[-1].scheduled_for >= now:
                    # The last occurrence ran at this very instant (or a replica's clock was
                    # ahead): the new one is a millisecond later, so that its key is its own.
                    due = model.attempts[-1].scheduled_for + timedelta(milliseconds=1)
                model.occurrence = due
            model.next_run_at = due
        assert (ran.status, ran.next_run_at, ran.occurrence) == (S.SCHEDULED, model.next_run_at, model.occurrence)

    @staticmethod
    def _missed_when_claimed(model: ModelSchedule, now: datetime) -> bool:
        """Whether a claim at ``now`` would miss the run due (for its grace), as :meth:`ModelSchedule.run` judges it."""
        latest = model.next_run_at
        if (model.recurring and model.coalesce and model.next_run_at == model.occurrence
                and not any(a.scheduled_for == model.occurrence for a in model.attempts)):
            assert latest is not None
            latest = max(latest, model.next_fire(now) - model.every)  # type: ignore[operator]
        assert latest is not None
        return model.grace is not None and now - latest > model.grace

    @precondition(lambda self: self.models)
    @rule(index=st.integers(min_value=0))
    def operator_retry(self, index: int) -> None:
        """A new occurrence, due now: with a key of its own and a fresh attempt count, so a
        millisecond after the retried one when the retry comes at that very instant."""
        model = self.pick(index)
        now = self.now
        if model.status in (S.DEAD, S.UNKNOWN, S.MISSED):
            assert model.occurrence is not None
            occurrence = max(now, model.occurrence + ONE_MS)
            retried = self.run(self.service.retry(model.id))
            assert (retried.status, retried.next_run_at, retried.occurrence) == (S.SCHEDULED, occurrence, occurrence), (
                f"{model.id}: retried at {now} after the occurrence {model.occurrence}: {retried.occurrence}")
            model.status, model.next_run_at, model.occurrence = S.SCHEDULED, occurrence, occurrence
            if model.send_by is not None and model.send_by < now:
                model.send_by = None
        else:
            with pytest.raises(ScheduleConflict):
                self.run(self.service.retry(model.id))

    @precondition(lambda self: self.models)
    @rule(index=st.integers(min_value=0), failures=st.lists(st.sampled_from(Failure), min_size=1, max_size=3))
    def script_failures(self, index: int, failures: list[Failure]) -> None:
        model = self.pick(index)
        self.sender.script(model.id, failures)
        model.script.extend(failures)

    @rule(seconds=st.integers(0, 90) | st.integers(0, 7200), replicas=st.sampled_from(["", "a", "b", "ab"]))
    def time_passes(self, seconds: int, replicas: str) -> None:
        """The clock moves on, then the replicas named (none: they are all down or busy) work
        until nothing is due at that instant."""
        self.clock.advance(seconds)
        if replicas:
            self.tick(replicas)

    @rule(seconds=st.integers(0, 90), replicas=st.sampled_from(["a", "b", "ab"]))
    def a_moment_passes(self, seconds: int, replicas: str) -> None:
        """A short step (leases lapse after 30 s), with someone working."""
        self.time_passes(seconds, replicas)

    def tick(self, replicas: str) -> None:
        """The replicas named work until nothing is due now; so does the model."""
        self.run(self._work_until_quiet([self.replicas[name] for name in replicas]))
        for model in self.models.values():
            model.work_until_quiet(self.now)

    @rule(limit=st.integers(1, 3))
    def crash(self, limit: int) -> None:
        """A third replica claims due work and dies before running any of it."""
        now = self.now
        due = sorted((m for m in self.models.values() if m.due(now)), key=ModelSchedule.due_order)
        claimed = self.run(self.repositories[1].claim_due(now=now, owner=CRASHED, lease_for=LEASE, limit=limit))
        ids = [schedule.id for schedule in claimed]
        assert len(ids) == len(set(ids))
        assert set(ids) == {m.id for m in due[:limit]}, "claims take the earliest due work, in due order"
        for schedule in claimed:
            assert schedule.lease is not None and schedule.lease.owner == CRASHED
            model = self.models[schedule.id]
            model.status, model.crash_until = S.RUNNING, now + LEASE

    async def _work_until_quiet(self, replicas: list[Dispatcher]) -> None:
        for _ in range(MAX_ROUNDS):
            claimed = sum(await asyncio.gather(*(replica.dispatch_due() for replica in replicas)))
            for replica in replicas:
                await replica.drain(timeout=10)
            assert all(replica.in_flight == 0 for replica in self.replicas.values())
            if not claimed:
                return
        raise AssertionError(f"the replicas still claimed work after {MAX_ROUNDS} rounds at one instant")

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        stored = self.run(self._read_all())
        assert set(stored) == set(self.models), "the store holds exactly the schedules accepted"
        for schedule_id, model in self.models.items():
            self._agrees(stored[schedule_id], model)

    @invariant()
    def listing_and_counts_agree(self) -> None:
        listed = self.run(self.service.list(limit=10_000))
        newest_first = sorted(self.models.values(), key=lambda m: (m.created_at, m.id), reverse=True)
        assert [s.id for s in listed] == [m.id for m in newest_first], "list: every schedule, newest first"
        for status in S:
            page = self.run(self.service.list(status=status, limit=10_000))
            assert [s.id for s in page] == [m.id for m in newest_first if m.status is status], f"list({status=})"
        counts = self.run(self.repositories[1].count_by_status_and_type())
        expected = Counter((m.status, WHATSAPP_TEXT) for m in self.models.values())
        assert {k: v for k, v in counts.items() if v} == dict(expected)

    @invariant()
    def sends_are_the_expected_ones(self) -> None:
        by_schedule: dict[str, list[tuple[str, datetime, str]]] = {}
        for send in self.sender.log:
            by_schedule.setdefault(send.schedule_id, []).append((send.key, send.at, send.outcome))
        for schedule_id, model in self.models.items():
            assert by_schedule.pop(schedule_id, []) == model.sends, f"sends of {schedule_id}"
        assert not by_schedule, f"sends for schedules never accepted: {sorted(by_schedule)}"

    @invariant()
    def sends_keep_the_promises(self) -> None:
        """Checked on the send log and the store alone, whatever the model says."""
        delivered: set[str] = set()
        for position, send in enumerate(self.sender.log):
            assert send.at >= send.occurrence, f"{send.key} sent at {send.at}, before it was due"
            assert (send.to, send.body) == ("5511999999999", "Oi, Ana"), f"{send.key}: the message rendered"
            assert send.key not in delivered, f"{send.key} sent again after a send that may have arrived"
            if send.may_have_arrived:
                delivered.add(send.key)
            cancelled_after = self.models[send.schedule_id].cancelled_after
            assert cancelled_after is None or position < cancelled_after, f"{send.key} sent after its cancel"
        stored = self.run(self._read_all())
        for schedule_id, schedule in stored.items():
            policy = schedule.retry or DEFAULT_RETRY
            per_occurrence = Counter(a.scheduled_for for a in schedule.attempts if a.outcome != "missed")
            assert max(per_occurrence.values(), default=0) <= policy.max_attempts, schedule_id
            wamids = [s.wamid for s in self.sender.log if s.schedule_id == schedule_id and s.outcome == "ok"]
            recorded = [a.provider_message_id for a in schedule.attempts if a.outcome == "succeeded"]
            newest = wamids[-len(recorded):] if recorded else []  # the history keeps the newest attempts
            assert recorded == newest and bool(recorded) == bool(wamids), (
                f"{schedule_id}: successful sends {wamids} recorded as {recorded}")
            assert schedule.result.get("provider_message_id") == (wamids[-1] if wamids else None)
            if wamids and schedule.trigger.recurring is False:
                assert schedule.status is S.SUCCEEDED

    async def _read_all(self) -> dict[str, Schedule]:
        found: dict[str, Schedule] = {}
        for schedule_id in self.models:
            schedule = await self.repositories[1].get(schedule_id)
            if schedule is not None:
                found[schedule_id] = schedule
        return found

    def _agrees(self, schedule: Schedule, model: ModelSchedule) -> None:
        sid = model.id
        assert schedule.status is model.status, f"{sid}: {schedule.status} but the model says {model.status}"
        assert schedule.next_run_at == model.next_run_at, f"{sid}: next run {schedule.next_run_at} != {model.next_run_at}"
        assert schedule.occurrence == model.occurrence, f"{sid}: occurrence {schedule.occurrence} != {model.occurrence}"
        assert schedule.send_by == model.send_by, sid
        assert schedule.created_at == model.created_at, sid
        if model.crash_until is not None:
            assert schedule.lease is not None, sid
            assert (schedule.lease.owner, schedule.lease.until) == (CRASHED, model.crash_until), sid
        else:
            assert schedule.lease is None, f"{sid}: still leased by {schedule.lease}"
        owners = {a.owner for a in schedule.attempts}
        assert owners <= {"replica-a", "replica-b"}, f"{sid}: attempts recorded by {owners}"
        attempts = [ModelAttempt(a.scheduled_for, a.number, a.outcome, a.started_at,
                                 a.error.code if a.error else None) for a in schedule.attempts]
        assert attempts == model.attempts[-HISTORY_LIMIT:], f"{sid}: attempts differ"
        if len(schedule.events) < HISTORY_LIMIT:  # the whole event log is still there
            took_over = [e for e in schedule.events if e.type == "started" and "taken_over_from" in e.data]
            assert [e.data["taken_over_from"] for e in took_over] == [CRASHED] * model.takeovers, sid
        error = schedule.last_error
        assert (error.code if error else None) == model.last_error, f"{sid}: last error {error}"
        if error is not None and error.code == "missed":  # the reason, in words
            assert ("send_by" if model.missed_for == "send_by" else "misfire grace") in error.message, error.message

    # -- the end ---------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if sys.exc_info()[1] is None:  # the run passed so far (teardown runs after a failure too)
                self._everything_ends()
        finally:
            self.run(self._drain())
            self.end()

    def _everything_ends(self) -> None:
        """Resume what is paused, move to each next due one-off (or lapsing lease) and let both
        replicas work: every one-off ends final, and nothing stays running or scheduled in the past."""
        for model in [m for m in self.models.values() if m.status is S.PAUSED]:
            self._resume(model)
        for _ in range(MAX_ROUNDS):
            pending = [m for m in self.models.values()
                       if m.crash_until is not None or (not m.recurring and m.status not in FINAL)]
            if not pending:
                break
            upcoming = min(m.crash_until + timedelta(seconds=1) if m.crash_until is not None else m.next_run_at
                           for m in pending)  # type: ignore[type-var]
            self.clock.set(max(self.now, upcoming))
            self.tick("ab")
            self.store_agrees_with_the_model()
            self.sends_are_the_expected_ones()
        else:
            raise AssertionError("one-offs still pending after the final sweep")
        self.tick("ab")  # and whatever recurring work is due now
        self.store_agrees_with_the_model()
        self.sends_are_the_expected_ones()
        self.sends_keep_the_promises()
        for schedule in self.run(self.service.list(limit=10_000)):
            assert schedule.status is not S.RUNNING, schedule.id
            if schedule.status is S.SCHEDULED:
                assert schedule.trigger.recurring and schedule.next_run_at is not None
                assert schedule.next_run_at > self.now, f"{schedule.id} left scheduled in the past"
            else:
                assert schedule.status in FINAL

    async def _drain(self) -> None:
        for replica in self.replicas.values():
            await replica.drain(timeout=1)


class SqliteServiceModel(ServiceModel):
    store_kind = "sqlite"


class MongoServiceModel(ServiceModel):
    store_kind = "mongodb"


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, stateful_step_count=50, deadline=None, derandomize=True,
                    database=None)


TestMemoryServiceModel = ServiceModel.TestCase
TestMemoryServiceModel.settings = _settings(300)
TestSqliteServiceModel = SqliteServiceModel.TestCase
TestSqliteServiceModel.settings = _settings(60)


def test_mongodb_service_model(mongodb_uri: str) -> None:
    """The same machine over MongoDB (the test server: fewer walks, its writes cost milliseconds)."""
    MongoServiceModel.mongodb_uri = mongodb_uri
    run_state_machine_as_test(MongoServiceModel, settings=_settings(MONGODB_EXAMPLES))


# -- scenarios too rare for random walks, replayed through the same machine ------------------

Step = tuple[str, dict[str, object]]


def _one_off(offset: int = 0, key: str | None = None) -> Step:
    return "schedule_one_off", dict(offset=offset, send_by=None, misfire=None, retry=None, key=key)


def _passes(seconds: int, replicas: str = "ab") -> Step:
    return "time_passes", dict(seconds=seconds, replicas=replicas)


#: name -> (steps, what must have happened for the scenario to have tested what it names)
SCENARIOS: dict[str, tuple[list[Step], Callable[[ServiceModel], bool]]] = {
    "an operator retry at the very instant of the run it reacts to": (
        [_one_off(), ("script_failures", dict(index=0, failures=[Failure.UNKNOWN])), _passes(0, "a"),
         ("operator_retry", dict(index=0)), _passes(0), _passes(1)],
        lambda machine: [s.outcome for s in machine.sender.log] == ["unknown", "ok"],
    ),
    "a repeat of an accepted request, long after its send_at": (
        [_one_off(key="order-1"), _passes(600), _one_off(offset=-600, key="order-1")],
        lambda machine: len(machine.models) == 1 and len(machine.sender.log) == 1,
    ),
    "a crashed replica's lease lapses and a live one takes the work over": (
        [_one_off(), ("crash", dict(limit=1)), _passes(30), _passes(1, "b")],
        lambda machine: [m.takeovers for m in machine.models.values()] == [1] and len(machine.sender.log) == 1,
    ),
}


@pytest.mark.parametrize("machine_class", [ServiceModel, SqliteServiceModel, MongoServiceModel],
                         ids=["memory", "sqlite", "mongodb"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario(machine_class: type[ServiceModel], scenario: str, request: pytest.FixtureRequest) -> None:
    steps, happened = SCENARIOS[scenario]
    if machine_class is MongoServiceModel:
        MongoServiceModel.mongodb_uri = request.getfixturevalue("mongodb_uri")
    machine = machine_class()
    try:
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.store_agrees_with_the_model()
            machine.listing_and_counts_agree()
            machine.sends_are_the_expected_ones()
            machine.sends_keep_the_promises()
        assert happened(machine), f"the scenario did not go as planned: {machine.sender.log}"
    finally:
        machine.teardown()
