"""Hold every schedule of one user, or of some labels, and let them run again, optionally only
those of some task types, due in a window or last changed in one: a campaign put on hold while
its content is fixed, a customer's reminders held while their account is reviewed, one user's
WhatsApp templates but not their e-mails."""

from __future__ import annotations

from cronjob.domain.actor import Actor
from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.bulk import BulkOutcome, Selection, change_matching
from cronjob.services.scheduling import SchedulingService


async def pause_schedules(scheduling: SchedulingService, selection: Selection,
                          limit: int | None = None, actor: Actor | None = None) -> BulkOutcome:
    """Pause every schedule ``selection`` matches (see :class:`Selection`) that waits, as
    :meth:`SchedulingService.pause` pauses one (each with its ``paused`` event, naming ``actor``, and webhooks).
    One that runs is not stopped: it is reported in ``refused``, with why (pause a recurring
    one again once its run ended), so nothing matching is left running unsaid. The service's
    own jobs are left alone (named among the task types, each is refused). A selection without
    a ``user_id`` nor a label is a :class:`ValidationError` (never everyone's). Schedules made
    meanwhile may be missed: repeating the call pauses them (and changes none twice). With
    ``limit`` (1 to 10,000), at most that many are paused, and the outcome's ``more`` says
    whether more may match: a repeat goes on with the rest (see :func:`change_matching`)."""
    return await change_matching(scheduling, scheduling.pausing(actor),
                                 statuses=(ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING),
                                 selection=selection.whose("pause"), limit=limit)


async def resume_schedules(scheduling: SchedulingService, selection: Selection,
                           limit: int | None = None, actor: Actor | None = None) -> BulkOutcome:
    """Resume every paused schedule ``selection`` matches, as :meth:`SchedulingService.resume`
    resumes one: a one-off keeps its time (one that fell due while paused runs at once, or ends
    ``missed`` beyond its grace), a recurring one skips what fell due meanwhile; its events name
    ``actor``. The same selection rule, and ``limit``, as :func:`pause_schedules`."""
    return await change_matching(scheduling, scheduling.resuming(actor), statuses=(ScheduleStatus.PAUSED,),
                                 selection=selection.whose("resume"), limit=limit)
