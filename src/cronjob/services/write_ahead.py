"""Writing a schedule's events the way the EventPublisher contract asks: publish, then write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from cronjob.domain.schedule import Schedule, ScheduleEvent
from cronjob.ports.events import EventPublisher


async def publish_then_write(publisher: EventPublisher, schedule: Schedule, events: Sequence[ScheduleEvent],
                             write: Callable[[], Awaitable[bool]]) -> bool:
    """Publish ``events`` of ``schedule``, then ``write`` it, and return what ``write`` returned.

    Publishing first means a crash after the write cannot lose the events (each delivery waits
    for its event to be stored). When some delivery could not be stored (the store was down for
    a moment) and the write then succeeded, the events are published once more; when the write
    was refused (its condition no longer held), the events are withdrawn: they will never be
    stored. An exception of ``write`` propagates, and the events stay published then (the write
    may have happened, its answer lost): their deliveries wait for them, a bounded while.
    """
    published = await publisher.publish(schedule, events)
    written = await write()
    if not written:
        await publisher.withdraw(schedule, events)
    elif not published:
        await publisher.publish(schedule, events)
    return written
