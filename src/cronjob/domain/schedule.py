"""The Schedule aggregate: a piece of work, when it runs, and the state machine of its runs."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Final, Literal

from cronjob.domain.actor import Actor, audit_data
from cronjob.domain.errors import InvalidTransition, ValidationError
from cronjob.domain.instants import instant_text
from cronjob.domain.labels import check_labels
from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision, RetryPolicy
from cronjob.domain.trigger import OnceTrigger, Trigger, latest_fire_time, require_aware


class ScheduleStatus(StrEnum):
    """Where a schedule is in its life. ``scheduled``, ``running`` and ``paused`` (held by a user:
    never claimed until resumed) are live; the rest are final until an operator acts (``dead``,
    ``unknown`` and ``missed`` can be retried)."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    UNKNOWN = "unknown"
    MISSED = "missed"
    CANCELLED = "cancelled"


_ALLOWED: dict[ScheduleStatus, frozenset[ScheduleStatus]] = {
    ScheduleStatus.SCHEDULED: frozenset({ScheduleStatus.RUNNING, ScheduleStatus.CANCELLED, ScheduleStatus.PAUSED}),
    # Missed: resumed after its rule ended (``until``), with nothing left to run.
    ScheduleStatus.PAUSED: frozenset({ScheduleStatus.SCHEDULED, ScheduleStatus.CANCELLED, ScheduleStatus.MISSED}),
    ScheduleStatus.RUNNING: frozenset(
        {
            ScheduleStatus.SUCCEEDED,
            ScheduleStatus.DEAD,
            ScheduleStatus.UNKNOWN,
            ScheduleStatus.MISSED,
            ScheduleStatus.SCHEDULED,  # a retry, the next occurrence, or a released lease
            ScheduleStatus.CANCELLED,  # a recurring schedule, by a user, while it runs
        }
    ),
    ScheduleStatus.SUCCEEDED: frozenset(),
    ScheduleStatus.DEAD: frozenset({ScheduleStatus.SCHEDULED}),
    ScheduleStatus.UNKNOWN: frozenset({ScheduleStatus.SCHEDULED}),
    ScheduleStatus.MISSED: frozenset({ScheduleStatus.SCHEDULED}),
    ScheduleStatus.CANCELLED: frozenset(),
}


#: The statuses of a schedule that waits for its next run (a user may move or cancel it).
WAITING = frozenset({ScheduleStatus.SCHEDULED, ScheduleStatus.PAUSED})
#: The live statuses: those of a schedule that still has a due time (``next_run_at``). A
#: ``scheduled`` one is due then, a ``running`` one runs the occurrence due then, and a
#: ``paused`` one keeps the time it was due next (it is never claimed until resumed). Every
#: other status is final until an operator acts, with no due time.
LIVE_STATUSES = WAITING | {ScheduleStatus.RUNNING}


def can_transition(current: ScheduleStatus, target: ScheduleStatus) -> bool:
    """Whether the state machine allows ``current`` -> ``target``."""
    return target in _ALLOWED[current]


@dataclass(frozen=True, slots=True)
class MisfirePolicy:
    """What happens to an occurrence that is claimed late (the service was down, or the queue long).

    ``grace``: the occurrence runs if it is at most this late, else it is *missed* (a one-off
    becomes ``missed``; a recurring schedule records the miss and moves on). None: always run.
    ``coalesce`` (recurring only): occurrences missed while nothing ran collapse into one run, as
    the latest of them (see :meth:`Schedule.catch_up`); when False, each missed occurrence still
    within the grace runs, one after the other.
    """

    grace: timedelta | None = None
    coalesce: bool = True

    def __post_init__(self) -> None:
        if self.grace is not None and self.grace < timedelta(0):
            raise ValidationError("the misfire grace cannot be negative", field="misfire_grace_seconds")


@dataclass(frozen=True, slots=True)
class Lease:
    """A replica's claim on a running schedule. Every write of the run is fenced by ``attempt_id``.

    ``taken_over_from`` names the previous owner when this claim took over a lapsed lease.
    """

    owner: str
    attempt_id: str
    claimed_at: datetime
    until: datetime
    taken_over_from: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished run of a schedule's occurrence."""

    attempt_id: str
    number: int
    owner: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime
    outcome: str  # succeeded | failed | retrying | unknown | missed
    error: ErrorInfo | None = None
    provider_message_id: str | None = None


#: Meta's message statuses, in the order a message goes through them; ``failed`` can come at any
#: point and is final (a later sent/delivered/read does not undo it).
DELIVERY_STATUSES = ("sent", "delivered", "read", "failed")
#: Each delivery status's place in that order.
DELIVERY_RANK = {status: rank for rank, status in enumerate(DELIVERY_STATUSES)}


_ONE_MS = timedelta(milliseconds=1)

_ONE_MICROSECOND = timedelta(microseconds=1)

#: Newest entries kept in a schedule's attempt and event histories (recurring schedules would
#: otherwise grow without bound; MongoDB documents are capped at 16 MB).
HISTORY_LIMIT = 100
#: The metadata key holding the request key (Idempotency-Key) of the last run-now.
RUN_NOW_KEY = "run_now_key"
#: The longest time limit a run may have: a day (longer work belongs in steps of its own).
MAX_RUN_TIMEOUT = timedelta(days=1)


def claim_version(version: datetime, now: datetime) -> datetime:
    """The ``updated_at`` a claim at ``now`` stamps on a schedule whose version is ``version``:
    ``now``, or a millisecond after ``version`` when that is not earlier (every store claims so)."""
    return max(now, version + _ONE_MS)


def check_run_timeout(limit: timedelta | None) -> timedelta | None:
    """``limit`` as a run's time limit (None: none of its own), or ValidationError naming
    ``run_timeout_seconds``: more than zero, at most :data:`MAX_RUN_TIMEOUT`."""
    if limit is not None and not timedelta(0) < limit <= MAX_RUN_TIMEOUT:
        raise ValidationError(f"a run's time limit must be more than 0 s and at most {_seconds(MAX_RUN_TIMEOUT)}",
                              field="run_timeout_seconds")
    return limit


class _NoOwnLimit(Enum):
    NO_OWN_LIMIT = "no own limit"


#: A change of a schedule's run time limit to none of its own, so that its task handler's (a
#: routine's) or the dispatcher's applies again; see :data:`RunTimeoutChange`.
NO_OWN_LIMIT: Final = _NoOwnLimit.NO_OWN_LIMIT
#: A change of a schedule's run time limit: a new limit, :data:`NO_OWN_LIMIT`, or None (it stays).
RunTimeoutChange = timedelta | Literal[_NoOwnLimit.NO_OWN_LIMIT] | None


