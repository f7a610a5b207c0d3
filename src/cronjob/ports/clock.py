"""Time, as a port, so that tests and benchmarks can drive it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime


class Clock(ABC):
    """Tells the current time. ``now()`` is aware and in UTC."""

    @abstractmethod
    def now(self) -> datetime:
        """The current instant, aware, UTC."""


class SystemClock(Clock):
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)
