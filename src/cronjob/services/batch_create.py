"""Many schedules in one request (a campaign of messages): each created as one request creates
it, independently of the others, a few at a time."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from cronjob.domain.errors import ValidationError
from cronjob.services.few_at_a_time import few_at_a_time
from cronjob.services.scheduling import CreateScheduleCommand, Scheduled, SchedulingService

#: The most schedules one batch creates.
MAX_BATCH = 1000
#: Creations in progress at once (see :func:`few_at_a_time`).
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
    wanted = [c for c in commands if isinstance(c, CreateScheduleCommand)]
    created = iter(await few_at_a_time([partial(_create, scheduling, c) for c in wanted], _AT_ONCE))
    return [next(created) if isinstance(c, CreateScheduleCommand) else c for c in commands]


async def _create(scheduling: SchedulingService, command: CreateScheduleCommand) -> Scheduled | ValidationError:
    """Create one: the schedule, or the :class:`ValidationError` that refused it."""
    try:
        return await scheduling.create(command)
    except ValidationError as refused:
        return refused
