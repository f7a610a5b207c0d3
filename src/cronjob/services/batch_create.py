"""Many schedules in one request (a campaign of messages): each created as one request creates
it, independently of the others, and stored together."""

from __future__ import annotations

from collections.abc import Sequence

from cronjob.domain.errors import ValidationError
from cronjob.services.commands import CreateScheduleCommand
from cronjob.services.scheduling import Scheduled, SchedulingService

#: The most schedules one batch creates.
MAX_BATCH = 1000


async def create_each(scheduling: SchedulingService,
                      commands: Sequence[CreateScheduleCommand | ValidationError]) -> list[Scheduled | ValidationError]:
    """Create the schedule of each command, as :meth:`SchedulingService.create` does (an
    idempotency key replays what it created first), and answer in the commands' order: each
    :class:`Scheduled`, or the :class:`ValidationError` that refused it. An item already refused
    (a ``ValidationError`` in ``commands``: its request could not be read) is answered as it is.

    Items are independent: one refused does not hold back the others, and none is undone when
    another fails. The new schedules are stored together (:meth:`SchedulingService.create_many`:
    one transaction on SQLite rather than one commit per few items). Any other error (an
    unreachable store) ends the call with that error; what was created before stays, so a batch
    whose items carry idempotency keys can be sent again safely.
    """
    if len(commands) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} schedules per batch, not {len(commands)}", field="schedules")
    wanted = [c for c in commands if isinstance(c, CreateScheduleCommand)]
    created = iter(await scheduling.create_many(wanted))
    return [next(created) if isinstance(c, CreateScheduleCommand) else c for c in commands]
