"""Use cases that create and change schedules: schedule a message or any task, list and look
up, move, run now, pause and resume, cancel, and retry a dead, unknown or missed one; and when a
schedule, or a rule not yet scheduled, runs next."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from cronjob.domain.actor import Actor
from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.errors import InvalidTransition, ValidationError
from cronjob.domain.excepted import ExceptedTrigger
from cronjob.domain.instants import instant_text
from cronjob.domain.json_values import check_storable
from cronjob.domain.labels import check_labels
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import (
    NO_OWN_LIMIT,
    WAITING,
    MisfirePolicy,
    RunTimeoutChange,
    Schedule,
    ScheduleEvent,
    ScheduleStatus,
    check_run_timeout,
)
from cronjob.domain.trigger import OnceTrigger, Trigger, require_aware, whole_millisecond
from cronjob.domain.trigger_parser import parse_trigger
from cronjob.domain.upcoming import next_runs, preview as first_runs
from cronjob.domain.zones import iana_zone, localize
from cronjob.ports.clock import Clock
from cronjob.ports.events import EventPublisher, NoPublisher
from cronjob.ports.repository import (
    ConditionalSave,
    DuplicateSchedule,
    ListCursor,
    ScheduleRepository,
    list_order,
)
from cronjob.ports.signal import WorkSignal
from cronjob.services.commands import (
    WHATSAPP_TEMPLATE,
    WHATSAPP_TEXT,
    Change,
    CreateScheduleCommand,
    RescheduleCommand,
    ScheduleMessageCommand,
    message_task_type,
)
from cronjob.services.listing import SchedulePage, due_window, list_cursor, updated_window
from cronjob.services.messaging import prepare_whatsapp_payload
from cronjob.services.retention import RETENTION
from cronjob.services.schedule_ids import new_schedule_id
from cronjob.services.write_ahead import publish_then_write, publish_then_write_many


class ScheduleNotFound(Exception):
    """No schedule has this id."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with id {schedule_id!r}")
        self.schedule_id = schedule_id


class ScheduleConflict(Exception):
    """The schedule is not in a status that allows the request (e.g. cancelling a sent message)."""


def _once(send_at: datetime) -> OnceTrigger:
    """The one-off trigger of a ``send_at``; what is wrong with it names ``send_at``."""
    try:
        return OnceTrigger(require_aware(send_at, "send_at"))
    except ValidationError as error:
        raise ValidationError(error.message, field="send_at") from None


def _why_never(trigger: Trigger, now: datetime) -> str:
    """Why a recurring rule has no fire time after ``now``, as the end of a sentence."""
    if isinstance(trigger, ExceptedTrigger):  # its rule's own reason, or: every date left is listed
        inner = trigger.rule.next_fire_time(now)
        if inner is None:
            return _why_never(trigger.rule, now)
        return " after now: each occurrence it has left falls on a date listed after 'except'"
    until = trigger.until if isinstance(trigger, BoundedTrigger) else None
    if until is None:
        return " after now"
    if until < now:
        return f": it ended at {instant_text(until)}"
    rule = trigger.rule if isinstance(trigger, BoundedTrigger) else trigger
    if isinstance(rule, IntervalTrigger) and rule.anchor > until:  # (a calendar rule's start is refused so)
        return f": it starts ('from', {instant_text(rule.anchor)}) after it ends ('until', {instant_text(until)})"
    return f" after now: it has no occurrence before it ends at {instant_text(until)}"


def _prepared(preparer: PayloadPreparer, payload: dict[str, Any]) -> dict[str, Any]:
    """The task's payload, checked and prepared, and storable as it is in every store; an error
    names its field by its place in the request (``task.params``, not ``params``: a schedule's
    own fields sit beside ``task``)."""
    try:
        prepared = preparer(payload)
        check_storable(prepared)
        return prepared
    except ValidationError as error:
        raise ValidationError(error.message, field=f"task.{error.field}" if error.field else "task") from None


#: The longest rule the API takes, and the longest a rule may be once written out as it is kept
#: (``hourly`` becomes ``every hour from <instant>``, a date bound an instant): so that every rule
#: the API shows, it takes back.
MAX_RULE_LENGTH = 300

#: How many times a cancel or a move reads and writes again when the schedule changed in between.
_WRITE_TRIES = 3

#: The key of a schedule's metadata holding the digest of the request that created it.
REQUEST_DIGEST = "request_digest"


