"""The retention of the service's own finished jobs (``webhook.delivery``, ``whatsapp.status``).

Every status webhook is a job per subscriber, and every early WhatsApp status a parked job: left
alone, their finished ones pile up without bound. The service deletes them once they have been
finished (last changed: when they succeeded, died or were cancelled) for longer than the
retention, by a recurring schedule of its own, :data:`RETENTION`, so that the engine runs it:
claimed by one replica at a time, its lease taken over if that replica dies, due again after a
restart. :class:`RetentionKeeper` creates it at every scheduler start (one fixed id: however many
replicas start at once, one is stored), updates it when the setting changed, makes it again when
it was cancelled, and cancels it when the retention is switched off (0). :class:`RetentionHandler`
runs it, deleting in bounded pages. Users' own schedules are never touched (``cronjob.purge_runs``
is theirs to schedule).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import Enum

from cronjob.domain.instants import instant_text
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import LIVE_STATUSES, MisfirePolicy, Schedule, ScheduleStatus
from cronjob.ports.clock import Clock
from cronjob.ports.repository import DuplicateSchedule, ScheduleRepository
from cronjob.ports.signal import WorkSignal
from cronjob.ports.tasks import TaskHandler, TaskOutcome

log = logging.getLogger("cronjob.retention")

#: The internal task type of the retention schedule.
RETENTION = "cronjob.retention"
#: The retention schedule's id: fixed, so that replicas starting together store one.
RETENTION_ID = "cronjob-retention"
#: How often it runs.
INTERVAL = timedelta(minutes=10)
#: What it deletes: every status a job ends in.
FINISHED = tuple(status for status in ScheduleStatus if status not in LIVE_STATUSES)
#: One delete (one SQLite write transaction, one MongoDB find and delete): short enough that the
#: writes queued behind it do not wait long.
PAGE = 500
#: The most one run deletes (PAGE * PAGES); a larger backlog is taken up by the runs after it.
PAGES = 200
#: A run's own time limit (the replica's is an hour).
RUN_TIMEOUT = timedelta(minutes=10)


async def delete_in_pages(repository: ScheduleRepository, *, before: datetime, statuses: Sequence[ScheduleStatus],
                          limit: int, task_types: Sequence[str] | None = None, page: int = PAGE) -> int:
    """``repository.delete_finished`` of up to ``limit`` schedules, ``page`` per store call (one
    short SQLite transaction or MongoDB delete each), yielding between calls so that the writes
    queued meanwhile go first: one call for all would hold every creation and claim (on SQLite,
    the file's write lock) for as long as it takes. Returns how many were deleted."""
    deleted = 0
    while deleted < limit:
        if deleted:
            await asyncio.sleep(0)
        size = min(page, limit - deleted)
        count = await repository.delete_finished(before=before, statuses=statuses, limit=size, task_types=task_types)
        deleted += count
        if count < size:
            break
    return deleted


class RetentionHandler(TaskHandler):
    """Runs the retention schedule: deletes the finished jobs of its payload's ``task_types``
    last changed more than ``keep_hours`` ago, ``PAGE`` at a time, at most ``PAGES`` pages a run
    (the next run, ``INTERVAL`` later, goes on with the rest; ``result.more`` says so). A dead
    status webhook delivery (a dead letter, which ``:retry`` redrives) is kept as long as the
    others, counted from when it died."""

    task_type = RETENTION

    def __init__(self, repository: ScheduleRepository, clock: Clock, *, page: int = PAGE,
                 pages: int = PAGES) -> None:
        self._repository = repository
        self._clock = clock
        self._page = page
        self._pages = pages

    async def run(self, schedule: Schedule) -> TaskOutcome:
        keep = timedelta(hours=int(schedule.payload["keep_hours"]))
        task_types = [str(t) for t in schedule.payload["task_types"]]
        before = self._clock.now() - keep
        limit = self._page * self._pages
        deleted = await delete_in_pages(self._repository, before=before, statuses=FINISHED, limit=limit,
                                        task_types=task_types, page=self._page)
        more = deleted >= limit  # every page was full: some may be left
        if deleted:
            log.info("retention: %d finished job(s) of %s last changed before %s deleted%s", deleted,
                     ", ".join(task_types), instant_text(before), "; more left for the next run" if more else "")
        return TaskOutcome(result={"deleted": str(deleted), "before": instant_text(before),
                                   "more": "true" if more else "false"})

    def run_timeout(self, schedule: Schedule) -> timedelta | None:
        return RUN_TIMEOUT


class Kept(Enum):
    """What :meth:`RetentionKeeper.keep` found or did."""

    CREATED = "created"
    CURRENT = "current"  # stored as wanted already (another replica made it, or an earlier start)
    REPLACED = "replaced"  # another retention, paused or ended: cancelled, deleted and made afresh
    SWITCHED_OFF = "switched off"  # cancelled: the retention is 0
    OFF = "off"  # 0, and none is live
    BUSY = "busy"  # running with another retention, or changed by another replica meanwhile: ask again


class RetentionKeeper:
    """Keeps the retention schedule as the setting says: ``keep_hours`` (0: none, keep every job)
    for the jobs of ``task_types``."""

    def __init__(self, repository: ScheduleRepository, clock: Clock, signal: WorkSignal | None = None, *,
                 keep_hours: int, task_types: Sequence[str]) -> None:
        if keep_hours < 0:
            raise ValueError("keep_hours must not be negative")
        self._repository = repository
        self._clock = clock
        self._signal = signal
        self._keep_hours = keep_hours
        self._task_types = list(task_types)

    @property
    def keep_hours(self) -> int:
        """How long the jobs are kept after they ended, in hours; 0: for ever."""
        return self._keep_hours

    @property
    def payload(self) -> dict[str, object]:
        """The payload the retention schedule should have."""
        return {"keep_hours": self._keep_hours, "task_types": self._task_types}

    async def keep(self, tries: int = 3) -> Kept:
        """Make the stored retention schedule what the setting says, once however many replicas
        do it at once; :attr:`Kept.BUSY` when it could not yet (ask again a little later)."""
        for _ in range(tries):
            stored = await self._repository.get(RETENTION_ID)
            if stored is not None and stored.task_type != RETENTION:
                raise RuntimeError(f"schedule {RETENTION_ID} is a {stored.task_type}, not the retention")
            kept = await (self._switch_off(stored) if not self._keep_hours else self._put(stored))
            if kept is not None:
                return kept
        return Kept.BUSY

    async def _switch_off(self, stored: Schedule | None) -> Kept | None:
        if stored is None or stored.status not in LIVE_STATUSES:
            return Kept.OFF
        return Kept.SWITCHED_OFF if await self._cancel(stored) else None

    async def _put(self, stored: Schedule | None) -> Kept | None:
        if stored is None:
            try:
                await self._add()
            except DuplicateSchedule:
                return None  # another replica made it meanwhile: read it
            return Kept.CREATED
        if stored.status in (ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING) and self._as_wanted(stored):
            return Kept.CURRENT
        if stored.status is ScheduleStatus.RUNNING:
            return Kept.BUSY  # its run ends within RUN_TIMEOUT; its outcome is written as it read it
        if stored.status in LIVE_STATUSES and not await self._cancel(stored):
            return None
        # Only this schedule is of its type: delete it (whatever ended it) and make it afresh.
        await self._repository.delete_finished(before=self._clock.now() + timedelta(days=1), statuses=FINISHED,
                                               limit=10, task_types=[RETENTION])
        try:
            await self._add()
        except DuplicateSchedule:
            return None
        return Kept.REPLACED

    def _as_wanted(self, stored: Schedule) -> bool:
        return (stored.payload == self.payload and isinstance(stored.trigger, IntervalTrigger)
                and stored.trigger.every == INTERVAL)

    async def _cancel(self, stored: Schedule) -> bool:
        version, status = stored.updated_at, stored.status
        stored.cancel(now=self._clock.now())
        return await self._repository.save(stored, expected_status=status, expected_updated_at=version)

    async def _add(self) -> None:
        now = self._clock.now()
        trigger = IntervalTrigger(INTERVAL, now + timedelta(minutes=1))  # not in the middle of a start-up
        first = trigger.next_fire_time(now)  # the anchor, to the millisecond the stores keep
        assert first is not None
        await self._repository.add(Schedule.create(
            id=RETENTION_ID, task_type=RETENTION, payload=self.payload, trigger=trigger,
            timezone="UTC", first_run_at=first, now=now,
            # A run that fails is not retried: the next one, INTERVAL later, does the same work.
            retry=RetryPolicy(max_attempts=1), misfire=MisfirePolicy(grace=None, coalesce=True)))
        if self._signal is not None:
            self._signal.notify(first)

