"""Retry every dead letter at once (a redrive): once a provider's outage is over or a token is
renewed, the schedules it left ``dead`` (or ``unknown``, or ``missed``) run again, each as
:meth:`SchedulingService.retry` re-runs one."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import check_labels
from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.bulk import change_matching
from cronjob.services.scheduling import SchedulingService

#: The statuses an operator may retry from.
RETRYABLE_STATUSES = (ScheduleStatus.DEAD, ScheduleStatus.UNKNOWN, ScheduleStatus.MISSED)


@dataclass(slots=True)
class BulkRetry:
    """What :func:`retry_schedules` did: the ids it retried, and those it could not retry with
    why (one that left the status meanwhile, one that kept changing)."""

    retried: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


async def retry_schedules(scheduling: SchedulingService, *, status: ScheduleStatus,
                          task_types: Collection[str] | None = None, user_id: str | None = None,
                          labels: Mapping[str, str] | None = None, updated_after: datetime | None = None,
                          updated_before: datetime | None = None) -> BulkRetry:
    """Retry every schedule in ``status`` (``dead``, ``unknown`` or ``missed``: another one is a
    :class:`ValidationError`) of one of ``task_types`` (default: the types the service schedules,
    so its own jobs only when named), made with ``user_id`` (when given, exactly), carrying
    every one of ``labels`` and last changed in the window ``updated_after <= updated_at <
    updated_before`` (either side may be left open; an ended schedule last changed when it
    ended, or got a delivery status, so this picks those that died during an outage; an empty
    window is a :class:`ValidationError` naming ``updated_before``): each now, with a fresh
    attempt count and its ``scheduled`` event (``retried_from``) and webhooks. Without a
    selector that is every such schedule: the redrive of the dead letters.

    ``unknown`` ones may have reached their recipient (the send got no answer): retrying them
    may send them twice, which is why ``status`` is never implied. A schedule is retried at most
    once per call, even if it fails again meanwhile; repeating the call retries what is in
    ``status`` then, those that failed again included.
    """
    if status not in RETRYABLE_STATUSES:
        raise ValidationError(f"only {', '.join(s.value for s in RETRYABLE_STATUSES)} schedules can be retried, "
                              f"not {status.value}", field="status")
    if task_types is not None and not task_types:
        raise ValidationError("name at least one task type, or leave type out", field="type")
    done = await change_matching(scheduling, scheduling.retry, statuses=(status,),
                                 task_types=scheduling.task_types if task_types is None else task_types,
                                 user_id=user_id, labels=check_labels(labels or {}),
                                 updated_after=updated_after, updated_before=updated_before)
    return BulkRetry(retried=done.changed, refused=done.refused)
