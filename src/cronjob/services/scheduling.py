"""Use cases that create and change schedules: schedule a message, cancel, look up."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import MessageKind
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.template import TemplateRenderer
from cronjob.domain.trigger import OnceTrigger, require_aware
from cronjob.ports.clock import Clock
from cronjob.ports.repository import DuplicateSchedule, ScheduleRepository
from cronjob.ports.signal import WorkSignal

WHATSAPP_TEMPLATE = "whatsapp.template"
WHATSAPP_TEXT = "whatsapp.text"


class ScheduleNotFound(Exception):
    """No schedule has this id."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with id {schedule_id!r}")
        self.schedule_id = schedule_id


class ScheduleConflict(Exception):
    """The schedule is not in a status that allows the request (e.g. cancelling a sent message)."""


@dataclass(frozen=True, slots=True)
class ScheduleMessageCommand:
    """A request to send one WhatsApp message at ``send_at``.

    ``send_at`` is aware; ``send_at_text`` is the client's own text of it (kept to show the
    original offset). ``body`` holds ``{{1}}``-style placeholders filled from ``params``.
    """

    to: str
    body: str
    kind: MessageKind
    send_at: datetime
    send_at_text: str
    timezone: str
    params: tuple[str, ...] = ()
    template_name: str | None = None
    language: str | None = None
    user_id: str | None = None
    idempotency_key: str | None = None
    retry: RetryPolicy | None = None


@dataclass(frozen=True, slots=True)
class Scheduled:
    """The outcome of scheduling: the schedule, and whether it already existed (idempotent replay)."""

    schedule: Schedule
    created: bool


class SchedulingService:
    """Creates, reads and cancels schedules. Validation that needs no I/O happens before any write."""

    def __init__(
        self,
        repository: ScheduleRepository,
        clock: Clock,
        signal: WorkSignal,
        *,
        past_grace: timedelta = timedelta(minutes=5),
        default_language: str = "pt_BR",
        renderer: TemplateRenderer | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._signal = signal
        self._past_grace = past_grace
        self._default_language = default_language
        self._renderer = renderer or TemplateRenderer()
        self._new_id = new_id

    async def schedule_message(self, command: ScheduleMessageCommand) -> Scheduled:
        """Validate, render and store a one-off message; replay the stored one for a known key.

        A ``send_at`` up to ``past_grace`` in the past is accepted and sent at once; older is refused.
        """
        now = self._clock.now()
        send_at = require_aware(command.send_at, "send_at")
        if send_at < now - self._past_grace:
            raise ValidationError(
                f"send_at {command.send_at_text} is more than {int(self._past_grace.total_seconds())} s in the past",
                field="send_at",
            )
        if command.kind is MessageKind.TEMPLATE and not command.template_name:
            raise ValidationError("templateName is required when type is 'template'", field="templateName")
        rendered = self._renderer.render(command.body, command.params)
        if command.idempotency_key:
            existing = await self._repository.get_by_idempotency_key(command.idempotency_key)
            if existing is not None:
                return Scheduled(existing, created=False)
        schedule = Schedule.create(
            id=self._new_id(),
            task_type=WHATSAPP_TEMPLATE if command.kind is MessageKind.TEMPLATE else WHATSAPP_TEXT,
            payload={
                "to": command.to,
                "kind": command.kind.value,
                "body": command.body,
                "rendered_body": rendered,
                "params": list(command.params),
                "template_name": command.template_name,
                "language": command.language or self._default_language,
            },
            trigger=OnceTrigger(send_at),
            timezone=command.timezone,
            first_run_at=send_at,
            now=now,
            user_id=command.user_id,
            idempotency_key=command.idempotency_key,
            retry=command.retry,
            metadata={"send_at": command.send_at_text},
        )
        try:
            await self._repository.add(schedule)
        except DuplicateSchedule as exc:
            # Two requests with one key raced: both answer with the schedule that won.
            existing = await self._repository.get(exc.existing_id)
            if existing is None:
                raise
            return Scheduled(existing, created=False)
        self._signal.notify(send_at)
        return Scheduled(schedule, created=True)

    async def get(self, schedule_id: str) -> Schedule:
        """The schedule with this id; :class:`ScheduleNotFound` otherwise."""
        schedule = await self._repository.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFound(schedule_id)
        return schedule

    async def list(
        self, *, status: ScheduleStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[Schedule]:
        """A page of schedules, newest first."""
        return await self._repository.list(status=status, limit=limit, offset=offset)

    async def cancel(self, schedule_id: str) -> Schedule:
        """Cancel a schedule that has not started; :class:`ScheduleConflict` if it has."""
        schedule = await self.get(schedule_id)
        if schedule.status is ScheduleStatus.CANCELLED:
            return schedule
        if schedule.status is not ScheduleStatus.SCHEDULED:
            raise ScheduleConflict(f"schedule {schedule_id} is {schedule.status.value} and can no longer be cancelled")
        schedule.cancel(now=self._clock.now())
        if not await self._repository.save(schedule, expected_status=ScheduleStatus.SCHEDULED):
            current = await self.get(schedule_id)
            raise ScheduleConflict(f"schedule {schedule_id} is {current.status.value} and can no longer be cancelled")
        return schedule
