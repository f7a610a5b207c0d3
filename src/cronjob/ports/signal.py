"""How the scheduler learns that new work exists sooner than it planned to look."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime


class WorkSignal(ABC):
    """A wake-up channel from the places that create work to the loop that runs it.

    Contract: ``notify(due_at)`` never blocks and never fails the caller. A ``wait(timeout)`` in
    progress returns early when notified of work due before the instant it would have returned
    at; a notification for later work does not wake it. Notifications may be coalesced or lost
    (the loop's bounded poll is the safety net): this is a latency optimisation, not a queue.
    """

    @abstractmethod
    def notify(self, due_at: datetime) -> None:
        """Tell waiters that work is due at ``due_at`` (aware)."""

    @abstractmethod
    async def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or earlier when notified of earlier work."""
