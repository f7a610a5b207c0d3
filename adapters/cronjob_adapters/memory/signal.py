"""WorkSignal inside one process and one event loop (``cronjob serve``: API and scheduler together)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from cronjob.ports.clock import Clock
from cronjob.ports.signal import WorkSignal


class InProcessWorkSignal(WorkSignal):
    """An asyncio.Event plus the instant the waiter plans to wake at.

    A notification that arrives while nobody waits stays set, so work created between the loop's
    look at the store and its next wait is not missed.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._event = asyncio.Event()
        self._wake_at: datetime | None = None

    def notify(self, due_at: datetime) -> None:
        if self._wake_at is None or due_at < self._wake_at:
            self._event.set()

    async def wait(self, timeout: float) -> None:
        if self._event.is_set():
            self._event.clear()
            return
        self._wake_at = self._clock.now() + timedelta(seconds=max(timeout, 0.0))
        try:
            await asyncio.wait_for(self._event.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            self._wake_at = None
            self._event.clear()
