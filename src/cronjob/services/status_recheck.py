"""The internal ``whatsapp.status`` task: a provider status that arrived before its message was
recorded, applied once it is (parked by :class:`~cronjob.services.delivery_status.DeliveryStatusService`)."""

from __future__ import annotations

from datetime import timedelta

from cronjob.domain.message import DeliveryDeferred
from cronjob.domain.schedule import Schedule
from cronjob.ports.clock import Clock
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.delivery_status import STATUS_RECHECK, Applied, DeliveryStatusService, StatusUpdate

#: The longest wait between two looks at a parked status.
MAX_RECHECK_SECONDS = 30.0


class StatusRecheckHandler(TaskHandler):
    """Applies a parked status update.

    Each run looks the message up again (:meth:`DeliveryStatusService.apply_one`): recorded,
    ignored (a duplicate) or superseded (parked while its schedule ran again, which has recorded
    a later send since), the job succeeds with ``result.outcome`` saying which. Still unknown, or its schedule running, it waits without spending an attempt
    (:class:`DeliveryDeferred`), a little longer each time (as long as it has waited so far, from
    1 s up to ``MAX_RECHECK_SECONDS``), until the service's ``wait`` has passed since the status
    was received; then it succeeds with ``outcome`` ``unmatched`` (a message sent by something
    else, or replaced by a later send).
    """

    task_type = STATUS_RECHECK

    def __init__(self, service: DeliveryStatusService, clock: Clock) -> None:
        self._service = service
        self._clock = clock

    async def run(self, schedule: Schedule) -> TaskOutcome:
        update, received_at = StatusUpdate.from_payload(schedule.payload)
        outcome = await self._service.apply_one(update, running=schedule.payload.get("schedule_id"))
        if outcome is not Applied.NOT_YET:
            self._service.metrics.provider_status(outcome.value)
            return TaskOutcome(result={"outcome": outcome.value, "message_id": update.message_id})
        waited = self._clock.now() - received_at
        if waited < self._service.wait:
            seconds = min(max(waited.total_seconds(), 1.0), MAX_RECHECK_SECONDS,
                          (self._service.wait - waited).total_seconds())
            raise DeliveryDeferred(max(seconds, 0.001), f"message {update.message_id} is not recorded yet")
        self._service.metrics.provider_status("unmatched")
        return TaskOutcome(result={"outcome": "unmatched", "message_id": update.message_id,
                                   "waited_seconds": f"{waited / timedelta(seconds=1):.0f}"})
