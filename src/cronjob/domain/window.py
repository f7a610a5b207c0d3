"""A repetition within a window of the day: ``every 15 minutes between 08:00 and 18:00 on
monday,tuesday,wednesday,thursday,friday`` (alerts in business hours; Rocketry's
``every 15 minutes & time of day between 08:00 and 18:00``).

Each day the window opens, the rule fires when it opens and then every ``every`` of elapsed time
while it is open: the window is wall-clock time in an IANA zone, the steps within it are elapsed
time, as ``every <n> minutes`` is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronjob.domain.errors import ValidationError
from cronjob.domain.recurring import checked_weekdays, format_time_of_day, interval_text, weekdays_text
from cronjob.domain.trigger import Trigger, require_aware
from cronjob.domain.zones import ONE_SECOND, first_instant_at, load_zone, wall_clock

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class WindowTrigger(Trigger):
    """Fires every ``every`` (a whole number of seconds, shorter than a day) from the instant a
    daily window opens, at the wall time ``start`` in ``zone``, while it is open: up to, not
    including, the instant it closes, at the wall time ``end`` (on the next date when ``end`` is
    not after ``start``: ``between 22:00 and 06:00`` is a night). On the given ``weekdays`` only
    (0 = Monday ... 6 = Sunday; None, or all seven, every day), counted by the date the window
    opens on.

    Across DST a window opens and closes as a ``daily at`` rule fires: a wall time the clocks skip
    at the instant the gap ends, one they repeat on its first pass; a date the zone skips whole
    (Pacific/Apia's 2011-12-30) has no window. Within the window the steps are elapsed time, so a
    change of offset inside it neither adds nor drops a step: the clocks falling back in an
    overnight window run its repeated hour too. Expression:
    ``every 15 minutes between 08:00 and 18:00 on monday,friday``.
    """

    every: timedelta
    start: time
    end: time
    zone: str
    weekdays: frozenset[int] | None = None
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", load_zone(self.zone))
        if not isinstance(self.every, timedelta) or self.every < ONE_SECOND or self.every % ONE_SECOND:
            raise ValidationError("the interval in a window is a whole number of seconds, at least 1",
                                  field="schedule")
        if self.every >= _ONE_DAY:
            raise ValidationError("the interval in a window must be shorter than a day (a window opens "
                                  "once a day): once a day is 'daily at HH:MM[:SS]'", field="schedule")
        for bound in (self.start, self.end):
            if not isinstance(bound, time) or bound.tzinfo is not None or bound.microsecond:
                raise ValidationError("a window's times of day are plain HH:MM[:SS] (no zone, no fraction)",
                                      field="schedule")
        if self.start == self.end:
            raise ValidationError(f"the window opens and closes at {format_time_of_day(self.start)}: a window "
                                  "ends at another time of day (all day long is 'every <n> <unit>')",
                                  field="schedule")
        if self.weekdays is not None:
            object.__setattr__(self, "weekdays", checked_weekdays(self.weekdays))

    @property
    def expression(self) -> str:
        window = f"between {format_time_of_day(self.start)} and {format_time_of_day(self.end)}"
        days = f" on {weekdays_text(self.weekdays)}" if self.weekdays is not None else ""
        return f"every {interval_text(self.every)} {window}{days}"

    @property
    def recurring(self) -> bool:
        return True

    def window_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The window that opens on the local date ``day``: the instants (UTC) it opens and
        closes at, or None if it has none that date."""
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return None
        opens = first_instant_at(datetime.combine(day, self.start), self._tz)
        if wall_clock(opens, self._tz).date() != day:
            return None  # the clocks skipped the opening time to the next date
        closes_on = day if self.start < self.end else day + _ONE_DAY
        closes = first_instant_at(datetime.combine(closes_on, self.end), self._tz)
        return (opens, closes) if opens < closes else None

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        # The windows follow each other in time, each closing before the next opens. The one that
        # opened the date before the clock's date at ``after`` may still be open (a night window);
        # none before it can be.
        day = wall_clock(after, self._tz).date()
        day = day - _ONE_DAY if day > date.min else day
        try:
            while True:
                window = self.window_on(day)
                if window is not None:
                    opens, closes = window
                    if after < opens:
                        return opens
                    fire = opens + ((after - opens) // self.every + 1) * self.every
                    if fire < closes:
                        return fire
                day += _ONE_DAY
        except OverflowError:  # past year 9999
            return None