def run_timeout_error(limit: timedelta) -> ErrorInfo:
    """The error of a run stopped by its time limit ``limit``: retryable, as the retry policy
    decides (the work may have been cut short anywhere, as by a crash)."""
    return ErrorInfo("run_timeout", f"the run took longer than its time limit of {_seconds(limit)} and was stopped",
                     True)


@dataclass(frozen=True, slots=True)
class ScheduleEvent:
    """Something that happened to a schedule, for its event log and status webhooks.

    ``type`` is one of scheduled, started, succeeded, retrying, failed, dead, unknown, missed,
    cancelled, paused, resumed, and ``delivery.<status>`` for what WhatsApp reports about a sent message; ``id``
    is unique (receivers deduplicate on it); ``data`` holds details such as the error code or
    the retry time, as text. An event a user's command caused (a creation, cancel, pause,
    resume, move, run now, retry: each of those methods takes an ``actor``) names who asked for
    it and in which request (``data.by``, ``data.request_id``: see :mod:`cronjob.domain.actor`);
    those of runs name none.
    """

    id: str
    type: str
    at: datetime
    attempt_id: str | None = None
    data: dict[str, str] = field(default_factory=dict)


def new_event_id() -> str:
    """A new event's id: 128 random bits as 32 hex digits, like ``uuid4().hex``, at a fifth of
    its cost (three per run)."""
    return secrets.token_hex(16)


