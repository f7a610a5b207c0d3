"""Cancel every live schedule of one user, or of some labels, at once: an opt-out ("stop sending
me messages"), an account closed, an order whose reminders no longer apply (``order=123``), a
campaign called off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cronjob.domain.schedule import LIVE_STATUSES
from cronjob.services.bulk import change_matching, require_selector
from cronjob.services.scheduling import SchedulingService


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
    selector = require_selector(user_id, labels, "cancel")
    done = await change_matching(scheduling, scheduling.cancel, statuses=sorted(LIVE_STATUSES),
                                 task_types=scheduling.task_types, user_id=user_id, labels=selector)
    return BulkCancellation(cancelled=done.changed, refused=done.refused)
