"""Use case: record what the messaging provider reports about sent messages (WhatsApp's status
webhooks), on the schedule whose latest send returned that message id.

A status can arrive before its message is recorded: Meta may report ``sent`` while the run that
sent it is still writing its outcome (or retrying that write through a store outage). Such a
status is *parked*: stored as a one-off job of the internal task type ``whatsapp.status``, which
applies it once the message is recorded (see :mod:`cronjob.services.status_recheck`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from cronjob.domain.instants import instant_text
from cronjob.domain.message import ErrorInfo
from cronjob.domain.schedule import DELIVERY_RANK, MisfirePolicy, Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.clock import Clock
from cronjob.ports.events import EventPublisher, NoPublisher
from cronjob.ports.metrics import Metrics, NullMetrics
from cronjob.ports.repository import DuplicateSchedule, ScheduleRepository
from cronjob.ports.signal import WorkSignal
from cronjob.services.few_at_a_time import few_at_a_time
from cronjob.services.schedule_ids import new_schedule_id
from cronjob.services.write_ahead import publish_then_write

log = logging.getLogger(__name__)

#: The internal task type of a parked status (never created through the API).
STATUS_RECHECK = "whatsapp.status"
#: How long after it is parked a status is first looked at again.
FIRST_RECHECK = timedelta(seconds=1)
#: How many messages' status updates of one notification are applied at once.
MESSAGES_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One status the provider reported: message ``message_id`` (a ``wamid``) reached ``status``
    (sent, delivered, read, failed) at ``at``; a failure carries the provider's error."""

    message_id: str
    status: str
    at: datetime
    error_code: str | None = None
    error_message: str | None = None

    def to_payload(self, received_at: datetime, schedule_id: str | None = None) -> dict[str, Any]:
        """The payload of the job that parks this update, received at ``received_at`` (and
        ``schedule_id``, the schedule that was running with this message as its latest send)."""
        return {"message_id": self.message_id, "status": self.status, "at": instant_text(self.at),
                "error_code": self.error_code, "error_message": self.error_message,
                "received_at": instant_text(received_at), "schedule_id": schedule_id}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> tuple[StatusUpdate, datetime]:
        """The update a parking job holds, and when it was received (see :meth:`to_payload`; the
        ``+00:00`` text of jobs parked by earlier versions reads too)."""
        update = cls(str(payload["message_id"]), str(payload["status"]), datetime.fromisoformat(payload["at"]),
                     payload.get("error_code"), payload.get("error_message"))
        return update, datetime.fromisoformat(payload["received_at"])


