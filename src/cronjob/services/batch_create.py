"""Many schedules in one request (a campaign of messages): each created as one request creates
it, independently of the others, a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cronjob.domain.errors import ValidationError
from cronjob.services.scheduling import CreateScheduleCommand, Scheduled, SchedulingService

#: The most schedules one batch creates.
MAX_BATCH = 1000
#: Creations in progress at once: a store commits concurrent writes together (SQLite's group
#: commit, MongoDB's round trips overlapping), while the batch's order of answers is kept.
_AT_ONCE = 16


async def create_each(scheduling: SchedulingService,
                      commands: Sequence[CreateScheduleCommand | ValidationError]) -> list[Scheduled | ValidationError]:
    """Create the schedule of each command, as :meth:`SchedulingService.create` does (an
    idempotency key replays what it created first), and answer in the commands' order: each
    :class:`Scheduled`, or the :class:`ValidationError` that refused it. An item already refused
    (a ``ValidationError`` in ``commands``: its request could not be read) is answered as it is.

    Items are independent: one refused does not hold back the others, and none is undone when
    another fails. Any other error (an unreachable store) ends the call with that error; what was
    created before stays, so a batch whose items carry idempotency keys can be sent again safely.
    """
    if len(commands) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} schedules per batch, not {len(commands)}", field="schedules")
    room = asyncio.Semaphore(_AT_ONCE)

    async def create(command: CreateScheduleCommand) -> Scheduled | ValidationError:
        async with room:
            try:
                return await scheduling.create(command)
            except ValidationError as refused:
                return refused

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(create(c)) if isinstance(c, CreateScheduleCommand) else None
                     for c in commands]
    except ExceptionGroup as failed:  # the first failure as itself: an unreachable store is a 503
        raise failed.exceptions[0] from None
    results: list[Scheduled | ValidationError] = []
    for command, task in zip(commands, tasks, strict=True):
        if task is not None:
            results.append(task.result())
        else:
            assert isinstance(command, ValidationError)
            results.append(command)
    return results
