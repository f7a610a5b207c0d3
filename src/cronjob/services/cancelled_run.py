"""Keeping the record of a run whose recurring schedule was cancelled while it was in progress.

The cancel took the run's lease, so the run's own write, fenced by it, is refused; but the run
went on, and its work (a message sent, a report made) may well be done. Its record is added to
the cancelled schedule instead, by the rule of the domain (:meth:`Schedule.keep_run`), in a
write without a lease: conditional on the schedule being ``cancelled`` at the version read.
"""

from __future__ import annotations

import asyncio
import logging

from cronjob.domain.schedule import RunRecord, Schedule, ScheduleEvent, ScheduleStatus
from cronjob.ports.clock import Clock
from cronjob.ports.events import EventPublisher
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable

log = logging.getLogger(__name__)


async def keep_cancelled_run(repository: ScheduleRepository, publisher: EventPublisher, clock: Clock,
                             run: Schedule, attempt_id: str, published_before: list[ScheduleEvent], *,
                             tries: int = 5, pause: tuple[float, float] = (0.2, 5.0)) -> RunRecord | None:
    """Add the record of the run ``attempt_id`` (``run``: the run's own copy, its outcome
    recorded, whose fenced write was just refused) to its schedule when that was cancelled while
    the run was in progress (:meth:`Schedule.awaits_run`); the record kept, or None when there
    is none to keep (the lease was taken over by another replica, the schedule deleted, the run
    recorded no attempt) or it could not be written.

    Its events go the publish-before-write way: ``published_before``, the outcome events the run
    published as if its schedule went on, are withdrawn (they will never be stored), and the
    record's outcome events, marked ``after_cancel``, published as the cancelled schedule's
    before the first write. The write is conditional on ``cancelled`` and the version read: a
    change made meanwhile (a provider's delivery status) is read again and the record added to
    it; a store that does not answer is asked again after ``pause`` (the first pause and the
    longest, doubling). At most ``tries`` of each; then it is given up, logged as a warning."""
    record: RunRecord | None = None
    outcome: list[ScheduleEvent] = []  # the record's events to deliver (started was, as the run began)
    published = False
    delay, longest = pause
    refused = failed = 0
    why = ""
    while refused < tries and failed < tries:
        try:
            stored = await repository.get(run.id)
            if stored is None or not stored.awaits_run(attempt_id):
                if record is not None and stored is not None and any(a.attempt_id == attempt_id
                                                                     for a in stored.attempts):
                    return record  # an earlier write went in, its answer lost
                why = "the schedule was deleted or changed otherwise meanwhile"
                break
            if record is None:
                record = run.run_record(attempt_id)
                if record is None:
                    break
                await publisher.withdraw(run, published_before)
                outcome = [e for e in record.events if e.type != "started"]
            version = stored.updated_at
            stored.keep_run(record, now=clock.now())
            if not published:
                published = await publisher.publish(stored, outcome)
            if await repository.save(stored, expected_status=ScheduleStatus.CANCELLED, expected_updated_at=version):
                if not published:  # some delivery could not be stored: once more, now that it is written
                    await publisher.publish(stored, outcome)
                return record
            refused += 1
            why = "it kept changing"
        except StoreUnavailable as error:
            failed += 1
            why = f"the store is unavailable ({type(error).__name__}: {error})"
            (log.warning if failed == 1 else log.debug)(
                "schedule %s attempt %s: the record of this run, cancelled while it ran, not kept yet: %s; trying "
                "again", run.id, attempt_id, why)
            if failed < tries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
    if record is not None:
        if refused >= tries:  # never written: its deliveries must not wait for it
            await publisher.withdraw(run, outcome)
        log.warning("schedule %s attempt %s: the record of this run, whose schedule was cancelled while it ran, "
                    "was not kept: %s", run.id, attempt_id, why)
    return None