def _replayed(existing: Schedule, request_digest: str | None) -> Scheduled:
    """The answer to a request whose idempotency key ``existing`` holds: that schedule, when the
    request is the one that created it. Another request with the same key is refused: answering
    it with an unrelated schedule would drop what it asked for without a word. (Schedules stored
    before digests were kept, and callers that give none, are not compared.)"""
    stored = existing.metadata.get(REQUEST_DIGEST)
    if stored and request_digest and stored != request_digest:
        raise ValidationError("this Idempotency-Key was used for a different request; use a new key for a "
                              "new request", field="Idempotency-Key")
    return Scheduled(existing, created=False)


def _keys_of(commands: Sequence[ScheduleMessageCommand | CreateScheduleCommand]) -> list[str]:
    """The idempotency keys ``commands`` may have been stored under: each one's key, and the form
    earlier versions stored it in."""
    return [key for command in commands for key in (command.idempotency_key, command.earlier_key) if key]


def _replay_in(stored: Mapping[str, Schedule],
               command: ScheduleMessageCommand | CreateScheduleCommand) -> Scheduled | None:
    """The answer to ``command`` when ``stored`` (schedules by idempotency key) holds its key, or
    else the form earlier versions stored it in: :func:`_replayed` of that schedule; None when
    it holds neither (the command is new)."""
    for key in (command.idempotency_key, command.earlier_key):
        if key and (existing := stored.get(key)) is not None:
            return _replayed(existing, command.request_digest)
    return None


@dataclass(frozen=True, slots=True)
class Upcoming:
    """A schedule and the times of its next runs (see :func:`~cronjob.domain.upcoming.upcoming_runs`);
    ``retry``: the first of them retries an occurrence already tried."""

    schedule: Schedule
    runs: list[datetime]
    retry: bool


@dataclass(frozen=True, slots=True)
class RulePreview:
    """A rule not yet scheduled: its trigger (whose expression is the canonical rule), its zone and
    the times of its first runs were it scheduled now."""

    trigger: Trigger
    timezone: str
    runs: list[datetime]


class TriggerParser(Protocol):
    """Parses a schedule expression in a zone (``now`` anchors intervals written without ``from``)."""

    def __call__(self, expression: str, timezone: str, *, now: datetime | None = None) -> Trigger: ...


#: Prepares the stored payload of a task type from the requested one (raises ValidationError).
PayloadPreparer = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Scheduled:
    """The outcome of scheduling: the schedule, and whether it already existed (idempotent replay)."""

    schedule: Schedule
    created: bool


