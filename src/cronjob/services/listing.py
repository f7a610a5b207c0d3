"""Listing schedules: a page and its cursor, and the due-time and last-change windows that narrow a
list, checked and rounded as the stores take them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from cronjob.domain.errors import ValidationError
from cronjob.domain.instants import instant_text
from cronjob.domain.schedule import Schedule
from cronjob.domain.trigger import fire_millisecond, require_aware, whole_millisecond
from cronjob.ports.repository import ListCursor, ListOrder, list_order

@dataclass(frozen=True, slots=True)
class SchedulePage:
    """A page of schedules (see :meth:`~cronjob.services.scheduling.SchedulingService.page`): its
    ``items``, whether at least one more schedule matches after them (``has_more``: the next page
    is not empty), and the cursor that asks for that next page (``next_cursor``: after the last
    item; None when ``has_more`` is false)."""

    items: list[Schedule]
    has_more: bool
    next_cursor: ListCursor | None = None


def due_window(due_after: datetime | None, due_before: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The bounds of a due-time window as the stores take them: in UTC, rounded up to the
    millisecond (which selects exactly what the instants given do: stored times are whole
    milliseconds). :class:`ValidationError` naming the field for a bound without an offset or
    outside the calendar, and naming ``due_before`` for an empty window (``due_after >=
    due_before``: the window is ``due_after <= next_run_at < due_before``)."""
    return _window(due_after, due_before, "due", "next_run_at")


def updated_window(updated_after: datetime | None,
                   updated_before: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The bounds of a last-change window (``updated_after <= updated_at < updated_before``),
    checked and rounded as :func:`due_window` checks and rounds a due-time window's: an empty
    one (``updated_after >= updated_before``) is a :class:`ValidationError` naming ``updated_before``."""
    return _window(updated_after, updated_before, "updated", "updated_at")


def list_cursor(after: ListCursor | None, offset: int, due_after: datetime | None,
                due_before: datetime | None) -> ListCursor | None:
    """The cursor ``after`` as the stores take it: its instant in UTC, cut to the millisecond
    (a listed schedule's key, as stored). :class:`ValidationError` naming ``cursor`` for one of
    the other order than the list's (one made under a due-time window, used without one, or the
    reverse) and for an instant without an offset or outside the calendar; naming ``offset`` for
    an offset with a cursor (a page is either the one after a cursor, or so many from the start)."""
    if after is None:
        return None
    order = list_order(due_after, due_before)
    if after.order is not order:
        made = ("with a due-time window (due_after, due_before): ask with the window it was made with"
                if after.order is ListOrder.DUE else "without a due-time window: ask without due_after and due_before")
        raise ValidationError(f"this cursor pages a list {made}, or start again without a cursor", field="cursor")
    if offset:
        raise ValidationError("offset is for paging without a cursor: with one, leave offset out", field="offset")
    return replace(after, at=whole_millisecond(require_aware(after.at, "cursor")))


def _window(after: datetime | None, before: datetime | None, name: str,
            stored: str) -> tuple[datetime | None, datetime | None]:
    """The bounds ``{name}_after`` and ``{name}_before`` of a half-open window on ``stored``."""
    after_field, before_field = f"{name}_after", f"{name}_before"
    rounded = _bound(after, after_field), _bound(before, before_field)
    if after is not None and before is not None and after >= before:
        raise ValidationError(
            f"{before_field} ({instant_text(before)}) must be later than {after_field} ({instant_text(after)}): "
            f"the window is {after_field} <= {stored} < {before_field}", field=before_field)
    return rounded


def _bound(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else fire_millisecond(require_aware(value, field), field)
