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
    a moment) and the write then succeeded, the events are published once more. An exception of
    ``write`` propagates; nothing is published again then.
    """
    published = await publisher.publish(schedule, events)
    written = await write()
    if written and not published:
        await publisher.publish(schedule, events)
    return written
