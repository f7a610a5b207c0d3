"""When a schedule runs next, if nothing changes: the due times its rule and its state machine give,
for a schedule that exists (:func:`upcoming_runs`) and for a rule not yet scheduled (:func:`preview`)."""

from __future__ import annotations

from datetime import datetime

from cronjob.domain.schedule import WAITING, Schedule, ScheduleStatus
from cronjob.domain.trigger import Trigger


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

    The times increase, with one exception: a first run due after its occurrence (a retry, or a
    deferred run) can be followed by earlier times, due while it waited, which run right after
    it: every occurrence due meanwhile when the schedule does not coalesce. A misfire grace is
    not applied: an overdue run is shown as running.
    """
    if count < 1:
        return []
    runs: list[datetime] = []
    if schedule.status is ScheduleStatus.RUNNING:
        occurrence, clock = schedule.occurrence, now
    elif schedule.status in WAITING and schedule.next_run_at is not None:
        first, occurrence = schedule.next_run_at, schedule.occurrence
        clock = max(first, now)
        if schedule.status is ScheduleStatus.PAUSED and schedule.ends_on_resume(now):
            return []  # resumed now, it would end: its rule ended while it was paused
        if schedule.status is ScheduleStatus.PAUSED and (skipped_to := schedule.resume_skips_to(now)) is not None:
            first = occurrence = clock = skipped_to  # after now: nothing to catch up
        elif occurrence == first and not schedule.attempts_for_occurrence:  # not a retry: see catch_up
            occurrence = schedule.runs_as(first, clock)
        runs.append(first)
    else:
        return []
    while len(runs) < count and (due := schedule.occurrence_after(occurrence, clock)) is not None:
        runs.append(due)
        clock = max(clock, due)  # it runs when due, or right after the run before it
        occurrence = schedule.runs_as(due, clock)
    return runs


def waits_to_retry(schedule: Schedule, now: datetime) -> bool:
    """Whether the first of :func:`upcoming_runs` retries an occurrence already tried (and so
    need not be a time of the rule): a schedule that waits to retry, or a paused one that would
    still retry when resumed at ``now``."""
    if schedule.status not in WAITING or schedule.next_run_at is None:
        return False
    if schedule.status is ScheduleStatus.PAUSED and (
            schedule.ends_on_resume(now) or schedule.resume_skips_to(now) is not None):
        return False  # resumed, it skips the retry for its next occurrence, or ends
    return bool(schedule.attempts_for_occurrence)


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