#: The ``data`` key (``"true"``) that marks a run's outcome events kept by a schedule cancelled
#: while the run was in progress (see :meth:`Schedule.keep_run`).
AFTER_CANCEL = "after_cancel"
#: The events of a run that say what comes after it (a retry, a pause): none after a cancel.
_WHAT_COMES_NEXT = frozenset({"retrying", "paused"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What one run recorded of itself, for a schedule cancelled while it ran to keep (see
    :meth:`Schedule.run_record`, :meth:`Schedule.keep_run`): its attempt, its events (``started``
    as it was published, and its outcome events), the ``result`` of a run that succeeded (None
    otherwise) and the ``last_error`` the run left."""

    attempt: Attempt
    events: tuple[ScheduleEvent, ...]
    result: dict[str, str] | None
    last_error: ErrorInfo | None


@dataclass(slots=True)
class Schedule:
    """A unit of time-based work.

    ``task_type`` names the handler (``whatsapp.template``, ``whatsapp.text``, ...) and ``payload``
    its JSON-compatible input, validated when the schedule was created. ``next_run_at`` (UTC) is
    when it is next due; ``occurrence`` is the scheduled time of the occurrence being worked on,
    which with the id forms the idempotency key of a delivery. ``idempotency_key`` is the
    client's own key, unique across schedules, when one was given. ``send_by`` is a hard
    deadline for a one-off: past it, the work is missed rather than done late. ``events`` is the
    schedule's own log; ``callback_url`` receives its status webhooks. ``delivery`` is what the
    provider reported about the latest sent message (``status``, ``<status>_at``, and for a failure
    ``error_code``/``error_message``); a new send starts it afresh. ``failed_in_a_row`` counts
    the occurrences in a row that ended dead (a success, or a resume, starts it afresh); a
    recurring schedule with ``pause_after_failures`` is paused once it reaches that many.
    ``run_timeout`` bounds how long one run may take (None: its task handler's limit for it, a
    routine's, else the service's; see :func:`check_run_timeout`). ``labels`` are the client's
    own ``key: value`` pairs (see :mod:`cronjob.domain.labels`): they change nothing about when
    or how it runs, only how it is found.
    """

    id: str
    task_type: str
    payload: dict[str, Any]
    trigger: Trigger
    timezone: str
    status: ScheduleStatus
    next_run_at: datetime | None
    occurrence: datetime | None
    created_at: datetime
    updated_at: datetime
    user_id: str | None = None
    idempotency_key: str | None = None
    retry: RetryPolicy | None = None
    misfire: MisfirePolicy = MisfirePolicy()
    send_by: datetime | None = None
    lease: Lease | None = None
    attempts: list[Attempt] = field(default_factory=list)
    result: dict[str, str] = field(default_factory=dict)
    last_error: ErrorInfo | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    events: list[ScheduleEvent] = field(default_factory=list)
    delivery: dict[str, str] = field(default_factory=dict)
    pause_after_failures: int | None = None
    failed_in_a_row: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    run_timeout: timedelta | None = None

    @classmethod
    def create(
        cls,
        *,
        id: str,
        task_type: str,
        payload: dict[str, Any],
        trigger: Trigger,
        timezone: str,
        first_run_at: datetime,
        now: datetime,
        user_id: str | None = None,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
        misfire: MisfirePolicy | None = None,
        send_by: datetime | None = None,
        metadata: dict[str, str] | None = None,
        callback_url: str | None = None,
        pause_after_failures: int | None = None,
        labels: dict[str, str] | None = None,
        run_timeout: timedelta | None = None,
        actor: Actor | None = None,
    ) -> Schedule:
        """A new schedule in ``scheduled``, first due at ``first_run_at``; its ``scheduled`` event
        names ``actor``, who asked for it (see :class:`~cronjob.domain.actor.Actor`), when given."""
        if not task_type:
            raise ValidationError("task type is required", field="type")
        first = require_aware(first_run_at, "send_at")
        now = require_aware(now, "now")
        if send_by is not None:
            if trigger.recurring:
                # One deadline for every occurrence would miss all of them once it passed.
                raise ValidationError("send_by is the deadline of a one-off; a recurring schedule takes "
                                      "misfire_grace_seconds instead", field="send_by")
            send_by = require_aware(send_by, "send_by")
            if send_by < first:
                raise ValidationError("send_by must not be before send_at", field="send_by")
        if pause_after_failures is not None:
            if not trigger.recurring:
                raise ValidationError("pause_after_failures is for a recurring schedule; a one-off runs once",
                                      field="pause_after_failures")
            if pause_after_failures < 1:
                raise ValidationError("pause_after_failures must be at least 1", field="pause_after_failures")
        schedule = cls(
            id=id,
            task_type=task_type,
            payload=payload,
            trigger=trigger,
            timezone=timezone,
            status=ScheduleStatus.SCHEDULED,
            next_run_at=first,
            occurrence=first,
            created_at=now,
            updated_at=now,
            user_id=user_id,
            idempotency_key=idempotency_key,
            retry=retry,
            misfire=misfire or MisfirePolicy(),
            send_by=send_by,
            metadata=dict(metadata or {}),
            callback_url=callback_url,
            pause_after_failures=pause_after_failures,
            labels=check_labels(labels or {}),
            run_timeout=check_run_timeout(run_timeout),
        )
        schedule._emit("scheduled", now, next_run_at=instant_text(first), **audit_data(actor))
        return schedule

    # -- queries ---------------------------------------------------------------------------

    def is_due(self, now: datetime) -> bool:
        """Whether a replica may claim it at ``now`` (due, or running with a lapsed lease)."""
        if self.status is ScheduleStatus.SCHEDULED:
            return self.next_run_at is not None and self.next_run_at <= now
        if self.status is ScheduleStatus.RUNNING:
            return self.lease is not None and self.lease.until < now
        return False

    def catch_up(self, now: datetime) -> None:
        """Before a claimed run: a recurring schedule that coalesces (the default) and finds later
        occurrences than the one due already due too (the service was down, or the queue long)
        runs once for them all, as the latest of them: its idempotency key, and the misfire grace
        it is judged by, are the latest occurrence's. A retry of an occurrence is not moved on."""
        if not (self.trigger.recurring and self.misfire.coalesce) or self.occurrence is None:
            return
        if self.next_run_at != self.occurrence or self.attempts_for_occurrence:
            return
        self.next_run_at = self.occurrence = self.runs_as(self.occurrence, now)

    def runs_as(self, occurrence: datetime, now: datetime) -> datetime:
        """The occurrence that a run of ``occurrence`` (not a retry of it) claimed at ``now`` runs
        as: for a recurring schedule that coalesces, the latest occurrence due by ``now`` (see
        :meth:`catch_up`); otherwise ``occurrence`` itself."""
        if self.trigger.recurring and self.misfire.coalesce:
            return latest_fire_time(self.trigger, occurrence, now) or occurrence
        return occurrence

    def misfire_reason(self, now: datetime, due: datetime | None = None) -> str | None:
        """Why the run due at ``next_run_at`` (or at ``due``, when given) must not run at
        ``now``, or None if it may: past its ``send_by``, or later than its misfire grace."""
        if self.send_by is not None and now > self.send_by:
            return f"not run by its send_by deadline {instant_text(self.send_by)}"
        grace = self.misfire.grace
        due = self.next_run_at if due is None else due
        if grace is not None and due is not None and now - due > grace:
            return f"{_seconds(now - due)} late, beyond its misfire grace of {_seconds(grace)}"
        return None

    @property
    def delivery_key(self) -> str:
        """Idempotency key of the current occurrence: ``<id>:<occurrence ISO>``."""
        # isoformat, not instant_text: providers deduplicate on the key, so it stays what earlier versions sent.
        occurrence = self.occurrence.isoformat() if self.occurrence else "-"
        return f"{self.id}:{occurrence}"

    @property
    def attempts_for_occurrence(self) -> list[Attempt]:
        """The finished attempts of the current occurrence, oldest first."""
        return [a for a in self.attempts if a.scheduled_for == self.occurrence]

    def _emit(self, type: str, now: datetime, attempt_id: str | None = None, /, **data: str) -> None:
        # Positional-only: a run's result becomes the event's data, and a routine's result may
        # well hold a key named ``type`` (or ``now``, ``attempt_id``).
        self.events.append(ScheduleEvent(id=new_event_id(), type=type, at=now, attempt_id=attempt_id, data=data))
        del self.events[:-HISTORY_LIMIT]

    # -- transitions -----------------------------------------------------------------------

    def _touch(self, now: datetime) -> None:
        """Stamp a change made at ``now``. ``updated_at`` is the version a writer without a lease
        makes its write conditional on, and the stores keep it to the millisecond: so it moves
        at least a millisecond on every change, even two changes within one millisecond."""
        self.updated_at = max(now, self.updated_at + _ONE_MS)

    def _move(self, target: ScheduleStatus, now: datetime) -> None:
        if not can_transition(self.status, target):
            raise InvalidTransition(self.status.value, target.value)
        self.status = target
        self._touch(now)

    def claim(self, *, owner: str, attempt_id: str, now: datetime, until: datetime) -> None:
        """Take the schedule for a run (``scheduled`` -> ``running``, or take over a lapsed lease)."""
        previous: str | None = None
        if self.status is ScheduleStatus.RUNNING:
            if self.lease is not None and self.lease.until >= now:
                raise InvalidTransition(self.status.value, ScheduleStatus.RUNNING.value)
            previous = self.lease.owner if self.lease is not None else None
        elif not can_transition(self.status, ScheduleStatus.RUNNING):
            raise InvalidTransition(self.status.value, ScheduleStatus.RUNNING.value)
        self.status = ScheduleStatus.RUNNING
        # A new version, as every change makes (see ``_touch``), even when the one it replaces is
        # ahead of this claimer's clock (another replica's clock, or changes within one
        # millisecond): the run's outcome is stamped after the claim, so were the claim to go back
        # in time, it could land on the version a user's change read before the claim, and that
        # stale write would pass its check and undo the run (its occurrence then ran again).
        self.updated_at = claim_version(self.updated_at, now)
        self.lease = Lease(owner=owner, attempt_id=attempt_id, claimed_at=now, until=until,
                           taken_over_from=previous)

    def _finish_attempt(
        self,
        attempt_id: str,
        now: datetime,
        outcome: str,
        error: ErrorInfo | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        lease = self._require_lease(attempt_id)
        self.attempts.append(
            Attempt(
                attempt_id=attempt_id,
                number=len(self.attempts_for_occurrence) + 1,
                owner=lease.owner,
                scheduled_for=self.occurrence or lease.claimed_at,
                started_at=self._started_at(attempt_id, lease),
                finished_at=now,
                outcome=outcome,
                error=error,
                provider_message_id=provider_message_id,
            )
        )
        del self.attempts[:-HISTORY_LIMIT]
        self.lease = None

    def _started_at(self, attempt_id: str, lease: Lease) -> datetime:
        """When the run of ``attempt_id`` began (its ``started`` event), or, for one that never
        began (missed, held back, given back), when it was claimed. Not the claim's time for a run
        that began: a claim a slow store answered late is followed by a run as the occurrence due
        when it begins (coalescing), which its start must not precede."""
        for event in reversed(self.events):
            if event.attempt_id == attempt_id and event.type == "started":
                return event.at
        return lease.claimed_at

    def _require_lease(self, attempt_id: str) -> Lease:
        if self.status is not ScheduleStatus.RUNNING or self.lease is None:
            raise InvalidTransition(self.status.value, "finish an attempt")
        if self.lease.attempt_id != attempt_id:
            raise InvalidTransition(self.status.value, f"finish attempt {attempt_id} (lease is not held)")
        return self.lease

    def occurrence_after(self, occurrence: datetime | None, ended_at: datetime) -> datetime | None:
        """The occurrence due next once the run of ``occurrence`` ends at ``ended_at``: the rule's
        next fire time after it or, when that has passed already and the schedule coalesces, the
        rule's first fire time after ``ended_at``. None for a one-off, and once the rule has ended
        (also when it ended while the run lasted: what fell due meanwhile is skipped, as ever)."""
        if occurrence is None or not self.trigger.recurring:
            return None
        upcoming = self.trigger.next_fire_time(occurrence)
        if upcoming is not None and upcoming <= ended_at and self.misfire.coalesce:
            # Coalesce the occurrences missed while this one ran or the service was down: skip
            # them, to the next one after the end (none: a rule that ended meanwhile, ``until``).
            upcoming = self.trigger.next_fire_time(ended_at)
        return upcoming

    def _advance_or(self, final: ScheduleStatus, now: datetime) -> None:
        """After an occurrence ends: the next occurrence for a recurring trigger, else ``final``."""
        self._advance_to(self.occurrence_after(self.occurrence, now), final, now)

    def _advance_to(self, upcoming: datetime | None, final: ScheduleStatus, now: datetime) -> None:
        """After an occurrence ends: due next at ``upcoming`` (an occurrence), or ``final`` if None."""
        if upcoming is not None:
            self._move(ScheduleStatus.SCHEDULED, now)
            self.next_run_at = upcoming
            self.occurrence = upcoming
        else:
            self._move(final, now)
            self.next_run_at = None

    def mark_started(self, *, attempt_id: str, now: datetime) -> None:
        """The claimed run begins (records the ``started`` event)."""
        lease = self._require_lease(attempt_id)
        data = {"owner": lease.owner, "occurrence": instant_text(self.occurrence or now)}
        if lease.taken_over_from:
            data["taken_over_from"] = lease.taken_over_from
        self._emit("started", now, attempt_id, **data)

    def succeed(self, *, attempt_id: str, now: datetime, provider_message_id: str | None = None,
                result: dict[str, str] | None = None) -> None:
        """The run succeeded: ``succeeded`` for a one-off, the next occurrence for a recurring rule."""
        self._finish_attempt(attempt_id, now, "succeeded", provider_message_id=provider_message_id)
        self.result = dict(result or {})
        if provider_message_id:
            self.result.setdefault("provider_message_id", provider_message_id)
        self.delivery = {}  # the delivery statuses of a previous message no longer apply
        self.last_error = None
        self.failed_in_a_row = 0
        self._emit("succeeded", now, attempt_id, **self.result)
        self._advance_or(ScheduleStatus.SUCCEEDED, now)

    def fail(self, *, attempt_id: str, now: datetime, error: ErrorInfo, decision: RetryDecision) -> None:
        """The run failed: retry at ``decision.retry_at``, or the occurrence is dead (dead letter)."""
        details = {"code": error.code, "message": error.message}
        if decision.retry_at is not None:
            self._finish_attempt(attempt_id, now, "retrying", error=error)
            self.last_error = error
            self._move(ScheduleStatus.SCHEDULED, now)
            self.next_run_at = decision.retry_at
            self._emit("failed", now, attempt_id, **details)
            self._emit("retrying", now, attempt_id, retry_at=instant_text(decision.retry_at), reason=decision.reason)
            return
        self._finish_attempt(attempt_id, now, "failed", error=error)
        self.last_error = error
        self._emit("failed", now, attempt_id, **details)
        upcoming = self.occurrence_after(self.occurrence, now)
        # A recurring schedule goes on: its dead event says when it runs next.
        going_on = {"next_run_at": instant_text(upcoming)} if upcoming is not None else {}
        self._emit("dead", now, attempt_id, reason=decision.reason, **details, **going_on)
        self.failed_in_a_row += 1
        self._advance_to(upcoming, ScheduleStatus.DEAD, now)
        limit = self.pause_after_failures
        if limit is not None and self.status is ScheduleStatus.SCHEDULED and self.failed_in_a_row >= limit:
            # Stop hammering what keeps failing (a dead endpoint, a revoked token) until a user
            # resumes it; its next occurrence stays as computed.
            ended = f"{self.failed_in_a_row} occurrence{'s' if self.failed_in_a_row > 1 else ''}"
            self._hold(now, attempt_id, reason=f"{ended} in a row ended dead (pause_after_failures {limit})")

    def outcome_unknown(self, *, attempt_id: str, now: datetime, error: ErrorInfo) -> None:
        """The provider may or may not have the message: park it as ``unknown``, never re-send blindly."""
        self._finish_attempt(attempt_id, now, "unknown", error=error)
        self.last_error = error
        self._emit("unknown", now, attempt_id, code=error.code, message=error.message)
        self._advance_or(ScheduleStatus.UNKNOWN, now)

    def miss(self, *, attempt_id: str, now: datetime, reason: str) -> None:
        """The occurrence was claimed too late to run: ``missed`` for a one-off (with the reason),
        the next occurrence for a recurring rule (the miss stays in the attempt history)."""
        error = ErrorInfo("missed", reason)
        lease = self._require_lease(attempt_id)
        # Like ``started``: the claim that found it too late may have taken a dead replica's lease.
        data = {"taken_over_from": lease.taken_over_from} if lease.taken_over_from else {}
        self._finish_attempt(attempt_id, now, "missed", error=error)
        self.last_error = error
        self._emit("missed", now, attempt_id, reason=reason, **data)
        self._advance_to(self.occurrence_after_miss(self.occurrence, now), ScheduleStatus.MISSED, now)

    def occurrence_after_miss(self, occurrence: datetime | None, now: datetime) -> datetime | None:
        """The occurrence due next once ``occurrence`` is missed at ``now`` (:meth:`miss`): the
        rule's next fire time after it, skipping every one that would be missed too (older than
        the grace; coalescing, every one due by ``now``, the latest being the one missed). None
        for a one-off, and when the rule ended meanwhile."""
        upcoming = self.occurrence_after(occurrence, now)
        if upcoming is not None and upcoming <= now:
            grace = self.misfire.grace
            # Without coalescing, those still within the grace run, each.
            after = now if self.misfire.coalesce or grace is None else now - grace - _ONE_MICROSECOND
            upcoming = self.trigger.next_fire_time(max(after, upcoming - _ONE_MICROSECOND))
        return upcoming

    def record_delivery_status(self, *, status: str, at: datetime, now: datetime,
                               error: ErrorInfo | None = None) -> bool:
        """Record what the provider reports about the latest sent message: ``status`` (one of
        :data:`DELIVERY_STATUSES`) reached at ``at``, with the provider's ``error`` for ``failed``.

        Statuses only move forward (sent < delivered < read; ``failed`` is recorded from any of
        them and stays). One that arrives after a later status (the provider does not keep
        order) only fills in its ``<status>_at`` and is logged, the status staying where it is. A
        duplicate (its ``<status>_at`` is known) returns False and changes nothing. The
        schedule's own status is not changed.
        """
        if status not in DELIVERY_RANK:
            raise ValidationError(f"unknown delivery status {status!r}", field="status")
        at, now = require_aware(at, "at"), require_aware(now, "now")
        if f"{status}_at" in self.delivery:
            return False
        current = self.delivery.get("status")
        if current is None or DELIVERY_RANK[status] > DELIVERY_RANK[current]:
            self.delivery["status"] = status
        data = {"at": instant_text(at)}
        self.delivery[f"{status}_at"] = data["at"]
        if status == "failed" and error is not None:
            self.delivery["error_code"] = data["code"] = error.code
            self.delivery["error_message"] = data["message"] = error.message
        message_id = self.result.get("provider_message_id")
        attempt_id = next((a.attempt_id for a in reversed(self.attempts)
                           if message_id and a.provider_message_id == message_id), None)
        self._touch(now)
        self._emit(f"delivery.{status}", now, attempt_id, **data)
        return True

    def defer(self, *, attempt_id: str, now: datetime, until: datetime) -> None:
        """Give the claim back until ``until`` without an attempt (provider back-pressure)."""
        self.release(attempt_id=attempt_id, now=now)
        self.next_run_at = max(until, self.next_run_at or until)

    def release(self, *, attempt_id: str, now: datetime) -> None:
        """Give the claim back without running (shutdown): due again at once, no attempt recorded."""
        self._require_lease(attempt_id)
        self.lease = None
        self._move(ScheduleStatus.SCHEDULED, now)

    @property
    def cancellable(self) -> bool:
        """Whether a user may cancel it now: when it waits (``scheduled`` or ``paused``), and a
        recurring one also while one of its runs is in progress (a one-off's run is its whole work)."""
        return self.status in WAITING or (
            self.status is ScheduleStatus.RUNNING and self.trigger.recurring)

    def cancel(self, *, now: datetime, actor: Actor | None = None) -> None:
        """Stop the schedule (see :attr:`cancellable`). Cancelling a recurring schedule while it
        runs takes the run's lease away (its ``cancelled`` event names the run's attempt,
        ``data.while_running``): the run goes on, its fenced write is refused, and no later
        occurrence starts; once the run ends, its record is kept all the same (see :meth:`keep_run`)."""
        if not self.cancellable:
            raise InvalidTransition(self.status.value, ScheduleStatus.CANCELLED.value)
        running = self.lease.attempt_id if self.status is ScheduleStatus.RUNNING and self.lease else None
        self._move(ScheduleStatus.CANCELLED, now)
        self.next_run_at = None
        self.lease = None
        self._emit("cancelled", now, **({"while_running": running} if running else {}), **audit_data(actor))

    def cancelled_while(self, attempt_id: str) -> bool:
        """Whether it is ``cancelled`` and was cancelled while the run of ``attempt_id`` was in progress."""
        return self.status is ScheduleStatus.CANCELLED and any(
            e.type == "cancelled" and e.data.get("while_running") == attempt_id for e in reversed(self.events))

    def awaits_run(self, attempt_id: str) -> bool:
        """Whether the run of ``attempt_id`` may still add its record (:meth:`keep_run`): the
        schedule was cancelled while it ran, and holds no attempt of it yet."""
        return self.cancelled_while(attempt_id) and all(a.attempt_id != attempt_id for a in self.attempts)

    def run_record(self, attempt_id: str) -> RunRecord | None:
        """The record of the run of ``attempt_id`` that this schedule (the run's own copy, its
        outcome recorded) holds, as a schedule cancelled while it ran keeps it: the attempt (a
        failure that would have been retried is ``failed``: no retry follows a cancel), the
        ``started`` event as it was, and the outcome events afresh (new ids: those published
        before the run knew of the cancel said the schedule went on), each marked
        ``data.after_cancel``, without what would have come next (``retrying``, a ``paused`` by
        ``pause_after_failures``, a ``dead`` event's ``next_run_at``). None when the run recorded
        no attempt (given back at a shutdown, or held back before it began)."""
        attempt = next((a for a in reversed(self.attempts) if a.attempt_id == attempt_id), None)
        if attempt is None:
            return None
        if attempt.outcome == "retrying":
            attempt = replace(attempt, outcome="failed")
        events = []
        for event in self.events:
            if event.attempt_id != attempt_id or event.type in _WHAT_COMES_NEXT:
                continue
            if event.type != "started":
                data = {k: v for k, v in event.data.items() if not (event.type == "dead" and k == "next_run_at")}
                event = ScheduleEvent(id=new_event_id(), type=event.type, at=event.at, attempt_id=attempt_id,
                                      data={**data, AFTER_CANCEL: "true"})
            events.append(event)
        succeeded = attempt.outcome == "succeeded"
        return RunRecord(attempt, tuple(events), dict(self.result) if succeeded else None, self.last_error)

    def keep_run(self, record: RunRecord, *, now: datetime) -> None:
        """Add the record of a run that was in progress when this schedule was cancelled (see
        :meth:`run_record`): its attempt, and its events where they fall in the log by time
        (``started`` before the ``cancelled`` event; the outcome after it, unless the run had
        ended before the cancel was written, its write then refused: before it); the result of a run
        that succeeded (its provider message id, so that the provider's statuses of that message
        find it) and the last error. It stays ``cancelled``, due never again. Only the run the
        cancel took the lease from, once (:meth:`awaits_run`): any other is
        :class:`InvalidTransition` (a run whose lease lapsed and was taken over is dropped, as
        ever: the new owner's outcome stands)."""
        attempt_id = record.attempt.attempt_id
        if not self.awaits_run(attempt_id):
            raise InvalidTransition(self.status.value, f"keep the record of run {attempt_id}",
                                    f"it is {self.status.value}, and not cancelled while that run was in "
                                    "progress, or holds its record already")
        self.attempts.append(record.attempt)
        del self.attempts[:-HISTORY_LIMIT]
        held = {e.id for e in self.events}
        for event in (e for e in record.events if e.id not in held):
            # After the last event not later than it: the log stays in time order.
            at = next((i for i in range(len(self.events), 0, -1) if self.events[i - 1].at <= event.at), 0)
            self.events.insert(at, event)
        del self.events[:-HISTORY_LIMIT]
        if record.result is not None:
            self.result = dict(record.result)
            self.delivery = {}  # the delivery statuses of a previous message no longer apply
        self.last_error = record.last_error
        self._touch(now)

    def run_now(self, *, now: datetime, request_key: str | None = None, actor: Actor | None = None) -> None:
        """Make a ``scheduled`` schedule due at ``now`` rather than wait for its next run.

        A schedule waiting to retry an occurrence retries it now (its idempotency key and
        attempt count stay). Otherwise ``now`` becomes its occurrence: a one-off is sent now
        instead of at its time (its rule becomes ``once @ now``); a recurring schedule runs once
        more, now, and then on as its rule says (the occurrence it waited for stays next). One
        due already is left as it is, unless it is too late to run (later than its misfire grace,
        the scheduler having been down or busy): it is due now then, as one not due yet, since
        the claim would end it missed. A ``scheduled`` event names the time it was due at
        (``data.run_now_from``). One that is not ``scheduled`` is :class:`InvalidTransition`,
        saying why, and so is a one-off past its ``send_by`` (it would be missed whenever run).

        ``request_key`` (a client's Idempotency-Key) is remembered, the last one only, due
        already or not, so that a repeat of the request can be told from a new one
        (:meth:`ran_now_for`).
        """
        if self.status is not ScheduleStatus.SCHEDULED:
            raise InvalidTransition(self.status.value, ScheduleStatus.RUNNING.value,
                                    f"it is {self.status.value}; only a scheduled one can be run now")
        if self.send_by is not None and now > self.send_by:
            raise InvalidTransition(self.status.value, ScheduleStatus.RUNNING.value,
                                    f"it is past its send_by deadline {instant_text(self.send_by)}, so a run now "
                                    "would be missed: cancel it, or create another")
        if request_key is not None:
            self.metadata[RUN_NOW_KEY] = request_key
            self._touch(now)
        previous = self.next_run_at
        if self.due_to_run(now):
            return  # due already: the next claim takes it
        due = now
        if not self.attempts_for_occurrence:
            if self.attempts and self.attempts[-1].scheduled_for >= now:
                # A clock behind the one that ran the last occurrence: still a later occurrence,
                # with a key of its own (as an operator retry's).
                due = self.attempts[-1].scheduled_for + _ONE_MS
            if not self.trigger.recurring:  # sent now instead: its rule says so
                self.trigger = OnceTrigger(due)
                due = self.trigger.at
            self.occurrence = due
        self.next_run_at = due
        self._touch(now)
        self._emit("scheduled", now, next_run_at=instant_text(due),
                   run_now_from=instant_text(previous) if previous else "", **audit_data(actor))

    def due_to_run(self, now: datetime) -> bool:
        """Whether a ``scheduled`` schedule is due at ``now`` and a claim then runs it: not too
        late for its misfire grace, judged as the claim judges it (a recurring one that
        coalesces as the latest occurrence due, see :meth:`catch_up`)."""
        due = self.next_run_at
        if self.status is not ScheduleStatus.SCHEDULED or due is None or due > now:
            return False
        if due == self.occurrence and not self.attempts_for_occurrence:
            due = self.runs_as(due, now)
        return self.misfire_reason(now, due) is None

    def ran_now_for(self, request_key: str) -> bool:
        """Whether the last :meth:`run_now` was asked with ``request_key`` (its repeat is answered
        with the schedule as it is, whatever it did since)."""
        return self.metadata.get(RUN_NOW_KEY) == request_key

    def retry_now(self, *, now: datetime, actor: Actor | None = None) -> None:
        """An operator re-runs a ``dead``, ``unknown`` or ``missed`` schedule: a new occurrence, due
        now, with a fresh attempt count (and so a new idempotency key).

        The new occurrence is at least a millisecond (the precision stores keep) after the one it
        retries, so that its key differs even when the retry comes at that same instant.
        """
        if self.status not in (ScheduleStatus.DEAD, ScheduleStatus.UNKNOWN, ScheduleStatus.MISSED):
            raise InvalidTransition(self.status.value, "retry")
        previous = self.status.value
        self._move(ScheduleStatus.SCHEDULED, now)
        occurrence = now
        if self.occurrence is not None and occurrence < self.occurrence + _ONE_MS:
            occurrence = self.occurrence + _ONE_MS
        self.next_run_at = self.occurrence = occurrence
        self.send_by = None if self.send_by is not None and self.send_by < now else self.send_by
        self._emit("scheduled", now, next_run_at=instant_text(occurrence), retried_from=previous,
                   **audit_data(actor))

    def pause(self, *, now: datetime, actor: Actor | None = None) -> None:
        """Hold a schedule that waits (``scheduled`` -> ``paused``): no replica claims it until
        :meth:`resume`. It keeps its ``next_run_at`` (when it was due next) and, for a one-off
        waiting to retry, its attempts. One that runs or ended is :class:`InvalidTransition`,
        saying why: a run in progress is not stopped (pause a recurring one once it ends)."""
        if self.status is not ScheduleStatus.SCHEDULED:
            hint = (" (its run is in progress; pause it once the run has ended)"
                    if self.status is ScheduleStatus.RUNNING and self.trigger.recurring else "")
            raise InvalidTransition(self.status.value, ScheduleStatus.PAUSED.value,
                                    f"it is {self.status.value}; only a scheduled one can be paused{hint}")
        self._hold(now, **audit_data(actor))

    def _hold(self, now: datetime, attempt_id: str | None = None, **data: str) -> None:
        """``scheduled`` -> ``paused``, with its ``paused`` event (the time it keeps, and ``data``)."""
        self._move(ScheduleStatus.PAUSED, now)
        if self.next_run_at is not None:
            data["next_run_at"] = instant_text(self.next_run_at)
        self._emit("paused", now, attempt_id, **data)

    def resume(self, *, now: datetime, actor: Actor | None = None) -> None:
        """Let a ``paused`` schedule run again (-> ``scheduled``).

        A one-off keeps its time: one that fell due while paused is claimed at once, and its
        misfire grace and ``send_by`` decide, as for any late run, whether it still runs. A
        recurring schedule does not make up for the pause: when its next run (an occurrence, or
        the retry of one) fell due meanwhile, it is due next at its first occurrence after
        ``now`` (the ``resumed`` event's ``data.skipped_from`` names the time it skipped), with
        a fresh attempt count; otherwise it keeps that time. ``failed_in_a_row`` starts afresh.
        """
        if self.status is not ScheduleStatus.PAUSED:
            raise InvalidTransition(self.status.value, ScheduleStatus.SCHEDULED.value,
                                    f"it is {self.status.value}; only a paused one can be resumed")
        data: dict[str, str] = {}
        if self.next_run_at is not None and self._fell_due_while_paused(now):
            upcoming = self._first_occurrence_after(now)
            if upcoming is None:
                self._end_on_resume(now, actor)
                return
            data["skipped_from"] = instant_text(self.next_run_at)
            self.next_run_at = self.occurrence = upcoming
        self._move(ScheduleStatus.SCHEDULED, now)
        self.failed_in_a_row = 0
        if self.next_run_at is not None:
            data["next_run_at"] = instant_text(self.next_run_at)
        self._emit("resumed", now, **data, **audit_data(actor))

    def resume_skips_to(self, now: datetime) -> datetime | None:
        """Where :meth:`resume` at ``now`` moves the next run: for a recurring schedule whose next
        run fell due while it was paused, its first occurrence after ``now``. None when it keeps
        its time (a one-off, one not due yet) or ends (see :meth:`ends_on_resume`)."""
        return self._first_occurrence_after(now) if self._fell_due_while_paused(now) else None

    def _fell_due_while_paused(self, now: datetime) -> bool:
        """Whether a recurring schedule's next run is due by ``now``: resumed, it skips it."""
        return self.trigger.recurring and self.next_run_at is not None and self.next_run_at <= now

    def _first_occurrence_after(self, now: datetime) -> datetime | None:
        """The rule's first fire time after ``now`` and after the current occurrence (a retry
        due before its occurrence, after a claim ahead of a clock behind, skips to a new one)."""
        return self.trigger.next_fire_time(max(now, self.occurrence) if self.occurrence else now)

    def ends_on_resume(self, now: datetime) -> bool:
        """Whether :meth:`resume` at ``now`` ends the schedule: a recurring one whose next run fell
        due while it was paused and whose rule ended meanwhile (``until``), so that no occurrence
        is left to run after ``now``."""
        return self._fell_due_while_paused(now) and self._first_occurrence_after(now) is None

    def _end_on_resume(self, now: datetime, actor: Actor | None) -> None:
        """Resumed after its rule ended: ``missed``, saying so (its ``resumed`` event, then ``missed``,
        both caused by ``actor``'s resume)."""
        assert self.next_run_at is not None
        skipped = instant_text(self.next_run_at)
        reason = f"its rule ended while it was paused; nothing was left to run after {skipped}"
        self._move(ScheduleStatus.MISSED, now)
        self.next_run_at = None
        self.failed_in_a_row = 0
        self.last_error = ErrorInfo("missed", reason)
        self._emit("resumed", now, skipped_from=skipped, **audit_data(actor))
        self._emit("missed", now, reason=reason, **audit_data(actor))

    def check_movable(self) -> None:
        """:class:`InvalidTransition`, saying why, unless :meth:`reschedule` may move it (it
        waits: ``scheduled``, or ``paused``, which it stays)."""
        if self.status not in WAITING:
            raise InvalidTransition(self.status.value, "reschedule",
                                    f"it is {self.status.value}; only a scheduled or paused one can be moved"
                                    + _RUN_IN_PROGRESS.get(self.status, ""))
        if not self.trigger.recurring and (tried := self.attempts_for_occurrence):
            raise InvalidTransition(
                "waiting to retry", "reschedule",
                f"it is waiting to retry (attempt {len(tried)} failed); moving it would run it afresh, under "
                "another idempotency key (a duplicate the receiver could not drop): cancel it and create "
                "another instead")

    def change_task(self, *, payload: dict[str, Any], now: datetime,
                    labels: Mapping[str, str] | None = None, run_timeout: RunTimeoutChange = None,
                    actor: Actor | None = None) -> None:
        """Give a waiting schedule (``scheduled``, or ``paused``, which it stays) another payload:
        what its next run sends (its task type stays). Its time, occurrence and history stay; a
        ``scheduled`` event says so (``data.task_changed``).

        One that runs or ended is :class:`InvalidTransition`, and so is one waiting to retry an
        occurrence: the retry goes out under the idempotency key its failed attempt was sent
        with, so a changed payload would reach the receiver as a repeat of the old one, to be
        dropped (or worse, taken for it). A recurring one can be moved at the same time instead
        (see :meth:`reschedule`): the new occurrence has a key of its own. With ``labels`` or
        ``run_timeout``, those change too, as in :meth:`change_settings`.
        """
        if self.status not in WAITING:
            raise InvalidTransition(self.status.value, "change its task",
                                    f"it is {self.status.value}; only a scheduled or paused one takes another task"
                                    + _RUN_IN_PROGRESS.get(self.status, ""))
        if tried := self.attempts_for_occurrence:
            hint = ("; or move it at the same time (a new occurrence, with a key of its own)"
                    if self.trigger.recurring else "; or cancel it and create another")
            raise InvalidTransition(
                "waiting to retry", "change its task",
                f"it is waiting to retry (attempt {len(tried)} failed) under the idempotency key that attempt was "
                f"sent with, so another task would reach the receiver as a repeat of it: change it once the retry "
                f"has ended{hint}")
        changed = self._take_settings(labels, run_timeout)  # refused (a ValidationError) before anything else changes
        self.payload = dict(payload)
        self._touch(now)
        data = {"next_run_at": instant_text(self.next_run_at)} if self.next_run_at else {}
        self._emit("scheduled", now, task_changed="true", **changed, **data, **audit_data(actor))

    def relabel(self, *, labels: Mapping[str, str], now: datetime, actor: Actor | None = None) -> None:
        """Give a waiting schedule other labels: :meth:`change_settings` with ``labels`` alone."""
        self.change_settings(labels=labels, now=now, actor=actor)

    def change_settings(self, *, now: datetime, labels: Mapping[str, str] | None = None,
                        run_timeout: RunTimeoutChange = None, actor: Actor | None = None) -> None:
        """Give a waiting schedule (``scheduled``, or ``paused``, which it stays) other labels (the
        whole map: ``{}`` clears them) and/or another run time limit (see
        :func:`check_run_timeout`; :data:`NO_OWN_LIMIT`: none of its own); None: that one stays. Its time, occurrence, task and history
        stay, also while it waits to retry (neither reaches the receiver of its task); a
        ``scheduled`` event says what changed (``data.labels_changed``, ``data.run_timeout_changed``).

        One that ended is :class:`InvalidTransition`, and so is one that runs: its run's outcome
        is written under its lease, as the run read it, which would put the old values back.
        """
        if self.status not in WAITING:
            asked = [(name, other) for name, other, value in (("labels", "other labels", labels),
                                                              ("run time limit", "another run time limit", run_timeout))
                     if value is not None]
            hint = _RUN_IN_PROGRESS.get(self.status, "")
            raise InvalidTransition(self.status.value, "change its " + " and ".join(name for name, _ in asked),
                                    f"it is {self.status.value}; only a scheduled or paused one takes "
                                    + " and ".join(other for _, other in asked) + hint)
        changed = self._take_settings(labels, run_timeout)
        self._touch(now)
        data = {"next_run_at": instant_text(self.next_run_at)} if self.next_run_at else {}
        self._emit("scheduled", now, **changed, **data, **audit_data(actor))

    def _take_settings(self, labels: Mapping[str, str] | None, run_timeout: RunTimeoutChange) -> dict[str, str]:
        """Take ``labels`` and ``run_timeout`` (both checked before either is taken), those given:
        the event data that says so (``labels_changed``, ``run_timeout_changed``)."""
        checked = check_labels(labels) if labels is not None else None
        if run_timeout is not NO_OWN_LIMIT:
            check_run_timeout(run_timeout)
        changed = {}
        if checked is not None:
            self.labels = checked
            changed["labels_changed"] = "true"
        if run_timeout is not None:
            self.run_timeout = None if run_timeout is NO_OWN_LIMIT else run_timeout
            changed["run_timeout_changed"] = "true"
        return changed

    def reschedule(self, *, trigger: Trigger, first_run_at: datetime, timezone: str, now: datetime,
                   field: str = "send_at", payload: dict[str, Any] | None = None,
                   labels: Mapping[str, str] | None = None, run_timeout: RunTimeoutChange = None,
                   actor: Actor | None = None) -> None:
        """Move a waiting schedule to another time: a one-off to another instant, a recurring
        schedule to another rule (its kind stays: cancel and create to change it), in ``timezone``.

        Due next at ``first_run_at``: the occurrence at that time, with its own delivery key and
        attempt count (moved to the time it already had, it keeps its attempts). Only a schedule
        that waits moves (a ``paused`` one stays paused): one that runs or ended is
        :class:`InvalidTransition`, and so is a one-off waiting to retry (a move would make its
        send a new one, under another idempotency key and with its retries afresh: the receiver
        could not drop a duplicate).
        A recurring schedule waiting to retry an occurrence moves, and that retry is dropped.
        A one-off's ``send_by`` must not fall before it (an error names ``field``, where the
        request gave the new time). With ``payload``, the task changes too (the event says
        ``data.task_changed``), as in :meth:`change_task`; with ``labels`` or ``run_timeout``,
        those, as in :meth:`change_settings`.
        """
        self.check_movable()
        if trigger.recurring is not self.trigger.recurring:
            kind = "a recurring schedule" if self.trigger.recurring else "a one-off"
            raise ValidationError(f"this is {kind} and stays one; to change that, cancel it and create another",
                                  field="schedule")
        first = require_aware(first_run_at, field)
        if self.send_by is not None and self.send_by < first:
            raise ValidationError(f"the new time must not be after send_by ({instant_text(self.send_by)})", field=field)
        previous = self.next_run_at
        changed = self._take_settings(labels, run_timeout)  # refused (a ValidationError) before anything else changes
        self.trigger, self.timezone = trigger, timezone
        self.next_run_at = self.occurrence = first
        if payload is not None:
            self.payload = dict(payload)
            changed["task_changed"] = "true"
        self._touch(now)
        self._emit("scheduled", now, next_run_at=instant_text(first),
                   rescheduled_from=instant_text(previous) if previous else "", **changed, **audit_data(actor))

    def copy(self) -> Schedule:
        """A shallow copy with its own lists and dicts (payload, attempts, result, metadata,
        events, delivery, labels), so that changing one does not change the other; the immutable
        parts (trigger, policies, lease, history entries) are shared. In-memory stores copy on
        every read and write (twice per run), so it is :data:`_COPY`, written out field by field."""
        return _COPY(self)


#: What a refused change of a running schedule adds: the run ends on its own, then it may change.
_RUN_IN_PROGRESS = {ScheduleStatus.RUNNING: " (its run is in progress; change it once the run has ended)"}


def _seconds(span: timedelta) -> str:
    """``span`` for a message: whole seconds from 10 s up, else as precise as it is (a grace of
    0.001 s is not "0 s")."""
    seconds = span.total_seconds()
    return f"{int(seconds)} s" if seconds >= 10 else f"{seconds:.6f}".rstrip("0").rstrip(".") + " s"


#: The fields of a Schedule that hold a list or a dict: a copy has its own.
_CONTAINER_FIELDS = tuple(f.name for f in fields(Schedule) if str(f.type).startswith(("list", "dict")))


def _copier() -> Callable[[Schedule], Schedule]:
    """The body of :meth:`Schedule.copy`, written out from ``fields(Schedule)`` (so a field added
    later is copied too) as ``dataclasses`` writes ``__init__``: each field set on a new instance
    in turn, each list and dict copied. Not through ``__init__``, whose 28 parameters and default
    factories cost twice the rest of the copy: 0.5 µs a copy rather than 1.4, and a run on the
    in-memory store copies its schedule twice (the claim's answer, the outcome's save)."""
    lines = [f"    copied.{f.name} = schedule.{f.name}{'.copy()' if f.name in _CONTAINER_FIELDS else ''}"
             for f in fields(Schedule)]
    source = "\n".join(["def copy(schedule):", "    copied = new(Schedule)", *lines, "    return copied"])
    namespace: dict[str, Any] = {"Schedule": Schedule, "new": object.__new__}
    exec(source, namespace)  # noqa: S102 - our own text, made from the dataclass's fields
    copy: Callable[[Schedule], Schedule] = namespace["copy"]
    return copy


_COPY = _copier()
