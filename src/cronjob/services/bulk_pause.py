"""Hold every schedule of one user, or of some labels, and let them run again: a campaign put on
hold while its content is fixed, a customer's reminders held while their account is reviewed."""

from __future__ import annotations

from collections.abc import Mapping

from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.bulk import BulkOutcome, change_matching, require_selector
from cronjob.services.scheduling import SchedulingService


async def pause_schedules(scheduling: SchedulingService, *, user_id: str | None = None,
                          labels: Mapping[str, str] | None = None) -> BulkOutcome:
    """Pause every schedule made with ``user_id`` (exactly) and carrying every one of ``labels``
    that waits, as :meth:`SchedulingService.pause` pauses one (each with its ``paused`` event
    and webhooks). One that runs is not stopped: it is reported in ``refused``, with why (pause
    a recurring one again once its run ended), so nothing matching is left running unsaid. The
    service's own jobs are left alone. Without a ``user_id`` nor a label: a
    :class:`ValidationError` (never everyone's). Schedules made meanwhile may be missed:
    repeating the call pauses them (and changes none twice)."""
    selector = require_selector(user_id, labels, "pause")
    return await change_matching(scheduling, scheduling.pause,
                                 statuses=(ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING),
                                 task_types=scheduling.task_types, user_id=user_id, labels=selector)


async def resume_schedules(scheduling: SchedulingService, *, user_id: str | None = None,
                           labels: Mapping[str, str] | None = None) -> BulkOutcome:
    """Resume every paused schedule made with ``user_id`` and carrying every one of ``labels``,
    as :meth:`SchedulingService.resume` resumes one: a one-off keeps its time (one that fell due
    while paused runs at once, or ends ``missed`` beyond its grace), a recurring one skips what
    fell due meanwhile. The same selector rule as :func:`pause_schedules`."""
    selector = require_selector(user_id, labels, "resume")
    return await change_matching(scheduling, scheduling.resume, statuses=(ScheduleStatus.PAUSED,),
                                 task_types=scheduling.task_types, user_id=user_id, labels=selector)
