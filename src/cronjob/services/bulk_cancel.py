"""Cancel every live schedule of one user, or of some labels, at once: an opt-out ("stop sending
me messages"), an account closed, an order whose reminders no longer apply (``order=123``), a
campaign called off."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import check_labels
from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound, SchedulingService

#: The statuses a cancel may apply to: waiting, held, and running (a recurring schedule's run).
_LIVE = (ScheduleStatus.SCHEDULED, ScheduleStatus.PAUSED, ScheduleStatus.RUNNING)
_PAGE = 100
#: Cancels in progress at once.
_AT_ONCE = 16
#: Passes over the matching live schedules: a schedule that changed status while the pass paged
#: through them (a run started, a retry fell due) can shift a page and be passed over once.
_PASSES = 3


@dataclass(slots=True)
class BulkCancellation:
    """What :func:`cancel_schedules` did: the ids it cancelled, and those it could not
    cancel with why (a one-off being sent, one that kept changing)."""

    cancelled: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


async def cancel_schedules(scheduling: SchedulingService, *, user_id: str | None = None,
                           labels: Mapping[str, str] | None = None) -> BulkCancellation:
    """Cancel every schedule made with ``user_id`` (exactly) and carrying every one of ``labels``
    (each given selector must match) that waits, is paused, or is a recurring one that runs, as
    :meth:`SchedulingService.cancel` cancels one: each with its ``cancelled`` event and webhooks.
    The service's own jobs are left alone. A one-off already being sent cannot be stopped: it is
    reported in ``refused``, with the reason. Without a ``user_id`` nor a label, nothing is
    selected: a :class:`ValidationError` (this never cancels everything).

    Schedules made while this runs may be missed; repeating the call cancels them (and cancels
    nothing twice).
    """
    selector = check_labels(labels or {})
    if user_id is None and not selector:
        raise ValidationError("give userId, labels or both: whose schedules to cancel (never everyone's)",
                              field="userId")
    result = BulkCancellation()
    seen: set[str] = set()
    for _ in range(_PASSES):
        found = [i for i in await _live_ids(scheduling, user_id, selector) if i not in seen]
        if not found:
            break
        seen.update(found)
        # A few at a time: each is a read, a conditional write and its webhooks, and a store
        # commits concurrent writes together (SQLite's group commit), so a thousand take seconds
        # less than one after the other.
        room = asyncio.Semaphore(_AT_ONCE)
        try:
            async with asyncio.TaskGroup() as group:
                outcomes = [group.create_task(_cancel(scheduling, schedule_id, room)) for schedule_id in found]
        except ExceptionGroup as failed:  # the first failure as itself: an unreachable store is a 503
            raise failed.exceptions[0] from None
        for schedule_id, outcome in zip(found, outcomes, strict=True):
            refused = outcome.result()
            if refused is None:
                result.cancelled.append(schedule_id)
            elif refused:
                result.refused[schedule_id] = refused
    return result


async def _cancel(scheduling: SchedulingService, schedule_id: str, room: asyncio.Semaphore) -> str | None:
    """Cancel one: None once cancelled, why when refused, "" when it was purged meanwhile."""
    async with room:
        try:
            await scheduling.cancel(schedule_id)
        except ScheduleConflict as refused:
            return str(refused)
        except ScheduleNotFound:
            return ""  # purged meanwhile: nothing left to cancel
        return None


async def _live_ids(scheduling: SchedulingService, user_id: str | None, labels: Mapping[str, str]) -> list[str]:
    """The ids of the matching live schedules of the task types the service schedules."""
    ids: list[str] = []
    for status in _LIVE:
        offset = 0
        while True:
            page = await scheduling.list(status=status, task_types=scheduling.task_types, user_id=user_id,
                                         labels=labels, limit=_PAGE, offset=offset)
            ids.extend(s.id for s in page)
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return ids
