"""Recurring triggers: a fixed interval of elapsed time, a wall-clock time of day (every day, on some
weekdays or on some days of the month), a cron expression.

All three follow the :class:`~cronjob.domain.trigger.Trigger` contract. Wall-clock rules live in an
IANA zone and follow cron across daylight saving time: a wall time that the clocks skip (a
spring-forward gap) fires once, at the first instant after the gap; a wall time that the clocks
repeat (a fall-back fold) fires once, on its first pass.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronjob.domain.cron import CronEvaluator
from cronjob.domain.errors import ValidationError
from cronjob.domain.trigger import Trigger, fire_millisecond, require_aware
from cronjob.domain.zones import ONE_SECOND, first_instant_at, load_zone, wall_clock


#: Weekday names as the expressions spell them, Monday first (``date.weekday()`` order).
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: The units an interval's expression is written in, largest first, with their length. Days at
#: most: ``every 2 weeks`` (a unit the parser also takes, ``WEEK``) is written ``every 14 days from
#: ...``, since the stored rule is this text and the versions before weeks (during a rolling update,
#: after a roll-back) read only these, and every rule of days they wrote stays as they wrote it.
UNITS = (("day", timedelta(days=1)), ("hour", timedelta(hours=1)), ("minute", timedelta(minutes=1)),
         ("second", ONE_SECOND))
#: ``every <n> weeks``: elapsed time, 7 × 24 hours, whatever daylight saving does to the wall clock.
WEEK = ("week", timedelta(weeks=1))

#: The day of the month that stands for the month's last day (``monthly on last``), whichever
#: number it has (28 to 31).
LAST_DAY = -1
#: Every numbered day of the month: a rule on all of them runs daily.
_EVERY_MONTH_DAY = frozenset(range(1, 32))


def is_month_day(day: date, month_days: frozenset[int]) -> bool:
    """Whether the date ``day`` is one of ``month_days`` (1 to 31, or :data:`LAST_DAY`)."""
    return day.day in month_days or (LAST_DAY in month_days and day.day == monthrange(day.year, day.month)[1])


def month_days_text(month_days: frozenset[int]) -> str:
    """The days as a rule writes them: ``1,15,last`` (numbers ascending, ``last`` last)."""
    numbers = [str(day) for day in sorted(month_days) if day != LAST_DAY]
    return ",".join(numbers + (["last"] if LAST_DAY in month_days else []))


def checked_weekdays(weekdays: frozenset[int]) -> frozenset[int] | None:
    """``weekdays`` (0 = Monday ... 6 = Sunday, at least one) as a rule keeps them: None for all
    seven (every day)."""
    days = frozenset(weekdays)
    if not days:
        raise ValidationError("a weekly schedule needs at least one weekday", field="schedule")
    if any(not isinstance(day, int) or not 0 <= day <= 6 for day in days):
        raise ValidationError("weekdays are 0 (Monday) to 6 (Sunday)", field="schedule")
    return None if len(days) == 7 else days


def weekdays_text(weekdays: frozenset[int]) -> str:
    """The weekdays as a rule writes them: ``monday,friday`` (Monday first)."""
    return ",".join(WEEKDAY_NAMES[day] for day in sorted(weekdays))


def interval_text(every: timedelta) -> str:
    """A whole number of seconds in the largest of :data:`UNITS` that divides it: ``10 minutes``,
    ``hour`` (one of a unit is the unit alone, as in ``every hour``)."""
    for unit, size in UNITS:
        if not every % size:
            count = every // size
            return unit if count == 1 else f"{count} {unit}s"
    raise ValueError(f"not a whole number of seconds: {every}")


def format_time_of_day(value: time) -> str:
    """``HH:MM``, or ``HH:MM:SS`` when the seconds are not zero."""
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


@dataclass(frozen=True, slots=True)
class IntervalTrigger(Trigger):
    """Fires every ``every`` of elapsed time: at ``anchor + k * every`` for k = 0, 1, 2, ...

    Elapsed time ignores daylight saving time (every 24 hours stays 24 hours apart). ``every`` is
    a whole number of seconds, at least one; ``anchor`` is aware and stored in UTC, rounded up to
    the millisecond. The expression carries the anchor: ``every 10 minutes from 2025-06-21T17:00:00+00:00``.
    """

    every: timedelta
    anchor: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.every, timedelta) or self.every < ONE_SECOND:
            raise ValidationError("the interval must be at least 1 second", field="schedule")
        if self.every % ONE_SECOND:
            raise ValidationError("the interval must be a whole number of seconds", field="schedule")
        object.__setattr__(self, "anchor", fire_millisecond(require_aware(self.anchor, "anchor"), "anchor"))

    @property
    def expression(self) -> str:
        return f"every {interval_text(self.every)} from {self.anchor.isoformat()}"

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        if after < self.anchor:
            return self.anchor
        try:
            return self.anchor + ((after - self.anchor) // self.every + 1) * self.every
        except OverflowError:
            return None


@dataclass(frozen=True, slots=True)
class CalendarTrigger(Trigger):
    """Fires at the wall-clock time ``at`` in the IANA ``zone``: every day (``weekdays`` and
    ``month_days`` None), on the given weekdays (0 = Monday ... 6 = Sunday), or on the given days
    of the month (1 to 31, and :data:`LAST_DAY` for each month's last day).

    Across DST it behaves like cron: a time the clocks skip fires at the first instant after the
    gap, a time the clocks repeat fires on its first pass only, so it never fires twice on one
    local date. In the rare zone whose gap swallows the rest of a date (Pacific/Apia skipped
    2011-12-30 whole), that date has no fire. A day of the month that a month lacks (the 31st in
    April) does not fire in that month, as in cron; ``last`` is the month's end. A full week of
    weekdays, and every day 1 to 31, is stored as None (daily); weekdays and days of the month
    are not both given. Expressions: ``daily at 09:00``, ``weekly on monday,friday at 18:30:15``,
    ``monthly on 1,15,last at 09:00``.
    """

    at: time
    zone: str
    weekdays: frozenset[int] | None = None
    month_days: frozenset[int] | None = None
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", load_zone(self.zone))
        if not isinstance(self.at, time) or self.at.tzinfo is not None or self.at.microsecond:
            raise ValidationError("the time of day must be a plain HH:MM[:SS] (no zone, no fraction)",
                                  field="schedule")
        if self.weekdays is not None and self.month_days is not None:
            raise ValidationError("a rule runs on weekdays or on days of the month, not both", field="schedule")
        if self.weekdays is not None:
            object.__setattr__(self, "weekdays", checked_weekdays(self.weekdays))
        if self.month_days is not None:
            days = frozenset(self.month_days)
            if not days:
                raise ValidationError("a monthly schedule needs at least one day of the month", field="schedule")
            if any(not isinstance(day, int) or not (1 <= day <= 31 or day == LAST_DAY) for day in days):
                raise ValidationError("days of the month are 1 to 31, or the last", field="schedule")
            object.__setattr__(self, "month_days", None if days >= _EVERY_MONTH_DAY else days)

    @property
    def expression(self) -> str:
        at = format_time_of_day(self.at)
        if self.month_days is not None:
            return f"monthly on {month_days_text(self.month_days)} at {at}"
        if self.weekdays is None:
            return f"daily at {at}"
        return f"weekly on {weekdays_text(self.weekdays)} at {at}"

    @property
    def recurring(self) -> bool:
        return True

    def fire_time_on(self, day: date) -> datetime | None:
        """The fire time (UTC) that belongs to the local date ``day``, or None if it has none."""
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return None
        if self.month_days is not None and not is_month_day(day, self.month_days):
            return None
        fire = first_instant_at(datetime.combine(day, self.at), self._tz)
        return fire if wall_clock(fire, self._tz).date() == day else None

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        # Every instant before a date's fire time reads an earlier wall time, so no date before
        # the one the clock shows at ``after`` can still fire later than ``after``.
        day = wall_clock(after, self._tz).date()
        try:
            while True:
                fire = self.fire_time_on(day)
                if fire is not None and fire > after:
                    return fire
                day += timedelta(days=1)
        except OverflowError:
            return None


@dataclass(frozen=True, slots=True)
class CronTrigger(Trigger):
    """Fires when a five-field cron ``expression`` matches the wall clock in the IANA ``zone``.

    The ``evaluator`` (a port, see :mod:`cronjob.domain.cron`) does the matching; it is not part
    of equality. The expression is stored with single spaces, upper case (``0 9 * * MON-FRI``),
    and is also the canonical text form.
    """

    # field() with no default: otherwise dataclass takes the inherited abstract property for a default.
    expression: str = field()  # type: ignore[assignment]
    zone: str
    evaluator: CronEvaluator = field(repr=False, compare=False)
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", load_zone(self.zone))
        if not isinstance(self.expression, str):
            raise ValidationError("a cron expression must be text", field="schedule")
        fields = self.expression.upper().split()
        if len(fields) != 5:
            raise ValidationError(
                f"a cron expression has five fields (minute hour day-of-month month day-of-week), "
                f"got {len(fields)} in {self.expression!r}", field="schedule")
        object.__setattr__(self, "expression", " ".join(fields))
        self.evaluator.validate(self.expression)

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        try:
            found = self.evaluator.next_after(self.expression, after.astimezone(self._tz))
        except OverflowError:  # past year 9999
            return None
        fire = require_aware(found, "next")
        if fire <= after:
            raise RuntimeError(f"cron evaluator broke its contract: {fire} is not after {after}")
        return fire
