"""A recurring rule that skips listed dates: ``weekly on mon-fri at 09:00 except 2026-12-25,2027-01-01``
(the holidays a reminder, a report or a sync does not run on, which cron cannot say).

An occurrence whose local date, in the rule's zone, is listed does not happen at all: the rule's
next occurrence after it is the next one on a date not listed. Nothing is missed, run or counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronjob.domain.errors import ValidationError
from cronjob.domain.trigger import Trigger, require_aware
from cronjob.domain.zones import first_instant_at, load_zone, wall_clock

_ONE_MS = timedelta(milliseconds=1)
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ExceptedTrigger(Trigger):
    """Fires when ``rule`` fires, except at an instant whose wall-clock date in ``zone`` is one
    of ``dates``.

    ``rule`` is a recurring trigger (bounded by ``from``/``until`` or not) that skips no dates
    itself; ``dates`` are at least one. Past a listed date the rule is asked for its first fire
    time from where the clocks leave that date: the start of the next local date (the first
    instant they read its 00:00 or later: a midnight skipped by daylight saving starts the date
    when the gap ends, and a date the zone skips whole, Pacific/Apia's 2011-12-30, is passed by),
    or sooner where they go back across midnight into the date before. So a call costs one
    question to the rule per listed date it passes, not one per occurrence on it. The expression
    is the rule's with the dates ascending: ``daily at 09:00 except 2026-12-25,2027-01-01``.
    """

    rule: Trigger
    dates: frozenset[date]
    zone: str
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", load_zone(self.zone))
        if not self.rule.recurring:
            raise ValidationError("'except' skips dates of a recurring rule; a one-off ('once @') runs on its one "
                                  "date anyway", field="schedule")
        if isinstance(self.rule, ExceptedTrigger):
            raise ValidationError("a rule takes one 'except': name every date to skip in its list, "
                                  "comma-separated", field="schedule")
        dates = frozenset(self.dates)
        if not dates:
            raise ValidationError("'except' needs at least one date", field="schedule")
        if any(not isinstance(day, date) or isinstance(day, datetime) for day in dates):
            raise ValidationError("the dates after 'except' are dates (YYYY-MM-DD), not date-times",
                                  field="schedule")
        object.__setattr__(self, "dates", dates)

    @property
    def expression(self) -> str:
        return f"{self.rule.expression} except {','.join(day.isoformat() for day in sorted(self.dates))}"

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        try:
            while (fire := self.rule.next_fire_time(after)) is not None:
                day = wall_clock(fire, self._tz).date()
                if day not in self.dates:
                    return fire
                # The end itself may fire; never back before ``fire``, so that each turn moves on.
                after = max(fire, self._date_ends(fire, day) - _ONE_MS)
        except OverflowError:  # a listed date at the end of the calendar: nothing follows it
            return None
        return None

    def _date_ends(self, fire: datetime, day: date) -> datetime:
        """The first instant after ``fire``, which the clocks in the zone read as on ``day``, at
        which they read another date: the start of the next date, or sooner, where the clocks go
        back across midnight into the date before (America/St_Johns until 2010 went from 00:01 back
        to 23:01: the first minute of a Sunday, then Saturday's last hour again)."""
        midnight = datetime.combine(day + _ONE_DAY, time(0, 0))
        end = first_instant_at(midnight, self._tz)
        if end <= fire:  # ``day`` again, its last hour repeated after the next midnight's first pass
            end = midnight.replace(tzinfo=self._tz, fold=1).astimezone(UTC)
        offset = self._offset(fire)
        if end <= fire or self._offset(end - _ONE_MS) >= offset:
            return end  # the clocks did not go back before ``end``
        # The offset changes in between: bisect the milliseconds for the first one after the change.
        low, high = 0, (end - _ONE_MS - fire) // _ONE_MS
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(fire + middle * _ONE_MS) == offset:
                low = middle
            else:
                high = middle
        change = fire + high * _ONE_MS
        return change if wall_clock(change, self._tz).date() != day else end

    def _offset(self, instant: datetime) -> timedelta | None:
        return instant.astimezone(self._tz).utcoffset()
