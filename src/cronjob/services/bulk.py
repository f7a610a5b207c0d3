"""One change to every schedule a selection matches: the selection that bulk cancel, pause,
resume and retry share, the listing and the concurrent changes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import check_labels
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import ListCursor
from cronjob.services.few_at_a_time import few_at_a_time
from cronjob.services.commands import Change
from cronjob.services.listing import SchedulePage, due_window, updated_window
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound, SchedulingService

#: Schedules read per page while listing the matches (each page after a cursor: see
#: :meth:`SchedulingService.page`), and changed together.
_PAGE = 1000
#: Changes of one schedule alone in progress at once.
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
    """What :func:`change_matching` did: the ids it changed, those it could not change with why
    (from the :class:`ScheduleConflict` the change raised), and whether more may match (``more``:
    it stopped at its limit with some left) and, for a change in one status, from where (``next``:
    the position in the list of that status after the last schedule listed)."""

    changed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    more: bool = False
    next: ListCursor | None = None


#: The most a bulk change may be limited to (and the limit's least, 1).
MAX_LIMIT = 10_000


def check_limit(limit: int | None) -> None:
    """:class:`ValidationError` naming ``limit`` for a limit outside 1..:data:`MAX_LIMIT` (None: no limit)."""
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1 to {MAX_LIMIT:,}, or left out to change every match, not {limit}",
                              field="limit")


async def change_matching(
    scheduling: SchedulingService,
    change: Change,
    *,
    statuses: Sequence[ScheduleStatus],
    selection: Selection,
    limit: int | None = None,
    after: ListCursor | None = None,
) -> BulkOutcome:
    """Make ``change`` (one of the service's own, e.g. ``scheduling.cancelling(actor)``) to each
    schedule in one of ``statuses`` that ``selection`` matches (checked first, see
    :meth:`Selection.checked`, as ``limit`` is, :func:`check_limit`: a :class:`ValidationError`
    changes nothing), a page at a time: each page as listed, in one conditional write
    (:meth:`SchedulingService.change_listed`), and those it could not change so one at a time
    (read again: changed meanwhile, or not fitting the change), a few at a time. A schedule is
    changed at most once per call, however its status moves meanwhile. A change refused
    (:class:`ScheduleConflict`) is reported in ``refused``; one whose schedule was purged
    meanwhile is left out; any other error ends the call with that error (an unreachable store).

    With ``limit``, at most that many are changed (those refused do not count): the outcome
    says ``more`` when it stopped there with more that may match. Those changed match no
    more, so a repeat of the call goes on with the rest. A change that can make a schedule
    match again (a retry that fails again at once) is listed newest first again by a repeat:
    for one status, the outcome's ``next`` is where the call stopped, and a repeat given it as
    ``after`` lists only what comes after it (the list's order is by creation, which never
    changes). ``after`` with several statuses is a :class:`ValueError` (a position in one
    status's list is none in another's).
    """
    if after is not None and len(statuses) != 1:
        raise ValueError("a bulk change goes on after a position in the list of one status only")
    selection = selection.checked()
    check_limit(limit)
    result = BulkOutcome()
    seen: set[str] = set()
    for _ in range(_PASSES):
        before = len(seen)
        for index, status in enumerate(statuses):
            position = after
            while True:
                room = _PAGE if limit is None else min(_PAGE, limit - len(result.changed))
                page = await _page(scheduling, status, selection, room, position)
                await _change_page(scheduling, change, [s for s in page.items if s.id not in seen], result)
                seen.update(s.id for s in page.items)
                if limit is not None and len(result.changed) >= limit:
                    result.more = page.has_more or await _any_matching(scheduling, statuses[index + 1:], selection)
                    result.next = page.next_cursor if len(statuses) == 1 else None
                    return result
                if page.next_cursor is None:
                    break
                position = page.next_cursor
        if len(seen) == before:
            break
    return result


async def _change_page(scheduling: SchedulingService, change: Change, listed: list[Schedule],
                       result: BulkOutcome) -> None:
    """Change ``listed`` (a page, none seen before) into ``result``: together as listed, then
    those that could not be so one at a time."""
    if not listed:
        return
    written = await scheduling.change_listed(listed, change)
    alone = [s.id for s, ok in zip(listed, written, strict=True) if not ok]
    # Each is a read, a conditional write and its webhooks.
    outcomes = await few_at_a_time([partial(_change_one, scheduling, change, i) for i in alone], _AT_ONCE)
    refused = dict(zip(alone, outcomes, strict=True))
    for schedule in listed:  # in the order listed
        why = refused.get(schedule.id)
        if why is None:
            result.changed.append(schedule.id)
        elif why:
            result.refused[schedule.id] = why


async def _change_one(scheduling: SchedulingService, change: Change, schedule_id: str) -> str | None:
    """Change one: None once changed, why when refused, "" when it was purged meanwhile."""
    try:
        await scheduling.change(schedule_id, change)
    except ScheduleConflict as refused:
        return str(refused)
    except ScheduleNotFound:
        return ""
    return None


async def _page(scheduling: SchedulingService, status: ScheduleStatus, selection: Selection, size: int,
                after: ListCursor | None) -> SchedulePage:
    """The page of up to ``size`` schedules in ``status`` that ``selection`` (checked) matches after ``after``."""
    task_types = scheduling.task_types if selection.task_types is None else selection.task_types
    return await scheduling.page(status=status, task_types=task_types, user_id=selection.user_id,
                                 labels=selection.labels, limit=size, after=after,
                                 due_after=selection.due_after, due_before=selection.due_before,
                                 updated_after=selection.updated_after, updated_before=selection.updated_before)


async def _any_matching(scheduling: SchedulingService, statuses: Sequence[ScheduleStatus],
                        selection: Selection) -> bool:
    """Whether ``selection`` (checked) matches any schedule in one of ``statuses``."""
    for status in statuses:
        if (await _page(scheduling, status, selection, 1, None)).items:
            return True
    return False
