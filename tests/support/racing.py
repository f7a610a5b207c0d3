"""An in-memory store on which a test can slip a change in between a user's read and write, or
between two page reads of a list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cronjob.domain.schedule import Schedule
from cronjob_adapters.memory.repository import InMemoryScheduleRepository


class RacingRepository(InMemoryScheduleRepository):
    """The shipped in-memory store, where ``race`` (once set) runs just before the next write
    conditional on the version read (a user's change), between that change's read and write, so
    that the write finds the schedule changed. ``written``: the id of every event a write stored
    (trimmed from the log since, or not)."""

    race: Callable[[], Awaitable[Any]] | None = None
    #: Once set, given the filters of every ``list`` just after it read its page (before the page
    #: is returned); the first time it answers True it is done and unset: a change between two
    #: page reads of a walk.
    between_pages: Callable[[dict[str, Any]], Awaitable[bool]] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.written: set[str] = set()

    async def save(self, schedule: Schedule, **conditions: Any) -> bool:
        if self.race is not None and conditions.get("expected_updated_at") is not None:
            race, self.race = self.race, None
            await race()
        saved = await super().save(schedule, **conditions)
        if saved:
            self.written.update(event.id for event in schedule.events)
        return saved

    async def list(self, **filters: Any) -> list[Schedule]:  # type: ignore[override]
        page = await super().list(**filters)
        if self.between_pages is not None and await self.between_pages(filters):
            self.between_pages = None
        return page
