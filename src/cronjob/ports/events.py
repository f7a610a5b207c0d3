"""Publishing what happens to schedules (status webhooks)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from cronjob.domain.schedule import Schedule, ScheduleEvent


class EventPublisher(ABC):
    """Hands schedule events to their subscribers.

    Contract: ``publish`` is called after the events were stored with the schedule; it must not
    lose an event it accepted (an implementation that delivers later stores its deliveries
    durably first), must be idempotent per (event id, subscriber), and must never raise for a
    subscriber's failure: delivery problems are the publisher's to retry and record.
    """

    @abstractmethod
    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> None:
        """Publish ``events`` of ``schedule`` (oldest first)."""


class NoPublisher(EventPublisher):
    """Publishes nothing (no webhooks configured)."""

    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> None:
        return None
