"""What the scheduling use cases are asked to do: schedule a WhatsApp message, create a schedule of
any task type, change one (move it, give it another task, labels or run time limit), and a change
that many schedules can be given at once (see :class:`~cronjob.services.scheduling.SchedulingService`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronjob.domain.actor import Actor
from cronjob.domain.message import MessageKind
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import RunTimeoutChange, Schedule

WHATSAPP_TEMPLATE = "whatsapp.template"
WHATSAPP_TEXT = "whatsapp.text"


def message_task_type(kind: MessageKind) -> str:
    """The task type of a WhatsApp message of ``kind``."""
    return WHATSAPP_TEMPLATE if kind is MessageKind.TEMPLATE else WHATSAPP_TEXT


@dataclass(frozen=True, slots=True)
class Change:
    """A change of one schedule by a user (no lease held) that many schedules can be given at
    once: what it is called in a refusal (``verb``: "cancelled"), whether a schedule has it
    already (``done``: it is left as it is) and the change itself (``apply``, at an instant),
    which raises :class:`ScheduleConflict`, or the domain's ``InvalidTransition``, for a
    schedule it does not fit. :meth:`~cronjob.services.scheduling.SchedulingService.change`
    makes it to one schedule, :meth:`~cronjob.services.scheduling.SchedulingService.change_listed`
    to many."""

    verb: str
    done: Callable[[Schedule], bool]
    apply: Callable[[Schedule, datetime], None]


@dataclass(frozen=True, slots=True)
class ScheduleMessageCommand:
    """A request to send one WhatsApp message at ``send_at``.

    ``send_at`` is aware; ``send_at_text`` is the client's own text of it (kept to show the
    original offset). ``body`` holds ``{{1}}``-style placeholders filled from ``params`` (texts,
    or a template's currency and date_time objects as a payload stores them, see
    :mod:`cronjob.domain.template_params`);
    ``header`` and ``buttons`` are a template's other values (as a payload stores them, see
    :mod:`cronjob.domain.template_parts`).
    ``misfire_grace``: how late it may still be sent (None: the service's default; zero: always).
    ``request_digest`` identifies the request that carried ``idempotency_key`` (see
    :meth:`~cronjob.services.scheduling.SchedulingService.schedule_message`); ``earlier_key`` is
    the form in which earlier versions stored that key, when it differs (see
    :attr:`CreateScheduleCommand.earlier_key`). ``actor``: who asks (its ``scheduled`` event
    names it; None: no one named).
    """

    to: str
    body: str
    kind: MessageKind
    send_at: datetime
    send_at_text: str
    timezone: str
    params: tuple[str | Mapping[str, Any], ...] = ()
    template_name: str | None = None
    language: str | None = None
    user_id: str | None = None
    idempotency_key: str | None = None
    request_digest: str | None = None
    earlier_key: str | None = None
    retry: RetryPolicy | None = None
    misfire_grace: timedelta | None = None
    send_by: datetime | None = None
    callback_url: str | None = None
    header: Mapping[str, Any] | None = None
    buttons: tuple[Mapping[str, Any], ...] = ()
    actor: Actor | None = None


@dataclass(frozen=True, slots=True)
class CreateScheduleCommand:
    """A request to run a task of ``task_type`` on the rule ``schedule`` (see the trigger grammar).

    ``payload`` has been checked for shape by the caller; the service checks what needs the domain
    (templates against params) and stores the prepared payload. ``misfire_grace``: how late an
    occurrence may still run (None: the service's default for a one-off, no limit for a recurring
    schedule; zero: always); ``coalesce``: see :class:`MisfirePolicy` (recurring only).
    ``request_digest``: as for :class:`ScheduleMessageCommand`. ``earlier_key``: the form in
    which earlier versions stored ``idempotency_key``, when it differs (an ``Idempotency-Key``
    header's UTF-8 bytes, then kept as read, byte by byte): a schedule stored under it is a
    replay too, so that a request retried across the upgrade is not created twice. ``pause_after_failures``
    (recurring only): pause it once that many occurrences in a row ended dead. ``labels``: the
    client's own ``key: value`` pairs (see :mod:`cronjob.domain.labels`). ``run_timeout``: how
    long one run may take (None: its routine's limit, else the dispatcher's). ``actor``: who
    asks (its ``scheduled`` event names it; None: no one named; not part of what makes a
    request with the same idempotency key a replay).
    """

    task_type: str
    payload: dict[str, Any]
    schedule: str
    timezone: str
    user_id: str | None = None
    idempotency_key: str | None = None
    request_digest: str | None = None
    earlier_key: str | None = None
    retry: RetryPolicy | None = None
    misfire_grace: timedelta | None = None
    coalesce: bool = True
    send_by: datetime | None = None
    callback_url: str | None = None
    pause_after_failures: int | None = None
    labels: Mapping[str, str] | None = None
    run_timeout: timedelta | None = None
    actor: Actor | None = None


@dataclass(frozen=True, slots=True)
class RescheduleCommand:
    """Change a waiting schedule ``schedule_id``: move it to another time (a one-off to
    ``send_at``, of which ``send_at_text`` is the client's text; naive: a wall time in
    ``timezone``, else in the schedule's own zone; or any schedule to the rule ``schedule``, in
    ``timezone``, else its own zone), give it another task (``task_type``, which must be its
    own, and ``payload``), give it other ``labels`` (the whole map: ``{}`` clears them) or
    another ``run_timeout`` (:data:`~cronjob.domain.schedule.NO_OWN_LIMIT`: none of its own, so
    that its task handler's or the dispatcher's applies), or any of them at once. At most one of
    ``send_at`` and ``schedule``. ``actor``: who asks (its ``scheduled`` event names it)."""

    schedule_id: str
    send_at: datetime | None = None
    send_at_text: str | None = None
    schedule: str | None = None
    timezone: str | None = None
    task_type: str | None = None
    payload: dict[str, Any] | None = None
    labels: Mapping[str, str] | None = None
    run_timeout: RunTimeoutChange = None
    actor: Actor | None = None
