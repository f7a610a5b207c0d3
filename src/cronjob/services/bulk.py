"""One change to every schedule a selection matches: the selection that bulk cancel, pause,
resume and retry share, the listing and the concurrent changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import check_labels
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import ListCursor
from cronjob.services.few_at_a_time import few_at_a_time
from cronjob.services.scheduling import (
    ScheduleConflict,
    ScheduleNotFound,
    SchedulingService,
    due_window,
    updated_window,
)

#: Schedules read per page while listing the matches (each page after a cursor: see
#: :meth:`SchedulingService.page`).
_PAGE = 1000
#: Changes in progress at once.
_AT_ONCE = 16
#: Passes over the matching schedules: one listed in a status can have moved to another of the
#: statuses asked for once that one was listed (a run started or ended) and be passed over once.
_PASSES = 3


@dataclass(frozen=True, slots=True)
class Selection:
    """Which schedules a bulk change is for, beside the statuses it changes: those of one of
    ``task_types`` (None: the types the service schedules, so its own jobs only when named),
    made with ``user_id`` (None: anyone's), carrying every one of ``labels`` (None or empty:
    any), due in the window ``due_after <= next_run_at < due_before`` (live schedules only) and
    last changed in the window ``updated_after <= updated_at < updated_before`` (each bound
    None: open on that side). Every filter given must match, as
    :meth:`ScheduleRepository.list` combines them."""

    task_types: Collection[str] | None = None
    user_id: str | None = None
    labels: Mapping[str, str] | None = None
    due_after: datetime | None = None
    due_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None

    def checked(self) -> Selection:
        """This selection as it acts: its labels checked, its windows' bounds in UTC and rounded
        up to the millisecond (see :func:`due_window` and :func:`updated_window`); checking it
        again changes nothing. :class:`ValidationError` naming the field for an empty list of
        task types (``type``), a bad label, a bound without an offset and an empty window."""
        if self.task_types is not None and not self.task_types:
            raise ValidationError("name at least one task type, or leave type out", field="type")
        labels = None if self.labels is None else check_labels(self.labels)
        due_after, due_before = due_window(self.due_after, self.due_before)
        updated_after, updated_before = updated_window(self.updated_after, self.updated_before)
        return replace(self, labels=labels, due_after=due_after, due_before=due_before,
                       updated_after=updated_after, updated_before=updated_before)

    def whose(self, verb: str) -> Selection:
        """:meth:`checked`, for a change that must be told whose schedules to ``verb``: a
        ``user_id``, labels or both; neither is a :class:`ValidationError` naming ``userId``
        (never everyone's, whatever else narrows it)."""
        checked = self.checked()
        if checked.user_id is None and not checked.labels:
            raise ValidationError(f"give userId, labels or both: whose schedules to {verb} (never everyone's)",
                                  field="userId")
        return checked


@dataclass(slots=True)
class BulkOutcome:
    """What :func:`change_matching` did: the ids it changed, and those it could not change with
    why (from the :class:`ScheduleConflict` the change raised)."""

    changed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


async def change_matching(
    scheduling: SchedulingService,
    change: Callable[[str], Awaitable[Schedule]],
    *,
    statuses: Collection[ScheduleStatus],
    selection: Selection,
) -> BulkOutcome:
    """Apply ``change`` (one of the service's own, e.g. ``scheduling.cancel``) to each schedule
    in one of ``statuses`` that ``selection`` matches (checked first, see
    :meth:`Selection.checked`: a :class:`ValidationError` changes nothing), a few at a time.
    Each pass lists every match first, then changes them; a schedule is changed at most once per
    call, however its status moves meanwhile. A change refused (:class:`ScheduleConflict`) is
    reported in ``refused``; one whose schedule was purged meanwhile is left out; any other
    error ends the call with that error (an unreachable store).
    """
    selection = selection.checked()
    result = BulkOutcome()
    seen: set[str] = set()
    for _ in range(_PASSES):
        matching = await _matching_ids(scheduling, statuses, selection)
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
                        selection: Selection) -> list[str]:
    """The ids of every schedule in one of ``statuses`` that ``selection`` (checked) matches."""
    task_types = scheduling.task_types if selection.task_types is None else selection.task_types
    ids: list[str] = []
    for status in statuses:
        after: ListCursor | None = None
        while True:
            page = await scheduling.page(status=status, task_types=task_types, user_id=selection.user_id,
                                         labels=selection.labels, limit=_PAGE, after=after,
                                         due_after=selection.due_after, due_before=selection.due_before,
                                         updated_after=selection.updated_after,
                                         updated_before=selection.updated_before)
            ids.extend(s.id for s in page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
    return ids
