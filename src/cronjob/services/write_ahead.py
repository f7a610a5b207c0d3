"""Writing a schedule's events the way the EventPublisher contract asks: publish, then write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from cronjob.domain.schedule import Schedule, ScheduleEvent
from cronjob.ports.events import EventPublisher
from cronjob.services.few_at_a_time import few_at_a_time

#: Withdrawals in progress at once, for many schedules' events.
_AT_ONCE = 16


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


async def publish_then_write_many(publisher: EventPublisher,
                                  changed: Sequence[tuple[Schedule, Sequence[ScheduleEvent]]],
                                  write: Callable[[], Awaitable[list[bool]]]) -> list[bool]:
    """:func:`publish_then_write` for many schedules written together: the events of each of
    ``changed`` (a schedule and its new events) published together (``publish_many``: one
    round trip of the store for the lot's deliveries), then one ``write`` of them all, which
    answers whether each was written (in the order of ``changed``); then each refused one's
    events withdrawn, a few at a time, and those of each written one where some delivery could
    not be stored published again. An exception of ``write`` propagates, as there."""
    published = await publisher.publish_many(changed)
    written = await write()
    refused = [partial(publisher.withdraw, schedule, events)
               for (schedule, events), ok in zip(changed, written, strict=True) if not ok]
    await few_at_a_time(refused, _AT_ONCE)
    again = [item for item, ok, stored in zip(changed, written, published, strict=True) if ok and not stored]
    if again:
        await publisher.publish_many(again)
    return written
