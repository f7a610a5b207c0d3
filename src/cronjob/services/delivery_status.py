"""Use case: record what the messaging provider reports about sent messages (WhatsApp's status
webhooks), on the schedule whose latest send returned that message id."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cronjob.domain.message import ErrorInfo
from cronjob.domain.schedule import DELIVERY_RANK, ScheduleStatus
from cronjob.ports.clock import Clock
from cronjob.ports.events import EventPublisher, NoPublisher
from cronjob.ports.repository import ScheduleRepository
from cronjob.services.write_ahead import publish_then_write

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One status the provider reported: message ``message_id`` (a ``wamid``) reached ``status``
    (sent, delivered, read, failed) at ``at``; a failure carries the provider's error."""

    message_id: str
    status: str
    at: datetime
    error_code: str | None = None
    error_message: str | None = None


class DeliveryStatusService:
    """Applies status updates to schedules, each through a conditional write.

    A write that loses a race (the schedule changed between the read and the write) is re-read
    and re-applied, up to ``attempts`` times. Updates for message ids no schedule knows (sent by
    something else, or replaced by a later send), and statuses other than the four known ones, are
    ignored. A schedule that is ``running`` is not written: the run in progress holds its lease
    (and will replace its result); writing would race with its lease renewals. Each recorded
    status is published as a ``delivery.<status>`` event (status webhooks), before its write.
    """

    def __init__(self, repository: ScheduleRepository, clock: Clock, *, attempts: int = 3,
                 publisher: EventPublisher | None = None) -> None:
        self._repository = repository
        self._clock = clock
        self._attempts = max(1, attempts)
        self._publisher = publisher or NoPublisher()

    async def apply(self, updates: Iterable[StatusUpdate]) -> int:
        """Apply ``updates`` (oldest first, whatever order they came in); how many changed a schedule."""
        ordered = sorted(updates, key=lambda u: (u.at, DELIVERY_RANK.get(u.status, len(DELIVERY_RANK))))
        applied = unknown = 0
        for update in ordered:
            outcome = await self._apply(update)
            applied += outcome is True
            unknown += outcome is None
        if unknown:
            log.info("%d status update(s) for unknown message ids ignored", unknown)
        return applied

    async def _apply(self, update: StatusUpdate) -> bool | None:
        """True: recorded; False: not needed or not possible (stale, duplicate, running, lost
        every race); None: no schedule has this message id."""
        if update.status not in DELIVERY_RANK:
            log.info("status %r of a message ignored (not one of %s)", update.status, ", ".join(DELIVERY_RANK))
            return False
        error = None
        if update.error_code is not None or update.error_message is not None:
            error = ErrorInfo(update.error_code or "unknown", update.error_message or "")
        for _ in range(self._attempts):
            schedule = await self._repository.get_by_provider_message_id(update.message_id)
            if schedule is None or schedule.result.get("provider_message_id") != update.message_id:
                return None
            loaded, version = schedule.status, schedule.updated_at
            if loaded is ScheduleStatus.RUNNING:
                log.info("schedule %s is running; its %s status update is not recorded",
                         schedule.id, update.status)
                return False
            if not schedule.record_delivery_status(status=update.status, at=update.at,
                                                   now=self._clock.now(), error=error):
                return False  # a duplicate, or older than what is recorded
            if await publish_then_write(self._publisher, schedule, schedule.events[-1:], lambda: self._repository.save(
                    schedule, expected_status=loaded, expected_updated_at=version)):
                return True
        log.warning("status update %s of schedule %s not recorded: it kept changing",
                    update.status, schedule.id)
        return False
