"""A recurring rule that ends: ``<rule> until <end>`` fires as ``<rule>`` does, up to ``end``.

APScheduler's ``end_date``, Agenda's ``endDate``: a campaign that runs every morning until the
end of the month, a reminder every hour until an order ships by a known time. Past ``end`` the
trigger fires no more, so a schedule on it ends after its last occurrence, with that
occurrence's outcome (as a one-off ends with its only run's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cronjob.domain.errors import ValidationError
from cronjob.domain.trigger import Trigger, require_aware, whole_millisecond


@dataclass(frozen=True, slots=True)
class BoundedTrigger(Trigger):
    """Fires when ``rule`` fires, at or before ``until`` (inclusive), then never again.

    ``rule`` is a recurring trigger that is not bounded itself; ``until`` is aware and stored in
    UTC, cut to the millisecond (fire times are whole milliseconds, so no fire time lies in the
    part cut off). The expression is the rule's with the end as an instant:
    ``daily at 09:00 until 2026-12-31T12:00:00+00:00``.
    """

    rule: Trigger
    until: datetime

    def __post_init__(self) -> None:
        if not self.rule.recurring:
            raise ValidationError("'until' ends a recurring rule; a one-off ('once @') runs once anyway",
                                  field="schedule")
        if isinstance(self.rule, BoundedTrigger):
            raise ValidationError("a rule takes one 'until'", field="schedule")
        object.__setattr__(self, "until", whole_millisecond(require_aware(self.until, "until")))

    @property
    def expression(self) -> str:
        return f"{self.rule.expression} until {self.until.isoformat()}"

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        if require_aware(after, "after") >= self.until:
            return None  # without asking the rule: a cron rule may search far for its next match
        fire = self.rule.next_fire_time(after)
        return fire if fire is not None and fire <= self.until else None
