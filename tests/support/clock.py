"""A clock the tests drive by hand (a real Clock, no mocks)."""

from __future__ import annotations

from datetime import datetime, timedelta

from cronjob.domain.trigger import require_aware
from cronjob.ports.clock import Clock


class FixedClock(Clock):
    """Answers the instant it was set to; moves only when told (``advance``/``set``)."""

    def __init__(self, now: datetime) -> None:
        self._now = require_aware(now, "now")

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = require_aware(now, "now")

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds) and return the new instant."""
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self._now
