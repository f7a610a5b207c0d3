"""A recurring rule in a window: ``<rule> from <start> until <end>`` fires as ``<rule>`` does,
from ``start`` and up to ``end`` (either may be left out).

APScheduler's ``start_date``/``end_date``, Agenda's ``startDate``/``endDate``: a campaign that
runs every morning until the end of the month, a weekly report that starts next quarter. Past
``end`` the trigger fires no more, so a schedule on it ends after its last occurrence, with that
occurrence's outcome (as a one-off ends with its only run's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cronjob.domain.errors import ValidationError
from cronjob.domain.excepted import ExceptedTrigger
from cronjob.domain.instants import instant_text
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.trigger import Trigger, fire_millisecond, require_aware, whole_millisecond

_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class BoundedTrigger(Trigger):
    """Fires when ``rule`` fires, at or after ``start`` and at or before ``until`` (both
    inclusive, each None for no bound, not both), and never after ``until``.

    ``rule`` is a recurring trigger that is not bounded itself; an interval takes an ``until``
    but no ``start`` (its ``from`` anchor is its start already). The bounds are aware and kept
    in UTC to the millisecond, as fire times are: ``start`` rounded up, ``until`` cut down (no
    fire time lies in what either leaves out). The expression is the rule's with the bounds as
    instants: ``daily at 09:00 from 2027-01-01T03:00:00+00:00 until 2027-03-31T12:00:00+00:00``.
    """

    rule: Trigger
    until: datetime | None = None
    start: datetime | None = None

    def __post_init__(self) -> None:
        if not self.rule.recurring:
            raise ValidationError("'from' and 'until' bound a recurring rule; a one-off ('once @') runs once anyway",
                                  field="schedule")
        if isinstance(self.rule, BoundedTrigger):
            raise ValidationError("a rule takes one 'from' and one 'until'", field="schedule")
        if isinstance(self.rule, ExceptedTrigger):  # its expression would not read back: the dates come last
            raise ValidationError("'from' and 'until' come before 'except': '<rule> [from ...] [until ...] except "
                                  "<dates>'", field="schedule")
        if self.start is None and self.until is None:
            raise ValidationError("a bounded rule needs 'from' or 'until'", field="schedule")
        if self.start is not None:
            if isinstance(self.rule, IntervalTrigger):
                raise ValidationError("an interval starts at its anchor: write 'every <n> <unit> from <ISO instant>'",
                                      field="schedule")
            object.__setattr__(self, "start", fire_millisecond(require_aware(self.start, "from"), "from"))
        if self.until is not None:
            object.__setattr__(self, "until", whole_millisecond(require_aware(self.until, "until")))
        if self.start is not None and self.until is not None and self.start > self.until:
            raise ValidationError(f"the rule starts ('from', {instant_text(self.start)}) after it ends "
                                  f"('until', {instant_text(self.until)})", field="schedule")

    @property
    def expression(self) -> str:
        start = f" from {self.start.isoformat()}" if self.start is not None else ""
        until = f" until {self.until.isoformat()}" if self.until is not None else ""
        return f"{self.rule.expression}{start}{until}"

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        if self.until is not None and after >= self.until:
            return None  # without asking the rule: a cron rule may search far for its next match
        if self.start is not None and after < self.start:
            after = self.start - _ONE_MS  # fire times are whole milliseconds: the start itself fires
        fire = self.rule.next_fire_time(after)
        return fire if fire is not None and (self.until is None or fire <= self.until) else None
