"""Instants as text: the one format in which the service writes a point in time into a string
(event data, delivery statuses, job payloads, task results, webhook bodies, the API)."""

from __future__ import annotations

from datetime import UTC, datetime


def instant_text(value: datetime) -> str:
    """``value`` as its UTC instant, ``YYYY-MM-DDTHH:MM:SS.mmmZ``: always three fraction digits
    and a ``Z``, which ``datetime.fromisoformat`` reads back (Python 3.11+).

    Finer than a millisecond is truncated, not rounded: the stores keep every time truncated to
    the millisecond, so the text is the one a stored copy of the same datetime gives (a status
    webhook and a later read agree), and it names the millisecond the instant falls in. It
    shows no due time early: the instants someone asks for are rounded *up* to a whole
    millisecond before they are due (:func:`cronjob.domain.trigger.fire_millisecond`), and fire
    times are whole milliseconds. Microseconds come only from clock readings (when an event
    happened, when a status arrived) and times computed from them (a retry's, now plus its
    delay, which a store keeps truncated the same way).

    A naive datetime (no offset, no zone) names no instant: ValueError. One whose UTC instant
    falls outside the years 1 to 9999: OverflowError.
    """
    if value.tzinfo is UTC:  # what the clock and the stores give: the same text, at half the cost
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # without its "+00:00"
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} is naive: an instant needs an offset or a time zone")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
