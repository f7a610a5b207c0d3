"""A WorkSignal for tests that also remembers what it was told."""

from __future__ import annotations

from datetime import datetime

from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.support.clock import FixedClock


class RecordingSignal(InProcessWorkSignal):
    """The in-process signal, also remembering every notification."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock)
        self.notified: list[datetime] = []

    def notify(self, due_at: datetime) -> None:
        self.notified.append(due_at)
        super().notify(due_at)