class SchedulingService:
    """Creates, reads, moves, runs now, pauses, resumes, cancels and retries schedules. Validation that needs no I/O happens before
    any write."""

    def __init__(
        self,
        repository: ScheduleRepository,
        clock: Clock,
        signal: WorkSignal,
        *,
        parse_trigger: TriggerParser = parse_trigger,
        past_grace: timedelta = timedelta(minutes=5),
        one_off_misfire_grace: timedelta | None = timedelta(hours=1),
        default_language: str = "pt_BR",
        preparers: Mapping[str, PayloadPreparer] | None = None,
        new_id: Callable[[], str] = new_schedule_id,
        publisher: EventPublisher | None = None,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._signal = signal
        self._parse_trigger = parse_trigger
        self._past_grace = past_grace
        self._one_off_grace = one_off_misfire_grace
        self._default_language = default_language
        whatsapp = partial(prepare_whatsapp_payload, default_language=default_language)
        self._preparers: dict[str, PayloadPreparer] = {WHATSAPP_TEMPLATE: whatsapp, WHATSAPP_TEXT: whatsapp}
        self._preparers.update(preparers or {})
        self._new_id = new_id
        self._publisher = publisher or NoPublisher()

    @property
    def task_types(self) -> list[str]:
        """The task types this service can schedule."""
        return sorted(self._preparers)

    async def schedule_message(self, command: ScheduleMessageCommand) -> Scheduled:
        """Validate, render and store a one-off message; replay the stored one for a known key.

        A ``send_at`` up to ``past_grace`` in the past is accepted and sent at once; older is refused.
        A replay is answered before any check: the client repeating a request that was accepted
        gets the schedule it created, even once its ``send_at`` has passed.
        """
        if (replayed := await self._replay(command)) is not None:
            return replayed
        now = self._now()
        iana_zone(command.timezone)
        trigger = _once(command.send_at)  # to the millisecond, as stored
        self._check_not_too_old(trigger.at, now, command.send_at_text, field="send_at")
        payload = prepare_whatsapp_payload(
            {"to": command.to, "kind": command.kind.value, "body": command.body,
             "params": list(command.params), "template_name": command.template_name,
             "language": command.language, "header": command.header, "buttons": list(command.buttons)},
            default_language=self._default_language,
        )
        return await self._store(
            task_type=message_task_type(command.kind),
            payload=payload, trigger=trigger, first_run_at=trigger.at, now=now,
            timezone=command.timezone, user_id=command.user_id, idempotency_key=command.idempotency_key,
            retry=command.retry, misfire=self._misfire(command.misfire_grace, recurring=False),
            send_by=command.send_by,
            metadata={"send_at": command.send_at_text},
            callback_url=command.callback_url, request_digest=command.request_digest, actor=command.actor,
        )

    async def create(self, command: CreateScheduleCommand) -> Scheduled:
        """Validate and store a schedule of any known task type, one-off or recurring (a replay of
        a known idempotency key answers with the stored schedule, before any check)."""
        if (replayed := await self._replay(command)) is not None:
            return replayed
        return await self._write(self._new_schedule(command), command.request_digest)

    async def create_many(self, commands: Sequence[CreateScheduleCommand]) -> list[Scheduled | ValidationError]:
        """Each of ``commands`` as :meth:`create` makes it, answered in their order: the
        :class:`Scheduled` (created, or the replay of its idempotency key), or the
        :class:`ValidationError` that refused it; one refused holds back none of the others.

        The idempotency keys of them all are looked up at once
        (:meth:`~cronjob.ports.repository.ScheduleRepository.get_by_idempotency_keys`: SQLite
        reads 1,000 in two queries), then every new schedule is stored in one
        :meth:`~cronjob.ports.repository.ScheduleRepository.add_many` (SQLite: one
        transaction, one sync of its log) with its events published around it as
        :func:`publish_then_write_many` says. A key taken meanwhile, or by an item before it,
        is answered as :meth:`create` answers a race for a key: the schedule that has it. Any
        other error (an unreachable store) ends the call with that error; what was stored
        before stays."""
        outcomes: list[Scheduled | ValidationError | None] = [None] * len(commands)
        stored = await self._repository.get_by_idempotency_keys(_keys_of(commands))
        for index, command in enumerate(commands):
            try:
                outcomes[index] = _replay_in(stored, command)
            except ValidationError as refused:
                outcomes[index] = refused
        new: list[tuple[int, Schedule]] = []
        for index, command in enumerate(commands):
            if outcomes[index] is None:
                try:
                    new.append((index, self._new_schedule(command)))
                except ValidationError as refused:
                    outcomes[index] = refused
        taken: list[str | None] = []

        async def add_all() -> list[bool]:
            nonlocal taken
            taken = await self._repository.add_many([schedule for _, schedule in new])
            return [existing_id is None for existing_id in taken]

        await publish_then_write_many(self._publisher, [(schedule, schedule.events) for _, schedule in new],
                                      add_all)
        for (index, schedule), existing_id in zip(new, taken, strict=True):
            if existing_id is None:
                self._notify_new(schedule)
                outcomes[index] = Scheduled(schedule, created=True)
            else:
                try:
                    outcomes[index] = await self._winner(DuplicateSchedule(existing_id),
                                                         commands[index].request_digest)
                except ValidationError as refused:
                    outcomes[index] = refused
        return [outcome for outcome in outcomes if outcome is not None]

    async def _winner(self, duplicate: DuplicateSchedule, request_digest: str | None) -> Scheduled:
        """The answer to a creation whose key (or id) another schedule took first (two requests
        with one key raced, or two items of a batch): that schedule, replayed as
        :func:`_replayed` says; ``duplicate`` itself when it is gone meanwhile."""
        existing = await self._repository.get(duplicate.existing_id)
        if existing is None:
            raise duplicate
        return _replayed(existing, request_digest)

    def _new_schedule(self, command: CreateScheduleCommand) -> Schedule:
        """The schedule ``command`` asks for, checked, not stored yet."""
        now = self._now()
        iana_zone(command.timezone)
        preparer = self._preparers.get(command.task_type)
        if preparer is None:
            raise ValidationError(
                f"unknown task type {command.task_type!r}; known: {', '.join(self.task_types)}", field="task.type")
        trigger = self._parse_trigger(command.schedule, command.timezone, now=now)
        first = self._first_run(trigger, command.schedule, now)
        return self._schedule(
            task_type=command.task_type, payload=_prepared(preparer, command.payload), trigger=trigger,
            first_run_at=first, now=now, timezone=command.timezone, user_id=command.user_id,
            idempotency_key=command.idempotency_key, retry=command.retry,
            misfire=self._misfire(command.misfire_grace, recurring=trigger.recurring, coalesce=command.coalesce),
            send_by=command.send_by, metadata={"schedule": command.schedule},
            callback_url=command.callback_url, request_digest=command.request_digest,
            pause_after_failures=command.pause_after_failures, labels=command.labels,
            run_timeout=command.run_timeout, actor=command.actor,
        )

    async def upcoming(self, schedule_id: str, count: int) -> Upcoming:
        """When the schedule runs next, its next ``count`` runs at most, if nothing changes (see
        :func:`~cronjob.domain.upcoming.upcoming_runs`: a paused one as if resumed now, none for
        one that ended); :class:`ScheduleNotFound` for an unknown id."""
        schedule = await self.get(schedule_id)
        now = self._now()
        return Upcoming(schedule, *next_runs(schedule, now, count))

    def preview(self, expression: str, timezone: str, count: int) -> RulePreview:
        """The first ``count`` runs at most of the rule ``expression`` in ``timezone`` were it
        scheduled now: checked as :meth:`create` checks them (the same errors, naming
        ``schedule`` or ``timezone``), first due when :meth:`create` would make it due."""
        now = self._now()
        iana_zone(timezone)
        trigger = self._parse_trigger(expression, timezone, now=now)
        return RulePreview(trigger, timezone, first_runs(trigger, self._first_run(trigger, expression, now), count))

    def _now(self) -> datetime:
        """The clock, to the millisecond the stores keep: what a request is answered with is what
        a later read of the schedule shows."""
        return whole_millisecond(self._clock.now())

    def _misfire(self, grace: timedelta | None, *, recurring: bool, coalesce: bool = True) -> MisfirePolicy:
        """The policy a request asks for: no grace given is the default one (for one-offs only),
        a zero grace means no limit."""
        if grace is None:
            grace = None if recurring else self._one_off_grace
        elif not grace:
            grace = None
        return MisfirePolicy(grace=grace, coalesce=coalesce)

    def _check_not_too_old(self, send_at: datetime, now: datetime, text: str, *, field: str) -> None:
        if send_at < now - self._past_grace:
            raise ValidationError(
                f"{field} {text} is more than {int(self._past_grace.total_seconds())} s in the past",
                field=field,
            )

    async def _store(self, *, request_digest: str | None, **fields: Any) -> Scheduled:
        """A new schedule of ``fields`` (see :meth:`_schedule`), stored."""
        return await self._write(self._schedule(request_digest=request_digest, **fields), request_digest)

    def _schedule(
        self,
        *,
        task_type: str,
        payload: dict[str, Any],
        trigger: Trigger,
        first_run_at: datetime,
        now: datetime,
        timezone: str,
        user_id: str | None,
        idempotency_key: str | None,
        retry: RetryPolicy | None,
        misfire: MisfirePolicy,
        send_by: datetime | None,
        metadata: dict[str, str],
        callback_url: str | None,
        request_digest: str | None,
        pause_after_failures: int | None = None,
        labels: Mapping[str, str] | None = None,
        run_timeout: timedelta | None = None,
        actor: Actor | None = None,
    ) -> Schedule:
        if request_digest:  # kept with the schedule, to tell a replay from another request
            metadata = {**metadata, REQUEST_DIGEST: request_digest}
        return Schedule.create(
            id=self._new_id(),
            task_type=task_type,
            payload=payload,
            trigger=trigger,
            timezone=timezone,
            first_run_at=first_run_at,
            now=now,
            user_id=user_id,
            idempotency_key=idempotency_key,
            retry=retry,
            misfire=misfire,
            send_by=send_by,
            metadata=metadata,
            callback_url=callback_url,
            pause_after_failures=pause_after_failures,
            labels=dict(labels or {}),
            run_timeout=run_timeout,
            actor=actor,
        )

    async def _write(self, schedule: Schedule, request_digest: str | None) -> Scheduled:
        """Store the new ``schedule``, its events published around the write; a schedule that took
        its key first (two requests with one key raced) is the answer then."""
        duplicate: DuplicateSchedule | None = None

        async def add() -> bool:
            nonlocal duplicate
            try:
                await self._repository.add(schedule)
            except DuplicateSchedule as refused:
                duplicate = refused  # nothing written: its events are withdrawn, never delivered
                return False
            return True

        await publish_then_write(self._publisher, schedule, schedule.events, add)
        if duplicate is not None:  # both requests answer with the schedule that won
            return await self._winner(duplicate, request_digest)
        self._notify_new(schedule)
        return Scheduled(schedule, created=True)

    def _notify_new(self, schedule: Schedule) -> None:
        """Wake the engine for a schedule just created (due at its first run)."""
        if schedule.next_run_at is not None:  # always, for a new one
            self._signal.notify(schedule.next_run_at)

    async def _replay(self, command: ScheduleMessageCommand | CreateScheduleCommand) -> Scheduled | None:
        """The schedule stored under the command's idempotency key, or under the form earlier
        versions stored it in (not created now), if any."""
        return _replay_in(await self._repository.get_by_idempotency_keys(_keys_of([command])), command)

    async def get(self, schedule_id: str) -> Schedule:
        """The schedule with this id; :class:`ScheduleNotFound` otherwise."""
        schedule = await self._repository.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFound(schedule_id)
        return schedule

    async def list(
        self,
        *,
        status: ScheduleStatus | None = None,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
        user_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
        due_after: datetime | None = None,
        due_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        after: ListCursor | None = None,
    ) -> list[Schedule]:
        """A page of schedules, newest first, or soonest due first in a due-time window
        (``due_after <= next_run_at < due_before``, live schedules only), optionally only those
        last changed in a window (``updated_after <= updated_at < updated_before``), filtered as
        :meth:`ScheduleRepository.list` says; with ``after``, those after that cursor's position
        (keyset paging). The windows are checked first (see :func:`due_window` and
        :func:`updated_window`), then the cursor (see :func:`list_cursor`)."""
        due_after, due_before = due_window(due_after, due_before)
        updated_after, updated_before = updated_window(updated_after, updated_before)
        after = list_cursor(after, offset, due_after, due_before)
        return await self._repository.list(status=status, task_types=task_types, exclude_types=exclude_types,
                                           user_id=user_id, labels=labels, limit=limit, offset=offset,
                                           due_after=due_after, due_before=due_before,
                                           updated_after=updated_after, updated_before=updated_before, after=after)

    async def page(
        self,
        *,
        status: ScheduleStatus | None = None,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
        user_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
        due_after: datetime | None = None,
        due_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        after: ListCursor | None = None,
    ) -> SchedulePage:
        """:meth:`list`, whether more schedules match after that page (one more is read,
        ``limit + 1``, to know) and, when they do, the cursor of the next page: the position of
        this page's last schedule, in the order of this list."""
        found = await self.list(status=status, task_types=task_types, exclude_types=exclude_types,
                                user_id=user_id, labels=labels, limit=limit + 1, offset=offset,
                                due_after=due_after, due_before=due_before,
                                updated_after=updated_after, updated_before=updated_before, after=after)
        items, has_more = found[:limit], len(found) > limit
        order = list_order(due_after, due_before)
        return SchedulePage(items=items, has_more=has_more,
                            next_cursor=ListCursor.of(items[-1], order) if has_more and items else None)

    async def counts(self) -> dict[tuple[ScheduleStatus, str], int]:
        """How many schedules there are per (status, task type); pairs with none are left out."""
        return await self._repository.count_by_status_and_type()

    async def cancel(self, schedule_id: str, actor: Actor | None = None) -> Schedule:
        """Cancel a schedule that waits (``scheduled`` or ``paused``), or a recurring one even while
        it runs (see :meth:`Schedule.cancel`); :class:`ScheduleConflict` for a one-off that started
        or ended. Cancelling a cancelled schedule returns it as it is. Its ``cancelled`` event
        names ``actor`` (who asked), as the events of every change below do."""
        return await self.change(schedule_id, self.cancelling(actor))

    def cancelling(self, actor: Actor | None = None) -> Change:
        """What :meth:`cancel` does, asked by ``actor``, as a :class:`Change`."""
        return Change("cancelled", lambda s: s.status is ScheduleStatus.CANCELLED, partial(_cancel, actor=actor))

    async def pause(self, schedule_id: str, actor: Actor | None = None) -> Schedule:
        """Hold a ``scheduled`` schedule until :meth:`resume` (see :meth:`Schedule.pause`);
        :class:`ScheduleConflict` for one that runs or ended and for the service's own jobs.
        Pausing a paused schedule returns it as it is."""
        return await self.change(schedule_id, self.pausing(actor))

    def pausing(self, actor: Actor | None = None) -> Change:
        """What :meth:`pause` does, asked by ``actor``, as a :class:`Change`."""

        def pause(schedule: Schedule, now: datetime) -> None:
            self._check_not_own(schedule, "paused")
            schedule.pause(now=now, actor=actor)

        return Change("paused", lambda s: s.status is ScheduleStatus.PAUSED, pause)

    async def resume(self, schedule_id: str, actor: Actor | None = None) -> Schedule:
        """Let a ``paused`` schedule run again (see :meth:`Schedule.resume`: a recurring one skips
        what fell due meanwhile); one that is not paused but live (``scheduled``, ``running``) is
        returned as it is, one that ended is a :class:`ScheduleConflict`."""
        return await self.change(schedule_id, self.resuming(actor))

    def resuming(self, actor: Actor | None = None) -> Change:
        """What :meth:`resume` does, asked by ``actor``, as a :class:`Change`."""
        return Change("resumed", lambda s: s.status in (ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING),
                      lambda schedule, now: schedule.resume(now=now, actor=actor))

    async def run_now(self, schedule_id: str, request_key: str | None = None,
                      actor: Actor | None = None) -> Schedule:
        """Make a ``scheduled`` schedule due now (see :meth:`Schedule.run_now`: a recurring one
        runs once more, then on as its rule says); one due already is returned as it is, unless
        it is too late to run (beyond its misfire grace: then it is due now, and runs);
        :class:`ScheduleConflict` for one that is not ``scheduled`` and for the service's own jobs.

        With ``request_key``, a repeat of the last run-now asked with it is answered with the
        schedule as it is, whatever happened since (it ran, it ended): run once, not twice."""

        def run_now(schedule: Schedule, now: datetime) -> None:
            self._check_not_own(schedule, "run")
            schedule.run_now(now=now, request_key=request_key, actor=actor)

        def done(schedule: Schedule) -> bool:
            if request_key is not None:
                return schedule.ran_now_for(request_key)
            return schedule.due_to_run(self._now())

        return await self._change(schedule_id, "run now", done, run_now)

    def _check_not_own(self, schedule: Schedule, verb: str) -> None:
        """:class:`ScheduleConflict` for the service's own jobs (task types it does not schedule)."""
        if schedule.task_type not in self._preparers:
            raise ScheduleConflict(f"schedule {schedule.id} is one of the service's own jobs "
                                   f"({schedule.task_type}); it is not {verb} by hand")

    async def change(self, schedule_id: str, change: Change) -> Schedule:
        """Make ``change`` to the schedule with this id, as :meth:`cancel` cancels one: read,
        changed and written conditional on being as read (read and changed again, a few times,
        when it changed meanwhile); one that has it already is returned as it is.
        :class:`ScheduleNotFound`, or :class:`ScheduleConflict` saying why it does not fit."""
        return await self._change(schedule_id, change.verb, change.done, change.apply)

    async def change_listed(self, listed: Sequence[Schedule], change: Change) -> list[bool]:
        """Make ``change`` to each of ``listed`` (schedules as a list just read them, one each),
        as :meth:`change` makes it to one but without reading them again: each changed as
        listed (in place), its events published, all written in one
        :meth:`~cronjob.ports.repository.ScheduleRepository.save_many`, each conditional on
        the status and version listed, so that nothing that changed since is overwritten.
        Answers, in the order of ``listed``, whether each was changed now. False for one that
        has the change already, that it does not fit as listed, or whose write was refused
        (changed since): :meth:`change` it alone, which reads it again and decides (and says
        why in a :class:`ScheduleConflict`)."""
        now = self._now()
        changed: list[tuple[Schedule, list[ScheduleEvent]]] = []
        writes: list[ConditionalSave] = []
        positions: list[int] = []
        for position, schedule in enumerate(listed):
            if change.done(schedule):
                continue
            status, version = schedule.status, schedule.updated_at
            before = {event.id for event in schedule.events}
            try:
                change.apply(schedule, now)
            except (InvalidTransition, ScheduleConflict):
                continue
            changed.append((schedule, [event for event in schedule.events if event.id not in before]))
            writes.append(ConditionalSave(schedule, expected_status=status, expected_updated_at=version))
            positions.append(position)
        written = await publish_then_write_many(self._publisher, changed,
                                                partial(self._repository.save_many, writes))
        outcome = [False] * len(listed)
        due: list[datetime] = []
        for position, write, ok in zip(positions, writes, written, strict=True):
            outcome[position] = ok
            schedule = write.schedule
            if ok and schedule.status is ScheduleStatus.SCHEDULED and schedule.next_run_at is not None:
                due.append(schedule.next_run_at)
        if due:
            self._signal.notify(min(due))  # due, perhaps sooner than this process knew
        return outcome

    async def _change(self, schedule_id: str, verb: str, done: Callable[[Schedule], bool],
                      change: Callable[[Schedule, datetime], None]) -> Schedule:
        """Read the schedule, ``change`` it and write it back, conditional on it being as read
        (a run that ended meanwhile makes it read and change again, a few times), and wake the
        engine when it is due next. One that is ``done`` already is returned as it is; a change
        the domain refuses is a :class:`ScheduleConflict` saying why."""
        for _ in range(_WRITE_TRIES):
            schedule = await self.get(schedule_id)
            if done(schedule):
                return schedule
            status, version = schedule.status, schedule.updated_at
            before = {event.id for event in schedule.events}
            try:
                change(schedule, self._now())
            except InvalidTransition as refused:
                raise ScheduleConflict(f"schedule {schedule_id}: {refused}") from None

            async def write(schedule: Schedule = schedule, status: ScheduleStatus = status,
                            version: datetime = version) -> bool:
                return await self._repository.save(schedule, expected_status=status, expected_updated_at=version)

            emitted = [event for event in schedule.events if event.id not in before]  # resumed, then missed
            if await publish_then_write(self._publisher, schedule, emitted, write):
                if schedule.status is ScheduleStatus.SCHEDULED and schedule.next_run_at is not None:
                    self._signal.notify(schedule.next_run_at)  # due, perhaps sooner than this process knew
                return schedule
        raise ScheduleConflict(f"schedule {schedule_id} kept changing while it was being {verb}; try again")

    async def reschedule(self, command: RescheduleCommand) -> Schedule:
        """Move a ``scheduled`` or ``paused`` schedule (which stays paused) to another time (see
        :meth:`Schedule.reschedule`), give it another task (:meth:`Schedule.change_task`), other
        labels (:meth:`Schedule.relabel`: also while it waits to retry), or several at once:
        :class:`ScheduleConflict` for one that runs or ended, a one-off waiting to retry, a task
        change of one waiting to retry that does not move it, and the service's own jobs (task
        types it does not schedule); :class:`ValidationError` for a time too far in the past, a
        rule that never fires, a one-off made recurring (or back), another task type and a
        payload its task type refuses.

        The write is conditional on the schedule being as read; one that changed meanwhile is
        read and changed again, a few times. A time, task or labels that the schedule already
        has (the same rule and zone, due when it is due; a repeat of the request) are answered
        with the schedule as it is; labels it has already do not count as changed beside another
        change (its event says ``labels_changed`` only when they did).
        """
        moves = command.send_at is not None or command.schedule is not None
        if command.send_at is not None and command.schedule is not None:
            raise ValidationError("give either send_at (a one-off) or schedule (a rule), not both", field="send_at")
        task_given = command.payload is not None and command.task_type is not None
        settings_given = command.labels is not None or command.run_timeout is not None
        if command.timezone is not None and not moves:
            alone = task_given or settings_given
            raise ValidationError("timezone goes with a new time (send_at or schedule)" + (
                "; another task, labels or run time limit alone keep the schedule's time and zone" if alone else ""),
                field="timezone")
        if not moves and not task_given and not settings_given:
            raise ValidationError("give send_at (a one-off), schedule (a rule), task, labels or run_timeout_seconds: "
                                  "nothing to change", field="schedule")
        if command.timezone is not None:
            iana_zone(command.timezone)
        labels = check_labels(command.labels) if command.labels is not None else None
        run_timeout = command.run_timeout if command.run_timeout is NO_OWN_LIMIT else check_run_timeout(
            command.run_timeout)
        prepared: list[dict[str, Any] | None] = []  # the new task's payload, once its type was checked

        def new_payload(schedule: Schedule) -> dict[str, Any] | None:
            self._check_not_own(schedule, "changed")
            if command.task_type is not None and command.task_type != schedule.task_type:
                raise ValidationError(f"this schedule runs {schedule.task_type} and keeps its task type; to run "
                                      f"{command.task_type}, cancel it and create another", field="task.type")
            if not prepared:
                prepared.append(self._changed_payload(command))
            return prepared[0]

        def new_labels(schedule: Schedule) -> dict[str, str] | None:
            return labels if labels is not None and labels != schedule.labels else None

        def new_limit(schedule: Schedule) -> RunTimeoutChange:
            if run_timeout is NO_OWN_LIMIT:
                return run_timeout if schedule.run_timeout is not None else None
            return run_timeout if run_timeout is not None and run_timeout != schedule.run_timeout else None

        def change(schedule: Schedule, now: datetime) -> None:
            payload = new_payload(schedule)  # refuses the service's own jobs, and another task type
            if not moves:
                if not settings_given or (payload is not None and payload != schedule.payload):
                    assert payload is not None
                    schedule.change_task(payload=payload, now=now, labels=new_labels(schedule),
                                         run_timeout=new_limit(schedule), actor=command.actor)
                else:  # the task it has (or none given): only the labels and/or the run time limit change
                    schedule.change_settings(labels=new_labels(schedule), run_timeout=new_limit(schedule), now=now,
                                             actor=command.actor)
                return
            schedule.check_movable()  # before the new time is checked: a 409 says more than a 422
            zone = command.timezone or schedule.timezone
            trigger, first, text_key, text = self._new_time(command, schedule, zone, now)
            schedule.reschedule(trigger=trigger, first_run_at=first, timezone=zone, now=now, field=text_key,
                                payload=payload, labels=new_labels(schedule), run_timeout=new_limit(schedule),
                                actor=command.actor)
            for key in ("send_at", "schedule"):
                schedule.metadata.pop(key, None)
            schedule.metadata[text_key] = text

        def unchanged(schedule: Schedule) -> bool:
            if schedule.status not in WAITING:
                return False
            payload = new_payload(schedule)  # refuses the service's own jobs, and another task type
            if not ((payload is None or payload == schedule.payload) and new_labels(schedule) is None
                    and new_limit(schedule) is None):
                return False
            if not moves:
                return True
            if schedule.attempts_for_occurrence:  # waiting to retry: a move drops the retry (or is refused)
                return False
            # The time it has already (a client's retry of the same PATCH): no new occurrence, no event.
            zone = command.timezone or schedule.timezone
            trigger, first, _, _ = self._new_time(command, schedule, zone, self._now())
            return (zone == schedule.timezone and trigger.expression == schedule.trigger.expression
                    and first == schedule.next_run_at)

        return await self._change(command.schedule_id, "changed" if not moves else "moved", unchanged, change)

    def _changed_payload(self, command: RescheduleCommand) -> dict[str, Any] | None:
        """The new task's payload, checked and prepared as its type (the schedule's own, which the
        service schedules) prepares one; None: no new task."""
        if command.payload is None or command.task_type is None:
            return None
        return _prepared(self._preparers[command.task_type], command.payload)

    def _new_time(self, command: RescheduleCommand, schedule: Schedule, zone: str,
                  now: datetime) -> tuple[Trigger, datetime, str, str]:
        """The trigger and first due time a reschedule asks for, and the metadata text to keep."""
        if command.send_at is not None:
            if schedule.trigger.recurring:
                raise ValidationError("a recurring schedule is moved with schedule (a rule), not send_at",
                                      field="send_at")
            send_at = command.send_at if command.send_at.tzinfo is not None else localize(command.send_at, zone)
            text = command.send_at_text or send_at.isoformat()
            once = _once(send_at)
            self._check_not_too_old(once.at, now, text, field="send_at")
            return once, once.at, "send_at", text
        assert command.schedule is not None
        trigger = self._parse_trigger(command.schedule, zone, now=now)
        return trigger, self._first_run(trigger, command.schedule, now), "schedule", command.schedule

    def _first_run(self, trigger: Trigger, expression: str, now: datetime) -> datetime:
        """When the rule ``expression`` (parsed: ``trigger``) first runs: a one-off at its instant,
        if not too far in the past; a recurring rule at its next fire time after ``now``. A rule
        longer than :data:`MAX_RULE_LENGTH` as it is kept (its canonical expression) is refused."""
        kept = trigger.expression
        if len(kept) > MAX_RULE_LENGTH:
            raise ValidationError(f"this rule is kept as {kept!r}, {len(kept)} characters, more than the "
                                  f"{MAX_RULE_LENGTH} a rule may have: shorten it", field="schedule")
        if isinstance(trigger, OnceTrigger):
            self._check_not_too_old(trigger.at, now, expression, field="schedule")
            return trigger.at
        upcoming = trigger.next_fire_time(now)
        if upcoming is None:
            raise ValidationError(f"{expression!r} never fires{_why_never(trigger, now)}", field="schedule")
        return upcoming

    async def retry(self, schedule_id: str, actor: Actor | None = None) -> Schedule:
        """Re-run a ``dead``, ``unknown`` or ``missed`` schedule now (an operator's decision):
        a new occurrence with a fresh attempt count; :class:`ScheduleConflict` from other statuses."""
        return await self.change(schedule_id, self.retrying(actor))

    def retrying(self, actor: Actor | None = None) -> Change:
        """What :meth:`retry` does, asked by ``actor``, as a :class:`Change`."""
        return Change("retried", lambda _: False, partial(_retry, actor=actor))


def _cancel(schedule: Schedule, now: datetime, *, actor: Actor | None = None) -> None:
    """Cancel ``schedule`` (:meth:`SchedulingService.cancel`); never the retention of the
    service's own jobs, which its setting switches off (a cancel would be undone at the next start)."""
    if schedule.task_type == RETENTION:
        raise ScheduleConflict(f"schedule {schedule.id} is the service's retention of its own finished jobs; "
                               "it is not cancelled by hand: set CRONJOB_INTERNAL_RETENTION_HOURS=0 to switch it off")
    if not schedule.cancellable:
        raise ScheduleConflict(f"schedule {schedule.id} is {schedule.status.value} and can no longer be cancelled")
    schedule.cancel(now=now, actor=actor)


def _retry(schedule: Schedule, now: datetime, *, actor: Actor | None = None) -> None:
    """Retry ``schedule`` now (:meth:`SchedulingService.retry`)."""
    if schedule.status not in (ScheduleStatus.DEAD, ScheduleStatus.UNKNOWN, ScheduleStatus.MISSED):
        raise ScheduleConflict(f"schedule {schedule.id} is {schedule.status.value}; only dead, unknown "
                               "or missed schedules can be retried")
    schedule.retry_now(now=now, actor=actor)
