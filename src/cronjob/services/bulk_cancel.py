"""Cancel every live schedule of one user, or of some labels, at once, optionally only those of
some task types, due in a window or last changed in one: an opt-out ("stop sending me
messages"), an account closed, an order whose reminders no longer apply (``order=123``), a
campaign called off, what a campaign made during a bad deploy."""

from __future__ import annotations

from dataclasses import dataclass, field

from cronjob.domain.actor import Actor
from cronjob.domain.schedule import LIVE_STATUSES
from cronjob.services.bulk import Selection, change_matching
from cronjob.services.scheduling import SchedulingService


@dataclass(slots=True)
class BulkCancellation:
    """What :func:`cancel_schedules` did: the ids it cancelled, those it could not cancel with
    why (a one-off being sent, one that kept changing), and whether more may match (it stopped
    at its limit)."""

    cancelled: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    more: bool = False


async def cancel_schedules(scheduling: SchedulingService, selection: Selection,
                           limit: int | None = None, actor: Actor | None = None) -> BulkCancellation:
    """Cancel every schedule ``selection`` matches (see :class:`Selection`: a user, labels, and
    optionally task types, a due-time window and a last-change window) that waits, is paused,
    or is a recurring one that runs, as :meth:`SchedulingService.cancel` cancels one: each with
    its ``cancelled`` event (naming ``actor``, who asked) and webhooks. The service's own jobs are left alone unless named
    among the task types. A one-off already being sent cannot be stopped: it is reported in
    ``refused``, with the reason. A selection without a ``user_id`` nor a label is a
    :class:`ValidationError` (this never cancels everyone's), as is one that is not one
    (:meth:`Selection.checked`).

    Schedules made while this runs may be missed; repeating the call cancels them (and cancels
    nothing twice). With ``limit`` (1 to 10,000), at most that many are cancelled, and ``more``
    says whether more may match: a repeat goes on with the rest (see :func:`change_matching`).
    """
    done = await change_matching(scheduling, scheduling.cancelling(actor), statuses=sorted(LIVE_STATUSES),
                                 selection=selection.whose("cancel"), limit=limit)
    return BulkCancellation(cancelled=done.changed, refused=done.refused, more=done.more)