class Applied(enum.Enum):
    """What became of one status update."""

    RECORDED = "recorded"
    #: Not needed or not possible: a duplicate, not a known status, or it lost every race.
    IGNORED = "ignored"
    #: No schedule has this message id (yet), or the schedule is running: its run holds the lease.
    NOT_YET = "not_yet"
    #: A parked status whose schedule has recorded a later send since (a recurring schedule's
    #: next run): it is about a message the schedule no longer shows.
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What :meth:`DeliveryStatusService.apply` did: updates recorded, and parked to apply later."""

    applied: int
    parked: int = 0


class DeliveryStatusService:
    """Applies status updates to schedules, each through a conditional write.

    A write that loses a race (the schedule changed between the read and the write) is re-read
    and re-applied, up to ``attempts`` times. Statuses other than the four known ones are
    ignored. A schedule that is ``running`` is not written: the run in progress holds its lease
    (and will replace its result); writing would race with its lease renewals. Each recorded
    status is published as a ``delivery.<status>`` event (status webhooks), before its write.

    An update for a message id no schedule has (yet), or for a schedule that is running, is
    parked for up to ``wait`` (a ``whatsapp.status`` job, one per message id and status, due
    ``FIRST_RECHECK`` later; ``signal`` wakes the engine for it); with ``wait`` zero it is
    ignored, as is one still unknown once ``wait`` has passed (sent by something else, or
    replaced by a later send; parked while its schedule ran again, it ends superseded as soon as
    that run records its send). A park the store refuses raises, so the provider sends it again.
    """

    def __init__(self, repository: ScheduleRepository, clock: Clock, *, attempts: int = 3,
                 publisher: EventPublisher | None = None, wait: timedelta = timedelta(0),
                 signal: WorkSignal | None = None, new_id: Callable[[], str] = new_schedule_id,
                 metrics: Metrics | None = None) -> None:
        self._repository = repository
        self._clock = clock
        self._attempts = max(1, attempts)
        self._publisher = publisher or NoPublisher()
        self._wait = wait
        self._signal = signal
        self._new_id = new_id
        self._metrics = metrics or NullMetrics()

    @property
    def metrics(self) -> Metrics:
        """Where what becomes of each status is counted (also by the job that applies a parked one)."""
        return self._metrics

    @property
    def wait(self) -> timedelta:
        """How long a status whose message is not recorded yet is kept to be applied later."""
        return self._wait

    async def apply(self, updates: Iterable[StatusUpdate]) -> StatusReport:
        """Apply ``updates`` (oldest first, whatever order they came in); park those that cannot be yet.

        Each message's updates one after the other, in that order; those of different messages
        :data:`MESSAGES_AT_ONCE` messages at a time (a notification of a campaign's statuses
        holds many, and its sender waits for the answer)."""
        ordered = sorted(updates, key=lambda u: (u.at, DELIVERY_RANK.get(u.status, len(DELIVERY_RANK))))
        by_message: dict[str, list[StatusUpdate]] = {}
        for update in ordered:
            by_message.setdefault(update.message_id, []).append(update)
        counts = await few_at_a_time([partial(self._apply_in_order, each) for each in by_message.values()],
                                     MESSAGES_AT_ONCE)
        applied, parked, unknown = (sum(count[i] for count in counts) for i in range(3))
        if unknown:
            log.info("%d status update(s) for unknown or running messages ignored", unknown)
        return StatusReport(applied, parked)

    async def _apply_in_order(self, updates: list[StatusUpdate]) -> tuple[int, int, int]:
        """:meth:`apply` for one message's updates: how many were applied, parked and dropped."""
        applied = parked = unknown = 0
        for update in updates:
            outcome, running = await self._apply(update)
            applied += outcome is Applied.RECORDED
            if outcome is not Applied.NOT_YET:
                self._metrics.provider_status(outcome.value)
            elif self._wait > timedelta(0):
                added = await self._park(update, running)
                parked += added
                self._metrics.provider_status("parked" if added else "ignored")  # parked before: a repeat
            else:
                unknown += 1
                self._metrics.provider_status("dropped")
        return applied, parked, unknown

    async def _park(self, update: StatusUpdate, running: str | None) -> int:
        """Store ``update`` as a job that applies it later (``running``: the schedule that was
        running with its message as the latest send); 1 when stored, 0 when parked before."""
        now = self._clock.now()
        due = now + FIRST_RECHECK
        job = Schedule.create(
            id=self._new_id(), task_type=STATUS_RECHECK, payload=update.to_payload(now, running),
            trigger=OnceTrigger(due), timezone="UTC", first_run_at=due, now=now,
            # Meta sends a notification again until it is acknowledged: one job per status.
            idempotency_key=f"{STATUS_RECHECK}:{update.message_id}:{update.status}",
            misfire=MisfirePolicy(grace=None),  # late is fine: it gives up by its own clock
            metadata={"message_id": update.message_id})
        try:
            await self._repository.add(job)
        except DuplicateSchedule:
            return 0
        if self._signal is not None:
            self._signal.notify(due)
        log.info("status %s of message %s parked: its message is not recorded yet, or its schedule is running",
                 update.status, update.message_id)
        return 1

    async def apply_one(self, update: StatusUpdate, *, running: str | None = None) -> Applied:
        """Record one update on the schedule whose latest send returned its message id (see the
        class). ``running``: a parked update's schedule that was running when it came; when that
        schedule has recorded another send since, the update is :attr:`Applied.SUPERSEDED`."""
        outcome, _ = await self._apply(update)
        if outcome is Applied.NOT_YET and running is not None:
            schedule = await self._repository.get(running)
            ran = schedule is not None and schedule.status is not ScheduleStatus.RUNNING
            latest = schedule.result.get("provider_message_id") if ran and schedule is not None else None
            if latest and latest != update.message_id:
                return Applied.SUPERSEDED
        return outcome

    async def _apply(self, update: StatusUpdate) -> tuple[Applied, str | None]:
        """:meth:`apply_one`'s work, and the id of the schedule when it waits because it is running."""
        if update.status not in DELIVERY_RANK:
            log.info("status %r of a message ignored (not one of %s)", update.status, ", ".join(DELIVERY_RANK))
            return Applied.IGNORED, None
        error = None
        if update.error_code is not None or update.error_message is not None:
            error = ErrorInfo(update.error_code or "unknown", update.error_message or "")
        for _ in range(self._attempts):
            schedule = await self._repository.get_by_provider_message_id(update.message_id)
            if schedule is None or schedule.result.get("provider_message_id") != update.message_id:
                return Applied.NOT_YET, None
            loaded, version = schedule.status, schedule.updated_at
            if loaded is ScheduleStatus.RUNNING:
                log.info("schedule %s is running; its %s status update waits", schedule.id, update.status)
                return Applied.NOT_YET, schedule.id
            if not schedule.record_delivery_status(status=update.status, at=update.at,
                                                   now=self._clock.now(), error=error):
                return Applied.IGNORED, None  # a duplicate
            if await publish_then_write(self._publisher, schedule, schedule.events[-1:], lambda: self._repository.save(
                    schedule, expected_status=loaded, expected_updated_at=version)):
                return Applied.RECORDED, None
        log.warning("status update %s of schedule %s not recorded: it kept changing",
                    update.status, schedule.id)
        return Applied.IGNORED, None
