"""When a schedule runs next (``cronjob.domain.upcoming``): the times it shows are the times the
domain then runs it at.

The oracle is the state machine itself: a copy of the schedule is run through ``claim``,
``catch_up``, ``mark_started`` and ``succeed`` (or ``miss``, when the dispatcher would find it
too late: beyond its misfire grace or ``send_by``) with a clock that moves to each due time (or
stays, when that is past), as the dispatcher runs it, and the due times it runs at are compared
with what :func:`upcoming_runs` said beforehand. Schedules come with a history (runs, retries,
pauses, run now, deferrals, a run in progress) in zones with daylight saving time, often around
its transitions (São Paulo's historical DST, Berlin, New York), on every kind of rule, some of
them ending (``BoundedTrigger``: a rule with ``until``), some with a misfire grace (zero
included) and one-offs with a ``send_by``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.errors import InvalidTransition
from cronjob.domain.message import ErrorInfo
from cronjob.domain.recurring import LAST_DAY, CalendarTrigger, CronTrigger, IntervalTrigger
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import MisfirePolicy, Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger, Trigger
from cronjob.domain.upcoming import preview, upcoming_runs, waits_to_retry
from cronjob.domain.window import WindowTrigger
from cronjob_adapters.cron import CronsimEvaluator

S = ScheduleStatus
EVALUATOR = CronsimEvaluator()
ZONES = ("America/Sao_Paulo", "Europe/Berlin", "America/New_York")
ENDED = (S.SUCCEEDED, S.DEAD, S.UNKNOWN, S.MISSED, S.CANCELLED)
LEASE = timedelta(seconds=30)
MS = timedelta(milliseconds=1)
ERROR = ErrorInfo("500", "down", retryable=True)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---------------------------------------------------------------- running it through the domain

def run_through_the_domain(schedule: Schedule, now: datetime, count: int) -> list[datetime]:
    """The due times a copy of ``schedule`` goes through when, from ``now`` on, nothing else
    changes and each run succeeds when it is due (at once when that is past), as the dispatcher
    runs it: claim, catch up, start, succeed. A paused one is resumed at ``now``; a run in
    progress ends at ``now``."""
    copy = schedule.copy()
    clock = now
    if copy.status is S.PAUSED:
        copy.resume(now=clock)
    elif copy.status is S.RUNNING:
        assert copy.lease is not None
        copy.succeed(attempt_id=copy.lease.attempt_id, now=clock)
    due: list[datetime] = []
    claims = 0
    while copy.status is S.SCHEDULED and len(due) < count:
        assert copy.next_run_at is not None
        at = copy.next_run_at
        clock = max(clock, at)
        claims += 1
        attempt = f"simulated-{claims}"
        copy.claim(owner="simulation", attempt_id=attempt, now=clock, until=clock + LEASE)
        copy.catch_up(clock)
        if (reason := copy.misfire_reason(clock)) is not None:  # too late: it is missed, not run
            copy.miss(attempt_id=attempt, now=clock, reason=reason)
            continue
        due.append(at)
        copy.mark_started(attempt_id=attempt, now=clock)
        copy.succeed(attempt_id=attempt, now=clock)
    return due


def missed_when_claimed(schedule: Schedule, now: datetime) -> bool:
    """Whether a ``scheduled`` schedule's next run, claimed when due (at once when that is past),
    is too late to run (beyond its misfire grace or ``send_by``): the dispatcher misses it."""
    copy = schedule.copy()
    assert copy.next_run_at is not None
    clock = max(now, copy.next_run_at)
    copy.claim(owner="simulation", attempt_id="probe", now=clock, until=clock + LEASE)
    copy.catch_up(clock)
    return copy.misfire_reason(clock) is not None


def is_fire_time(trigger: Trigger, instant: datetime) -> bool:
    # Fire times are whole milliseconds: none lies strictly between ``instant - 1 ms`` and ``instant``.
    return trigger.next_fire_time(instant - MS) == instant


# ---------------------------------------------------------------- strategies

@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The UTC offset changes of ``zone`` in 2000-2030, to the minute (a daily scan, then bisection)."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    day = utc(2000, 1, 1)
    while day < utc(2030, 1, 1):
        following = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = day, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        day = following
    return tuple(found)


ANY_INSTANT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(UTC))


@st.composite
def moments(draw: st.DrawFn, zone: str) -> datetime:
    """Anywhere in 2000-2030, or within two days before one of ``zone``'s DST transitions (São
    Paulo has none after 2019)."""
    if draw(st.booleans()):
        return (draw(st.sampled_from(transitions(zone)))
                - timedelta(seconds=draw(st.integers(0, 2 * 86_400)), microseconds=draw(st.integers(0, 999_999))))
    return draw(ANY_INSTANT)


#: Times of day, often where the clocks jump (midnight in São Paulo, 02:00-03:00 elsewhere).
TIMES = st.one_of(
    st.builds(time, st.sampled_from([0, 1, 2, 3, 23]), st.sampled_from([0, 15, 30, 59]), st.sampled_from([0, 30])),
    st.times().map(lambda t: t.replace(microsecond=0)),
)
CRONS = st.one_of(
    st.sampled_from(["30 2 * * *", "0 0 * * *", "*/15 * * * *", "0 9 * * MON-FRI", "30 1 * * 0",
                     "0 */6 * * *", "15 3 1 * *", "* 2 * * *", "0,30 0-3 * * *"]),
    st.builds("{} {} * * *".format, st.integers(0, 59), st.integers(0, 23)),
)
EVERY = st.one_of(st.integers(1, 3 * 86_400), st.sampled_from([60, 900, 3600, 86_400])).map(
    lambda seconds: timedelta(seconds=seconds))
#: How long until the next step: often nothing or a little, sometimes days.
PAUSES = st.one_of(st.just(timedelta(0)), st.integers(1, 3_600_000).map(lambda ms: ms * MS),
                   st.integers(1, 4 * 86_400).map(lambda s: timedelta(seconds=s)))


@st.composite
def rules(draw: st.DrawFn, zone: str, start: datetime) -> Trigger:
    kind = draw(st.sampled_from(["interval", "calendar", "monthly", "window", "cron", "once"]), label="kind")
    trigger: Trigger
    if kind == "interval":
        trigger = IntervalTrigger(draw(EVERY, label="every"), start + draw(PAUSES, label="anchor"))
    elif kind == "calendar":
        weekdays = draw(st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1, max_size=6)))
        trigger = CalendarTrigger(draw(TIMES, label="at"), zone, weekdays)
    elif kind == "monthly":
        days = draw(st.frozensets(st.one_of(st.integers(1, 31), st.just(LAST_DAY)), min_size=1, max_size=4),
                    label="days of the month")
        trigger = CalendarTrigger(draw(TIMES, label="at"), zone, month_days=days)
    elif kind == "window":
        opens = draw(TIMES, label="opens")
        trigger = WindowTrigger(draw(EVERY.filter(lambda every: every < timedelta(days=1)), label="every"), opens,
                                draw(TIMES.filter(lambda closes: closes != opens), label="closes"), zone)
    elif kind == "cron":
        trigger = CronTrigger(draw(CRONS, label="cron"), zone, EVALUATOR)
    else:
        trigger = OnceTrigger(start + draw(PAUSES, label="at"))
    if trigger.recurring and draw(st.booleans(), label="ends"):
        trigger = BoundedTrigger(rule=trigger, until=start + draw(PAUSES, label="until"))
    return trigger


def _run(schedule: Schedule, at: datetime, finish: Callable[[Schedule, str, datetime], None]) -> datetime:
    """Claim it when due (or at ``at``, if later), as the dispatcher does, and ``finish`` the run
    (or miss it, when it is too late to run)."""
    assert schedule.next_run_at is not None
    when = max(at, schedule.next_run_at)
    attempt = f"a{len(schedule.attempts)}-{when.timestamp()}"
    schedule.claim(owner="replica", attempt_id=attempt, now=when, until=when + LEASE)
    schedule.catch_up(when)
    if (reason := schedule.misfire_reason(when)) is not None:
        schedule.miss(attempt_id=attempt, now=when, reason=reason)
        return when
    schedule.mark_started(attempt_id=attempt, now=when)
    finish(schedule, attempt, when)
    return when


STEPS = ("run", "fail_and_retry", "fail_for_good", "pause", "resume", "run_now", "defer", "start", "finish",
         "cancel")


@st.composite
def histories(draw: st.DrawFn) -> tuple[Schedule, datetime]:
    """A schedule after a few of :data:`STEPS` (each at a later time, skipped where its status
    does not allow it), and the ``now`` at which to look at it (at or after the last step)."""
    zone = draw(st.sampled_from(ZONES), label="zone")
    start = draw(moments(zone), label="start")
    trigger = draw(rules(zone, start), label="rule")
    first = trigger.at if isinstance(trigger, OnceTrigger) else trigger.next_fire_time(start)
    if first is None:  # a rule that ended before it began: never scheduled
        first = start + timedelta(hours=1)
        trigger = OnceTrigger(first)
    grace = draw(st.one_of(st.none(), st.just(timedelta(0)), PAUSES), label="misfire grace")
    send_by = None
    if not trigger.recurring and draw(st.booleans(), label="with send_by"):
        send_by = first + draw(PAUSES, label="send_by after send_at")
    schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=trigger, timezone=zone,
                               first_run_at=first, now=start, send_by=send_by,
                               misfire=MisfirePolicy(grace=grace, coalesce=draw(st.booleans(), label="coalesce")))
    clock = start
    for step in draw(st.lists(st.sampled_from(STEPS), max_size=6), label="steps"):
        clock += draw(PAUSES, label="pause")
        status = schedule.status
        if status is S.SCHEDULED and step == "run":
            clock = _run(schedule, clock, lambda s, a, t: s.succeed(attempt_id=a, now=t))
        elif status is S.SCHEDULED and step in ("fail_and_retry", "fail_for_good"):
            delay = draw(PAUSES, label="retry delay") + timedelta(seconds=1)
            clock = _run(schedule, clock, lambda s, a, t: s.fail(
                attempt_id=a, now=t, error=ERROR,
                decision=RetryDecision(t + delay if step == "fail_and_retry" else None, step)))
        elif status is S.SCHEDULED and step == "defer":
            delay = draw(PAUSES, label="deferred for")
            clock = _run(schedule, clock, lambda s, a, t: s.defer(attempt_id=a, now=t, until=t + delay))
        elif status is S.SCHEDULED and step == "start":
            clock = _run(schedule, clock, lambda s, a, t: None)
        elif status is S.RUNNING and step == "finish":
            assert schedule.lease is not None
            schedule.succeed(attempt_id=schedule.lease.attempt_id, now=clock)
        elif status is S.SCHEDULED and step == "pause":
            schedule.pause(now=clock)
        elif status is S.PAUSED and step == "resume":
            schedule.resume(now=clock)
        elif status is S.SCHEDULED and step == "run_now" and (schedule.send_by is None or clock <= schedule.send_by):
            schedule.run_now(now=clock)  # (past its send_by, it is refused)
        elif step == "cancel" and schedule.cancellable:
            schedule.cancel(now=clock)
    now = clock + draw(PAUSES, label="now after the last step")
    event(f"{schedule.status.value}{' waiting to retry' if waits_to_retry(schedule, now) else ''}")
    if schedule.status is S.SCHEDULED:
        event(f"next run missed when claimed: {missed_when_claimed(schedule, now)}")
    return schedule, now


COUNTS = st.integers(1, 8)


# ---------------------------------------------------------------- properties

@PROPS
@given(history=histories(), count=COUNTS)
def test_the_runs_shown_are_the_runs_the_domain_then_makes(history: tuple[Schedule, datetime], count: int) -> None:
    schedule, now = history
    shown = upcoming_runs(schedule, now, count)
    assert shown == run_through_the_domain(schedule, now, count)
    assert len(shown) <= count


@PROPS
@given(history=histories(), count=COUNTS)
def test_runs_increase_and_are_the_rule_s_fire_times_after_the_first(
        history: tuple[Schedule, datetime], count: int) -> None:
    schedule, now = history
    shown = upcoming_runs(schedule, now, count)
    assert all(a < b for a, b in zip(shown[1:], shown[2:], strict=False))
    if len(shown) >= 2 and shown[0] >= shown[1]:
        # The documented exception: what fell due while a retry (or a deferred run) waited runs
        # right after it, each occurrence, when the schedule does not coalesce.
        assert schedule.next_run_at != schedule.occurrence
        assert not schedule.misfire.coalesce
    for index, run in enumerate(shown):
        assert run.utcoffset() == timedelta(0)
        # The first may be a retry's time, a deferred run's or one run now: the rest are the rule's.
        if index or schedule.status is S.RUNNING:
            assert is_fire_time(schedule.trigger, run), run


@PROPS
@given(history=histories(), count=COUNTS)
def test_the_first_is_when_the_schedule_is_due_or_would_be_once_resumed(
        history: tuple[Schedule, datetime], count: int) -> None:
    schedule, now = history
    shown = upcoming_runs(schedule, now, count)
    if schedule.status is S.SCHEDULED:
        if missed_when_claimed(schedule, now):  # too late: not shown, nor a retry
            assert not waits_to_retry(schedule, now)
            if not schedule.trigger.recurring:
                assert shown == []
        else:
            assert shown[0] == schedule.next_run_at  # overdue (it runs at once) or not
    elif schedule.status is S.PAUSED:
        resumed = schedule.copy()
        resumed.resume(now=now)
        if resumed.status is S.MISSED:  # its rule ended while it was paused: nothing is left to run
            assert shown == [] and not waits_to_retry(schedule, now)
        elif missed_when_claimed(resumed, now):
            assert not waits_to_retry(schedule, now)
        else:
            assert shown[0] == resumed.next_run_at
            assert waits_to_retry(schedule, now) == bool(resumed.attempts_for_occurrence)
    elif schedule.status is S.RUNNING and not schedule.trigger.recurring:
        assert shown == []
    elif schedule.status in ENDED:
        assert shown == []
    if waits_to_retry(schedule, now):
        assert schedule.attempts_for_occurrence and shown[0] == schedule.next_run_at


@PROPS
@given(history=histories(), shorter=COUNTS, longer=COUNTS)
def test_fewer_runs_are_the_first_of_more(history: tuple[Schedule, datetime], shorter: int, longer: int) -> None:
    schedule, now = history
    shorter, longer = sorted((shorter, longer))
    assert upcoming_runs(schedule, now, shorter) == upcoming_runs(schedule, now, longer)[:shorter]
    assert upcoming_runs(schedule, now, 0) == []


@PROPS
@given(zone=st.sampled_from(ZONES), data=st.data(), count=COUNTS)
def test_a_preview_is_what_the_schedule_created_then_runs_at(zone: str, data: st.DataObject, count: int) -> None:
    now = data.draw(moments(zone), label="now")
    trigger = data.draw(rules(zone, now), label="rule")
    first = trigger.at if isinstance(trigger, OnceTrigger) else trigger.next_fire_time(now)
    if first is None:
        return
    shown = preview(trigger, first, count)
    created = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=trigger, timezone=zone,
                              first_run_at=first, now=now)
    assert shown == upcoming_runs(created, now, count) == run_through_the_domain(created, now, count)
    assert shown[0] == first and all(is_fire_time(trigger, run) for run in shown)
    assert all(a < b for a, b in zip(shown, shown[1:], strict=False))


# ---------------------------------------------------------------- examples

def daily(at: time, zone: str, first_after: datetime, *, coalesce: bool = True,
          trigger: Trigger | None = None) -> Schedule:
    rule = trigger or CalendarTrigger(at, zone)
    first = rule.next_fire_time(first_after)
    assert first is not None
    return Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=rule, timezone=zone,
                           first_run_at=first, now=first_after, misfire=MisfirePolicy(coalesce=coalesce))


def local(runs: list[datetime], zone: str) -> list[str]:
    return [run.astimezone(ZoneInfo(zone)).isoformat() for run in runs]


@pytest.mark.parametrize(("zone", "at", "after", "expected"), [
    # Berlin springs forward on 2026-03-29 (02:00 -> 03:00): 02:30 runs at 03:00 that day.
    ("Europe/Berlin", time(2, 30), utc(2026, 3, 27, 12),
     ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    # ... and falls back on 2026-10-25 (03:00 -> 02:00): 02:30 runs once, on the first pass.
    ("Europe/Berlin", time(2, 30), utc(2026, 10, 24, 12),
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    # New York springs forward on 2026-03-08 at 02:00.
    ("America/New_York", time(2, 0), utc(2026, 3, 7, 12),
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]),
    # São Paulo's DST began at midnight (2018-11-04 00:00 -> 01:00) until 2019.
    ("America/Sao_Paulo", time(0, 0), utc(2018, 11, 3, 12),
     ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"]),
])
def test_daily_runs_across_daylight_saving_time(zone: str, at: time, after: datetime, expected: list[str]) -> None:
    schedule = daily(at, zone, after)
    assert local(upcoming_runs(schedule, after, len(expected)), zone) == expected
    assert local(preview(schedule.trigger, schedule.next_run_at or after, len(expected)), zone) == expected


def test_a_cron_rule_in_new_york_across_the_fold() -> None:
    rule = CronTrigger("30 1 * * *", "America/New_York", EVALUATOR)
    schedule = daily(time(1, 30), "America/New_York", utc(2026, 10, 31, 12), trigger=rule)
    assert local(upcoming_runs(schedule, utc(2026, 10, 31, 12), 3), "America/New_York") == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]


def test_a_one_off_runs_once_and_not_at_all_once_it_runs_or_ended() -> None:
    at = utc(2030, 1, 15, 12)
    schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(at),
                               timezone="UTC", first_run_at=at, now=at - timedelta(days=1))
    assert upcoming_runs(schedule, at - timedelta(days=1), 5) == [at]
    assert upcoming_runs(schedule, at + timedelta(hours=1), 5) == [at]  # overdue: it runs at once
    schedule.claim(owner="r", attempt_id="a1", now=at, until=at + LEASE)
    assert upcoming_runs(schedule, at, 5) == []
    schedule.succeed(attempt_id="a1", now=at)
    assert upcoming_runs(schedule, at, 5) == []


def test_an_overdue_schedule_runs_now_then_coalesces_or_runs_each_missed_occurrence() -> None:
    after = utc(2026, 1, 10, 12)
    for coalesce, expected in [(True, [utc(2026, 1, 11, 9), utc(2026, 1, 14, 9), utc(2026, 1, 15, 9)]),
                               (False, [utc(2026, 1, 11, 9), utc(2026, 1, 12, 9), utc(2026, 1, 13, 9)])]:
        schedule = daily(time(9, 0), "UTC", after, coalesce=coalesce)
        assert upcoming_runs(schedule, utc(2026, 1, 13, 12), 3) == expected  # down since the 11th


def test_an_overdue_run_beyond_its_misfire_grace_is_not_shown_as_running() -> None:
    at = utc(2030, 1, 15, 12)
    for grace, late, expected in [(timedelta(minutes=10), timedelta(minutes=5), [at]),  # within: runs late
                                  (timedelta(minutes=10), timedelta(minutes=11), []),  # beyond: missed
                                  (timedelta(0), MS, [])]:
        schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(at),
                                   timezone="UTC", first_run_at=at, now=at - timedelta(days=1),
                                   misfire=MisfirePolicy(grace=grace))
        assert upcoming_runs(schedule, at + late, 5) == expected
        assert run_through_the_domain(schedule, at + late, 5) == expected


def test_a_one_off_past_its_send_by_is_not_shown() -> None:
    at = utc(2030, 1, 15, 12)
    schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(at),
                               timezone="UTC", first_run_at=at, now=at - timedelta(days=1),
                               send_by=at + timedelta(hours=1))
    assert upcoming_runs(schedule, at + timedelta(minutes=59), 5) == [at]
    assert upcoming_runs(schedule, at + timedelta(minutes=61), 5) == []
    schedule.pause(now=at - timedelta(hours=1))  # resumed after its send_by, it would be missed too
    assert upcoming_runs(schedule, at + timedelta(minutes=61), 5) == []


def test_an_overdue_recurring_schedule_is_judged_as_the_occurrence_it_catches_up_to() -> None:
    after, now = utc(2026, 1, 10, 12), utc(2026, 1, 13, 12)  # due at 09:00 daily, down since the 11th
    # Coalescing, the run at once is the 13th's (3 h late): within a 4 h grace it runs (shown
    # at the time it was due), beyond a 1 h grace it is missed and the 14th's comes next.
    for grace, expected in [(timedelta(hours=4), [utc(2026, 1, 11, 9), utc(2026, 1, 14, 9)]),
                            (timedelta(hours=1), [utc(2026, 1, 14, 9), utc(2026, 1, 15, 9)])]:
        schedule = daily(time(9, 0), "UTC", after)
        schedule.misfire = MisfirePolicy(grace=grace)
        assert upcoming_runs(schedule, now, 2) == expected == run_through_the_domain(schedule, now, 2)
    # Not coalescing, with a day's grace: the 11th's and the 12th's are missed, the 13th's runs.
    schedule = daily(time(9, 0), "UTC", after, coalesce=False)
    schedule.misfire = MisfirePolicy(grace=timedelta(days=1), coalesce=False)
    expected = [utc(2026, 1, 13, 9), utc(2026, 1, 14, 9), utc(2026, 1, 15, 9)]
    assert upcoming_runs(schedule, now, 3) == expected == run_through_the_domain(schedule, now, 3)


def test_a_retry_too_late_to_run_is_missed_and_not_marked_as_a_retry() -> None:
    rule = IntervalTrigger(timedelta(hours=1), utc(2026, 1, 1))
    schedule = daily(time(0, 0), "UTC", utc(2026, 1, 1, 9, 30), trigger=rule)  # 10:00
    schedule.misfire = MisfirePolicy(grace=timedelta(minutes=10))
    schedule.claim(owner="r", attempt_id="a1", now=utc(2026, 1, 1, 10), until=utc(2026, 1, 1, 10) + LEASE)
    schedule.fail(attempt_id="a1", now=utc(2026, 1, 1, 10), error=ERROR,
                  decision=RetryDecision(utc(2026, 1, 1, 11, 30), "retry"))
    assert waits_to_retry(schedule, utc(2026, 1, 1, 11, 35))
    assert upcoming_runs(schedule, utc(2026, 1, 1, 11, 35), 2) == [utc(2026, 1, 1, 11, 30), utc(2026, 1, 1, 12)]
    # At 12:10 the retry is 40 min late: missed, and the next run is 13:00's occurrence.
    assert not waits_to_retry(schedule, utc(2026, 1, 1, 12, 10))
    assert upcoming_runs(schedule, utc(2026, 1, 1, 12, 10), 2) == [utc(2026, 1, 1, 13), utc(2026, 1, 1, 14)]
    assert run_through_the_domain(schedule, utc(2026, 1, 1, 12, 10), 2) == [utc(2026, 1, 1, 13), utc(2026, 1, 1, 14)]


def test_a_paused_recurring_schedule_that_fell_due_runs_next_at_its_first_occurrence_after_now() -> None:
    schedule = daily(time(9, 0), "Europe/Berlin", utc(2026, 3, 1, 12))  # due 2026-03-02 08:00Z
    schedule.pause(now=utc(2026, 3, 1, 12))
    assert upcoming_runs(schedule, utc(2026, 3, 1, 13), 2) == [utc(2026, 3, 2, 8), utc(2026, 3, 3, 8)]
    assert upcoming_runs(schedule, utc(2026, 3, 5, 13), 2) == [utc(2026, 3, 6, 8), utc(2026, 3, 7, 8)]
    with pytest.raises(InvalidTransition):  # unchanged: nothing was resumed
        schedule.pause(now=utc(2026, 3, 5, 13))


def test_a_retry_comes_first_and_coalesces_the_occurrences_it_outlasted() -> None:
    rule = IntervalTrigger(timedelta(hours=1), utc(2026, 1, 1))
    for coalesce in (True, False):
        schedule = daily(time(0, 0), "UTC", utc(2026, 1, 1, 9, 30), coalesce=coalesce, trigger=rule)  # 10:00
        schedule.claim(owner="r", attempt_id="a1", now=utc(2026, 1, 1, 10), until=utc(2026, 1, 1, 10) + LEASE)
        schedule.fail(attempt_id="a1", now=utc(2026, 1, 1, 10), error=ERROR,
                      decision=RetryDecision(utc(2026, 1, 1, 11, 30), "retry"))
        assert waits_to_retry(schedule, utc(2026, 1, 1, 10, 5))
        runs = upcoming_runs(schedule, utc(2026, 1, 1, 10, 5), 3)
        if coalesce:  # 11:00 passed while the retry waited: the next run is 12:00
            assert runs == [utc(2026, 1, 1, 11, 30), utc(2026, 1, 1, 12), utc(2026, 1, 1, 13)]
        else:  # 11:00 runs right after the retry
            assert runs == [utc(2026, 1, 1, 11, 30), utc(2026, 1, 1, 11), utc(2026, 1, 1, 12)]
        schedule.pause(now=utc(2026, 1, 1, 10, 5))  # paused, the retry stays unless it falls due
        assert waits_to_retry(schedule, utc(2026, 1, 1, 11))
        assert not waits_to_retry(schedule, utc(2026, 1, 1, 12, 10))
        assert upcoming_runs(schedule, utc(2026, 1, 1, 12, 10), 1) == [utc(2026, 1, 1, 13)]


def test_a_recurring_run_in_progress_is_followed_by_the_next_occurrence() -> None:
    schedule = daily(time(9, 0), "UTC", utc(2026, 1, 10, 12))
    schedule.claim(owner="r", attempt_id="a1", now=utc(2026, 1, 11, 9), until=utc(2026, 1, 11, 9) + LEASE)
    assert upcoming_runs(schedule, utc(2026, 1, 11, 9, 1), 2) == [utc(2026, 1, 12, 9), utc(2026, 1, 13, 9)]
    # A run that lasts past the next occurrence: that one is coalesced away.
    assert upcoming_runs(schedule, utc(2026, 1, 12, 10), 1) == [utc(2026, 1, 13, 9)]


def test_a_rule_that_ends_ends_the_list() -> None:
    rule = BoundedTrigger(rule=CalendarTrigger(time(9, 0), "UTC"), until=utc(2026, 1, 12, 9))
    schedule = daily(time(9, 0), "UTC", utc(2026, 1, 10, 12), trigger=rule)
    assert upcoming_runs(schedule, utc(2026, 1, 10, 12), 5) == [utc(2026, 1, 11, 9), utc(2026, 1, 12, 9)]
    assert preview(rule, utc(2026, 1, 11, 9), 5) == [utc(2026, 1, 11, 9), utc(2026, 1, 12, 9)]
    schedule.pause(now=utc(2026, 1, 10, 12))
    # Resumed before its end, it skips what fell due and runs the occurrences left.
    assert upcoming_runs(schedule, utc(2026, 1, 11, 12), 5) == [utc(2026, 1, 12, 9)]
    # Resumed once the rule ended, nothing is left to run: it ends (missed), running nothing.
    assert upcoming_runs(schedule, utc(2026, 1, 20), 5) == []
    schedule.resume(now=utc(2026, 1, 20))
    assert schedule.status is S.MISSED and schedule.next_run_at is None
    assert [e.type for e in schedule.events[-2:]] == ["resumed", "missed"]
    assert schedule.last_error is not None and "its rule ended while it was paused" in schedule.last_error.message


def test_a_run_that_outlasts_the_end_of_its_rule_is_its_last() -> None:
    rule = BoundedTrigger(rule=IntervalTrigger(timedelta(hours=1), utc(2026, 1, 1)), until=utc(2026, 1, 1, 12))
    schedule = daily(time(0, 0), "UTC", utc(2026, 1, 1, 9, 30), trigger=rule)  # 10:00
    schedule.claim(owner="r", attempt_id="a1", now=utc(2026, 1, 1, 10), until=utc(2026, 1, 1, 10) + LEASE)
    # It ends at 13:00, when 11:00 and 12:00 have passed and the rule has ended: what fell due
    # while it ran is skipped (coalescing), as it is for a rule that goes on, so nothing follows.
    assert upcoming_runs(schedule, utc(2026, 1, 1, 13), 5) == []
    assert run_through_the_domain(schedule, utc(2026, 1, 1, 13), 5) == []
    # Ending at 11:30, the 11:00 occurrence is skipped and 12:00, the last, runs.
    assert upcoming_runs(schedule, utc(2026, 1, 1, 11, 30), 5) == [utc(2026, 1, 1, 12)]
    assert run_through_the_domain(schedule, utc(2026, 1, 1, 11, 30), 5) == [utc(2026, 1, 1, 12)]


@pytest.mark.parametrize("status", ENDED)
def test_an_ended_schedule_runs_no_more(status: ScheduleStatus) -> None:
    schedule = daily(time(9, 0), "UTC", utc(2026, 1, 10, 12))
    if status is S.CANCELLED:
        schedule.cancel(now=utc(2026, 1, 10, 12))
    else:
        schedule.trigger = OnceTrigger(utc(2026, 1, 11, 9))  # only a one-off ends in the others
        schedule.claim(owner="r", attempt_id="a1", now=utc(2026, 1, 11, 9), until=utc(2026, 1, 11, 9) + LEASE)
        finish: dict[ScheduleStatus, Callable[[datetime], None]] = {
            S.SUCCEEDED: lambda t: schedule.succeed(attempt_id="a1", now=t),
            S.DEAD: lambda t: schedule.fail(attempt_id="a1", now=t, error=ERROR,
                                            decision=RetryDecision(None, "gave up")),
            S.UNKNOWN: lambda t: schedule.outcome_unknown(attempt_id="a1", now=t, error=ERROR),
            S.MISSED: lambda t: schedule.miss(attempt_id="a1", now=t, reason="late"),
        }
        finish[status](utc(2026, 1, 11, 9))
    assert schedule.status is status
    assert upcoming_runs(schedule, utc(2026, 1, 12), 5) == []
    assert not waits_to_retry(schedule, utc(2026, 1, 12))
