"""Publishing what happens to schedules (status webhooks)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from cronjob.domain.schedule import Schedule, ScheduleEvent


class EventPublisher(ABC):
    """Hands schedule events to their subscribers.

    Contract: ``publish`` is called *before* the schedule carrying the events is written (so a
    crash after the write cannot lose them), and the write may then fail or never happen (a
    lost lease, a lost race, a crash). An implementation that delivers later must therefore
    store its deliveries durably first and deliver an event only once it is found stored with
    its schedule, waiting a bounded while for the write and dropping the event if it never comes.
    The exception is ``started``, published as a run begins and stored with the run's outcome:
    it is delivered without waiting. ``publish`` must be idempotent per (event id, subscriber)
    and never raise: it returns False when some delivery could not be stored (the caller may
    publish the same events again), True otherwise.

    A caller whose write was refused (a conditional write that lost its race) knows the events
    it published will never be stored: it calls ``withdraw`` with them, which drops their
    deliveries that have not started, so that none is sent however the schedule's event log
    changes meanwhile (it only keeps the newest entries); it never raises either.
    """

    @abstractmethod
    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> bool:
        """Publish ``events`` of ``schedule`` (oldest first); False if some could not be stored."""

    async def publish_many(self, changed: Sequence[tuple[Schedule, Sequence[ScheduleEvent]]]) -> list[bool]:
        """``publish`` for many schedules written together (a page of a bulk change): the events
        of each of ``changed`` (a schedule and its new events), answered in that order, each as
        ``publish`` answers. An implementation that stores its deliveries stores them all in as
        few round trips as it can; by default each is published in turn."""
        return [await self.publish(schedule, events) for schedule, events in changed]

    async def withdraw(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> None:
        """``events`` of ``schedule`` were published but their write was refused: drop their
        deliveries (by default nothing was kept to drop)."""
        return None


class NoPublisher(EventPublisher):
    """Publishes nothing (no webhooks configured)."""

    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> bool:
        return True
