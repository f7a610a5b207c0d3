"""When a schedule runs next, if nothing changes: the due times its rule and its state machine give,
for a schedule that exists (:func:`upcoming_runs`) and for a rule not yet scheduled (:func:`preview`)."""

from __future__ import annotations

from datetime import datetime

from cronjob.domain.schedule import WAITING, Schedule, ScheduleStatus
from cronjob.domain.trigger import Trigger


#: At most this many runs in a row are judged missed (see ``_runs``).
_MAX_MISSES = 100


def upcoming_runs(schedule: Schedule, now: datetime, count: int) -> list[datetime]:
    """The times at which ``schedule`` is due for its next ``count`` runs from ``now`` on (fewer
    once its rule ends), in the order it runs them, if nothing changes and every run succeeds
    when it is due (at once when that is past), as the dispatcher runs it.

    - ``scheduled``: its ``next_run_at`` first (a time on its rule, a retry's time, or one
      overdue, which runs at once, as the latest occurrence due when it coalesces: see
      :meth:`Schedule.catch_up`), then the occurrences that follow, each computed as the
      schedule computes it when a run ends (:meth:`Schedule.occurrence_after`: what a late run
      passed by is coalesced, unless the schedule does not coalesce). A one-off runs once.
    - ``paused``: as if resumed at ``now`` (:meth:`Schedule.resume`: a recurring one whose next
      run fell due meanwhile runs next at its first occurrence after ``now``; none when its rule
      ended meanwhile: resumed, it ends ``missed``).
    - ``running``: the occurrences after the one that runs, as if its run ended at ``now``;
      none for a one-off.
    - ended (``succeeded``, ``dead``, ``unknown``, ``missed``, ``cancelled``): none.

    A run overdue beyond its misfire grace, or past its ``send_by``, is not shown: the
    dispatcher would end it ``missed`` (:meth:`Schedule.miss`), a one-off for good, a recurring
    one moving on to the occurrence that follows, which is shown if it runs.

    The times increase, with one exception: a first run due after its occurrence (a retry, or a
    deferred run) can be followed by earlier times, due while it waited, which run right after
    it: every occurrence due meanwhile when the schedule does not coalesce.
    """
    return next_runs(schedule, now, count)[0]


def waits_to_retry(schedule: Schedule, now: datetime) -> bool:
    """Whether the first of :func:`upcoming_runs` retries an occurrence already tried (and so
    need not be a time of the rule): a schedule that waits to retry, or a paused one that would
    still retry when resumed at ``now``; not when that retry would be missed (too late)."""
    return next_runs(schedule, now, 1)[1]


def next_runs(schedule: Schedule, now: datetime, count: int) -> tuple[list[datetime], bool]:
    """:func:`upcoming_runs` and, worked out with them, :func:`waits_to_retry` (for ``count`` > 0)."""
    runs = _runs(schedule, now, count)
    return [at for at, _ in runs], bool(runs) and runs[0][1]


def _runs(schedule: Schedule, now: datetime, count: int) -> list[tuple[datetime, bool]]:
    """:func:`upcoming_runs`, each with whether it retries an occurrence already tried."""
    if count < 1:
        return []
    # The run due next (``due``, of ``occurrence``, claimed at ``clock``), as the dispatcher
    # would claim it; ``kept`` when its time is kept apart from its occurrence (a retry's, a
    # deferred run's), so that it does not catch up.
    retry = kept = False
    if schedule.status is ScheduleStatus.RUNNING:  # from the occurrence after the one that runs
        due = occurrence = schedule.occurrence_after(schedule.occurrence, now)
        clock = now if due is None else max(due, now)
    elif schedule.status in WAITING and schedule.next_run_at is not None:
        due, occurrence = schedule.next_run_at, schedule.occurrence
        clock = max(due, now)
        retry = bool(schedule.attempts_for_occurrence)
        kept = retry or occurrence != due
        if schedule.status is ScheduleStatus.PAUSED and schedule.ends_on_resume(now):
            return []  # resumed now, it would end: its rule ended while it was paused
        if schedule.status is ScheduleStatus.PAUSED and (skipped_to := schedule.resume_skips_to(now)) is not None:
            due = occurrence = clock = skipped_to  # after now: nothing to catch up
            retry = kept = False  # a fresh occurrence
    else:
        return []
    runs: list[tuple[datetime, bool]] = []
    misses = 0
    # A miss skips to an occurrence that runs (see Schedule.occurrence_after_miss), so a few in
    # a row at most; the bound keeps a stored document no rule could make from looping forever.
    while due is not None and len(runs) < count and misses <= _MAX_MISSES:
        # An occurrence catches up (see Schedule.catch_up), and its lateness is judged by the
        # time it then runs as; a time kept apart is judged as it is.
        judged = due if kept else (occurrence := schedule.runs_as(due, clock))
        if schedule.misfire_reason(clock, judged) is None:
            runs.append((due, retry))
            due = schedule.occurrence_after(occurrence, clock)
        else:  # the dispatcher would end this one missed
            due = schedule.occurrence_after_miss(occurrence, clock)
            misses += 1
        if due is not None:
            clock = max(clock, due)  # it runs when due, or right after the run before it
            occurrence = due
        retry = kept = False
    return runs


def preview(trigger: Trigger, first_run_at: datetime, count: int) -> list[datetime]:
    """The first ``count`` run times (fewer once the rule ends) of a schedule on ``trigger`` that
    is first due at ``first_run_at`` (as the scheduling service computes it for a new schedule):
    that time, and each next fire time of the rule after it (every run on time; a one-off's
    rule fires once)."""
    if count < 1:
        return []
    runs = [first_run_at]
    while len(runs) < count and (following := trigger.next_fire_time(runs[-1])) is not None:
        runs.append(following)
    return runs
