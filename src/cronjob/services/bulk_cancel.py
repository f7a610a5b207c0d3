"""Cancel every live schedule of one user at once: an opt-out ("stop sending me messages"), an
account closed, an order whose reminders no longer apply when the client keys them by user."""

from __future__ import annotations

from dataclasses import dataclass, field

from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound, SchedulingService

#: The statuses a cancel may apply to: waiting, held, and running (a recurring schedule's run).
_LIVE = (ScheduleStatus.SCHEDULED, ScheduleStatus.PAUSED, ScheduleStatus.RUNNING)
_PAGE = 100
#: Passes over the user's live schedules: a schedule that changed status while the pass paged
#: through them (a run started, a retry fell due) can shift a page and be passed over once.
_PASSES = 3


@dataclass(slots=True)
class BulkCancellation:
    """What :func:`cancel_user_schedules` did: the ids it cancelled, and those it could not
    cancel with why (a one-off being sent, one that kept changing)."""

    cancelled: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


async def cancel_user_schedules(scheduling: SchedulingService, user_id: str) -> BulkCancellation:
    """Cancel every schedule made with ``user_id`` (exactly) that waits, is paused, or is a
    recurring one that runs, as :meth:`SchedulingService.cancel` cancels one: each with its
    ``cancelled`` event and webhooks. The service's own jobs are left alone. A one-off already
    being sent cannot be stopped: it is reported in ``refused``, with the reason.

    Schedules the user makes while this runs may be missed; repeating the call cancels them
    (and cancels nothing twice).
    """
    result = BulkCancellation()
    seen: set[str] = set()
    for _ in range(_PASSES):
        found = [i for i in await _live_ids(scheduling, user_id) if i not in seen]
        if not found:
            break
        for schedule_id in found:
            seen.add(schedule_id)
            try:
                await scheduling.cancel(schedule_id)
            except ScheduleConflict as refused:
                result.refused[schedule_id] = str(refused)
            except ScheduleNotFound:
                continue  # purged meanwhile: nothing left to cancel
            else:
                result.cancelled.append(schedule_id)
    return result


async def _live_ids(scheduling: SchedulingService, user_id: str) -> list[str]:
    """The ids of the user's live schedules of the task types the service schedules."""
    ids: list[str] = []
    for status in _LIVE:
        offset = 0
        while True:
            page = await scheduling.list(status=status, task_types=scheduling.task_types, user_id=user_id,
                                         limit=_PAGE, offset=offset)
            ids.extend(s.id for s in page)
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return ids
