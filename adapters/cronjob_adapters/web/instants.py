"""How the API shows instants: every one as :func:`~cronjob.domain.instants.instant_text`
(``2030-06-21T17:00:00.000Z``), those written by earlier versions as ``isoformat()`` text too;
and how it reads an instant a query parameter names (:func:`query_instant`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import PlainSerializer, WithJsonSchema

from cronjob.domain.errors import ValidationError
from cronjob.domain.instants import instant_text
from cronjob.domain.trigger_parser import iso_datetime, not_a_date_time

#: A datetime field of a response body: shown as its UTC instant to the millisecond, with ``Z``.
Instant = Annotated[datetime, PlainSerializer(instant_text, return_type=str, when_used="json"), WithJsonSchema({
    "type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
    "examples": ["2030-06-21T17:00:00.000Z"], "description": "A UTC instant to the millisecond."})]


def query_instant(text: str | None, field: str) -> datetime | None:
    """The instant of query parameter ``field`` (None when not given): an ISO-8601 date-time
    with an offset (``2026-11-28T14:00:00-03:00``, or ``Z``), read as the API reads ``send_at``.
    :class:`ValidationError` naming ``field`` for text that is no date-time and for one without
    an offset (a wall time: the query has no ``timezone`` to read it in)."""
    return _instant(text, field, " (a '+' in a URL's query is a space: send it as %2B)")


def body_instant(text: str | None, field: str) -> datetime | None:
    """The instant of body field ``field`` (None when not given), read and refused as
    :func:`query_instant` reads and refuses a query parameter's (a body has no ``timezone``
    for it either)."""
    return _instant(text, field, "")


def _instant(text: str | None, field: str, space_hint: str) -> datetime | None:
    """``text`` as an aware datetime; ``space_hint`` is added to the refusal of text with a space."""
    if text is None:
        return None
    try:
        value = iso_datetime(text)
    except ValueError as error:
        hint = space_hint if " " in text else ""
        raise ValidationError(f"{not_a_date_time(field, text, error)}{hint}", field=field) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{field} needs an offset (e.g. 2026-11-28T14:00:00-03:00 or ...Z): {text!r}",
                              field=field)
    return value


def wall_time_text(value: datetime, zone: ZoneInfo) -> str:
    """``value`` as the wall time in ``zone`` with its offset, ISO 8601: ``2026-11-30T09:00:00-03:00``,
    with milliseconds only when they are not zero (finer is cut off, as :func:`instant_text`
    cuts it). OverflowError when that wall time falls past the calendar (the year 9999)."""
    local = value.astimezone(zone)
    return local.isoformat(timespec="milliseconds" if local.microsecond >= 1000 else "seconds")


#: The keys of event data that hold an instant, by event type.
#: Only these: a ``succeeded`` event's data is the task's result, the task's own text.
EVENT_INSTANTS: Mapping[str, frozenset[str]] = {
    "scheduled": frozenset({"next_run_at", "rescheduled_from"}),
    "started": frozenset({"occurrence"}),
    "retrying": frozenset({"retry_at"}),
}
#: The same for every ``delivery.<status>`` event: Meta's time of the status.
DELIVERY_EVENT_INSTANTS = frozenset({"at"})


def shown_instant(text: str) -> str:
    """Stored instant text as :func:`instant_text` shows it; text that names no instant (empty,
    or without an offset) as it is."""
    try:
        return instant_text(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        return text


def shown_delivery(delivery: Mapping[str, str]) -> dict[str, str]:
    """A schedule's ``delivery`` with its ``<status>_at`` values shown as instants."""
    return {key: shown_instant(value) if key.endswith("_at") else value for key, value in delivery.items()}


def shown_event_data(event_type: str, data: Mapping[str, str]) -> dict[str, str]:
    """An event's ``data`` with the values that are instants (:data:`EVENT_INSTANTS`) shown as such."""
    keys = DELIVERY_EVENT_INSTANTS if event_type.startswith("delivery.") else EVENT_INSTANTS.get(event_type, frozenset())
    return {key: shown_instant(value) if key in keys else value for key, value in data.items()}
