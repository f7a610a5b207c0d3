"""Retry every dead letter at once (a redrive): once a provider's outage is over or a token is
renewed, the schedules it left ``dead`` (or ``unknown``, or ``missed``) run again, each as
:meth:`SchedulingService.retry` re-runs one."""

from __future__ import annotations

from dataclasses import dataclass, field

from cronjob.domain.actor import Actor
from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import ListCursor
from cronjob.services.bulk import Selection, change_matching
from cronjob.services.scheduling import SchedulingService

#: The statuses an operator may retry from.
RETRYABLE_STATUSES = (ScheduleStatus.DEAD, ScheduleStatus.UNKNOWN, ScheduleStatus.MISSED)


@dataclass(slots=True)
class BulkRetry:
    """What :func:`retry_schedules` did: the ids it retried, those it could not retry with why
    (one that left the status meanwhile, one that kept changing), whether more may match (it
    stopped at its limit) and where it stopped (``next``, with ``more``)."""

    retried: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    more: bool = False
    next: ListCursor | None = None


async def retry_schedules(scheduling: SchedulingService, *, status: ScheduleStatus,
                          selection: Selection = Selection(), limit: int | None = None,
                          after: ListCursor | None = None, actor: Actor | None = None) -> BulkRetry:
    """Retry every schedule in ``status`` (``dead``, ``unknown`` or ``missed``: another one is a
    :class:`ValidationError`) that ``selection`` matches (see :class:`Selection`; by default
    every type the service schedules, so its own jobs only when named; its last-change window
    picks those that died during an outage: an ended schedule last changed when it ended, or got
    a delivery status; ended ones have no due time, so none is in a due-time window): each now,
    with a fresh attempt count and its ``scheduled`` event (``retried_from``; naming ``actor``, who
    asked) and webhooks. An
    empty selection is every such schedule: the redrive of the dead letters.

    ``unknown`` ones may have reached their recipient (the send got no answer): retrying them
    may send them twice, which is why ``status`` is never implied. A schedule is retried at most
    once per call, even if it fails again meanwhile; repeating the call retries what is in
    ``status`` then, those that failed again included. With ``limit`` (1 to 10,000), at most
    that many are retried, and ``more`` says whether more may match: a repeat goes on with the
    rest (see :func:`change_matching`). Those are listed newest first, as this call listed them,
    so what it retried and failed again meanwhile (the failure not fixed) comes first again: a
    repeat given ``after`` = this call's ``next`` goes on after the last one it listed instead.
    """
    if status not in RETRYABLE_STATUSES:
        raise ValidationError(f"only {', '.join(s.value for s in RETRYABLE_STATUSES)} schedules can be retried, "
                              f"not {status.value}", field="status")
    done = await change_matching(scheduling, scheduling.retrying(actor), statuses=(status,), selection=selection,
                                 limit=limit, after=after)
    return BulkRetry(retried=done.changed, refused=done.refused, more=done.more, next=done.next)
