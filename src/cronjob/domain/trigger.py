"""Triggers: when a schedule fires. ``next_fire_time(after)`` is pure and always later than ``after``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronjob.domain.errors import UnreadableRule, ValidationError
from cronjob.domain.zones import OUT_OF_RANGE


def require_aware(value: datetime, field: str = "at") -> datetime:
    """Return ``value`` in UTC, refusing a naive datetime (no offset, no zone) and one whose UTC
    instant falls outside the calendar (years 1 to 9999)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError("a date-time needs an offset or a time zone", field=field)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(OUT_OF_RANGE, field=field) from None


def whole_millisecond(value: datetime) -> datetime:
    """``value`` truncated to the millisecond: the precision of fire times (and of every store)."""
    sub_ms = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - sub_ms) if sub_ms else value


def fire_millisecond(value: datetime, field: str = "at") -> datetime:
    """``value`` rounded *up* to the millisecond: the fire time of an instant someone asked for.

    Up, not down, so that a schedule never runs before the instant it names (a fire time a
    fraction of a millisecond early is still early). Past the end of the calendar is refused.
    """
    sub_ms = value.microsecond % 1000
    if not sub_ms:
        return value
    try:
        return value + timedelta(microseconds=1000 - sub_ms)
    except OverflowError:
        raise ValidationError(OUT_OF_RANGE, field=field) from None


class Trigger(ABC):
    """A rule that yields fire times.

    Contract, for every implementation:

    - ``next_fire_time(after)`` takes an aware datetime and returns the first fire time
      strictly later than ``after``, as an aware datetime in UTC and a whole millisecond, or
      ``None`` when the rule never fires again. It is pure: same input, same output, no clock,
      no I/O. (Whole milliseconds because the stores keep no more: a fire time that lost its
      microseconds on the way through a store must still be the same occurrence, not an
      earlier time the rule fires again after. An instant someone asked for is rounded up to
      its millisecond, never down: nothing fires before the time it names.)
    - ``expression`` is a canonical text form; parsing it (with the same time zone) gives a
      trigger with the same fire times. It is what the stores persist.
    - ``recurring`` is False only for rules that fire at most once.
    """

    @property
    @abstractmethod
    def expression(self) -> str:
        """Canonical text form of this trigger."""

    @property
    @abstractmethod
    def recurring(self) -> bool:
        """Whether the rule can fire more than once."""

    @abstractmethod
    def next_fire_time(self, after: datetime) -> datetime | None:
        """First fire time strictly after ``after`` (UTC), or None."""


def latest_fire_time(trigger: Trigger, after: datetime, until: datetime) -> datetime | None:
    """The last fire time of ``trigger`` in (``after``, ``until``], or None if there is none.

    Triggers only step forwards, and a rule that fires every second, down for a day, has 86,400
    fire times in between: rather than walk them all, look back from ``until`` in windows that
    double (1 ms, 2 ms, ...) until one holds a fire time, then walk forwards from there (for a
    regular rule, a step or two).
    """
    first = trigger.next_fire_time(after)
    if first is None or first > until:
        return None
    found, window, span = first, timedelta(milliseconds=1), until - after
    while window < span:
        candidate = trigger.next_fire_time(until - window)
        if candidate is not None and candidate <= until:
            found = candidate
            break
        window *= 2
    while (following := trigger.next_fire_time(found)) is not None and following <= until:
        found = following
    return found


@dataclass(frozen=True, slots=True)
class OnceTrigger(Trigger):
    """Fires once, at ``at`` (stored in UTC, rounded up to the millisecond). Its expression is
    ``once @ <ISO-8601 UTC>``."""

    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", fire_millisecond(require_aware(self.at)))

    @property
    def expression(self) -> str:
        return f"once @ {self.at.isoformat()}"

    @property
    def recurring(self) -> bool:
        return False

    def next_fire_time(self, after: datetime) -> datetime | None:
        return self.at if self.at > require_aware(after, "after") else None


@dataclass(frozen=True, slots=True)
class UnreadableTrigger(Trigger):
    """A stored rule this version cannot read: a later version's form (during a rolling update,
    after a roll-back), or a zone this machine's time zone data lacks. ``expression`` is the
    stored text, kept as it is, so that writing the schedule back (a cancel, a pause) does not
    change its rule; ``reason`` says why it was not read.

    It counts as recurring (the safe assumption: a one-off's end would end the schedule), and
    anything that needs its times raises :class:`~cronjob.domain.errors.UnreadableRule`, so that
    nothing here runs it, moves it on or ends it on a guess.
    """

    stored: str
    reason: str

    @property
    def expression(self) -> str:
        return self.stored

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        raise UnreadableRule(self.stored)
