"""One change to every schedule a selector matches: the listing and the concurrent changes that
bulk cancel and bulk retry share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import check_labels
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import ListCursor
from cronjob.services.few_at_a_time import few_at_a_time
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound, SchedulingService

#: Schedules read per page while listing the matches (each page after a cursor: see
#: :meth:`SchedulingService.page`).
_PAGE = 1000
#: Changes in progress at once.
_AT_ONCE = 16
#: Passes over the matching schedules: one listed in a status can have moved to another of the
#: statuses asked for once that one was listed (a run started or ended) and be passed over once.
_PASSES = 3


@dataclass(slots=True)
class BulkOutcome:
    """What :func:`change_matching` did: the ids it changed, and those it could not change with
    why (from the :class:`ScheduleConflict` the change raised)."""

    changed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def require_selector(user_id: str | None, labels: Mapping[str, str] | None, verb: str) -> Mapping[str, str]:
    """The checked ``labels`` of a selector that must name whose schedules to ``verb``: a
    ``user_id``, labels or both; neither is a :class:`ValidationError` (never everyone's)."""
    selector = check_labels(labels or {})
    if user_id is None and not selector:
        raise ValidationError(f"give userId, labels or both: whose schedules to {verb} (never everyone's)",
                              field="userId")
    return selector


async def change_matching(
    scheduling: SchedulingService,
    change: Callable[[str], Awaitable[Schedule]],
    *,
    statuses: Collection[ScheduleStatus],
    task_types: Collection[str],
    user_id: str | None,
    labels: Mapping[str, str],
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
) -> BulkOutcome:
    """Apply ``change`` (one of the service's own, e.g. ``scheduling.cancel``) to each schedule
    in one of ``statuses``, of one of ``task_types``, made with ``user_id`` (when given),
    carrying every one of ``labels`` and last changed in the window ``updated_after <=
    updated_at < updated_before`` (None: open on that side; checked by
    :meth:`SchedulingService.list` before anything changes), a few at a time. Each pass lists
    every match first, then changes them; a schedule is changed at most once per call, however
    its status moves meanwhile. A change refused (:class:`ScheduleConflict`) is reported in
    ``refused``; one whose schedule was purged meanwhile is left out; any other error ends the
    call with that error (an unreachable store).
    """
    result = BulkOutcome()
    seen: set[str] = set()
    for _ in range(_PASSES):
        matching = await _matching_ids(scheduling, statuses, task_types, user_id, labels,
                                       updated_after, updated_before)
        found = [i for i in matching if i not in seen]
        if not found:
            break
        seen.update(found)
        # Each is a read, a conditional write and its webhooks.
        outcomes = await few_at_a_time([partial(_change_one, change, schedule_id) for schedule_id in found],
                                       _AT_ONCE)
        for schedule_id, refused in zip(found, outcomes, strict=True):
            if refused is None:
                result.changed.append(schedule_id)
            elif refused:
                result.refused[schedule_id] = refused
    return result


async def _change_one(change: Callable[[str], Awaitable[Schedule]], schedule_id: str) -> str | None:
    """Change one: None once changed, why when refused, "" when it was purged meanwhile."""
    try:
        await change(schedule_id)
    except ScheduleConflict as refused:
        return str(refused)
    except ScheduleNotFound:
        return ""
    return None


async def _matching_ids(scheduling: SchedulingService, statuses: Collection[ScheduleStatus],
                        task_types: Collection[str], user_id: str | None, labels: Mapping[str, str],
                        updated_after: datetime | None, updated_before: datetime | None) -> list[str]:
    ids: list[str] = []
    for status in statuses:
        after: ListCursor | None = None
        while True:
            page = await scheduling.page(status=status, task_types=task_types, user_id=user_id,
                                         labels=labels, limit=_PAGE, after=after,
                                         updated_after=updated_after, updated_before=updated_before)
            ids.extend(s.id for s in page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
    return ids
