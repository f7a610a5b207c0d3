"""The Schedule state machine: the transition table, each method from each status, and random walks."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.errors import InvalidTransition, ValidationError
from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import RUN_NOW_KEY, MisfirePolicy, Schedule, ScheduleStatus, can_transition
from cronjob.domain.trigger import OnceTrigger, Trigger, require_aware

S = ScheduleStatus
T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
ERROR = ErrorInfo("131000", "something went wrong", retryable=True)
TERMINAL = {S.SUCCEEDED, S.DEAD, S.UNKNOWN, S.MISSED, S.CANCELLED}

#: The table the state machine is specified by (ScheduleStatus docstring and ARCHITECTURE).
EXPECTED_ALLOWED = {
    (S.SCHEDULED, S.RUNNING), (S.SCHEDULED, S.CANCELLED),
    (S.SCHEDULED, S.PAUSED), (S.PAUSED, S.SCHEDULED), (S.PAUSED, S.CANCELLED),  # held by a user, and let go
    (S.PAUSED, S.MISSED),  # let go after its rule ended (until): nothing left to run
    (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.DEAD), (S.RUNNING, S.UNKNOWN),
    (S.RUNNING, S.MISSED), (S.RUNNING, S.SCHEDULED),
    (S.RUNNING, S.CANCELLED),  # a recurring schedule, cancelled by a user while it runs
    (S.DEAD, S.SCHEDULED), (S.UNKNOWN, S.SCHEDULED), (S.MISSED, S.SCHEDULED),
}


@dataclass(frozen=True, slots=True)
class EveryTrigger(Trigger):
    """A small recurring trigger for these tests: every ``seconds`` from ``start``."""

    start: datetime
    seconds: int

    @property
    def expression(self) -> str:
        return f"every {self.seconds}s from {self.start.isoformat()}"

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        after = require_aware(after, "after")
        if after < self.start:
            return self.start
        steps = int((after - self.start).total_seconds() // self.seconds) + 1
        return self.start + timedelta(seconds=steps * self.seconds)


def new_schedule(trigger: Trigger | None = None, at: datetime = T0) -> Schedule:
    return Schedule.create(id="s1", task_type="whatsapp.text", payload={"to": "5511999999999"},
                           trigger=trigger or OnceTrigger(at), timezone="America/Sao_Paulo",
                           first_run_at=at, now=at - timedelta(minutes=1))


def claim(schedule: Schedule, attempt_id: str = "a1", now: datetime = T0, owner: str = "replica-a") -> None:
    schedule.claim(owner=owner, attempt_id=attempt_id, now=now, until=now + LEASE)


def in_status(status: ScheduleStatus) -> Schedule:
    """A one-off schedule in ``status`` (a running one holds lease ``a1`` until T0 + 30 s)."""
    schedule = new_schedule()
    if status is S.SCHEDULED:
        return schedule
    if status is S.CANCELLED:
        schedule.cancel(now=T0)
        return schedule
    if status is S.PAUSED:
        schedule.pause(now=T0)
        return schedule
    claim(schedule)
    if status is S.SUCCEEDED:
        schedule.succeed(attempt_id="a1", now=T0, provider_message_id="wamid.1")
    elif status is S.DEAD:
        schedule.fail(attempt_id="a1", now=T0, error=ERROR, decision=RetryDecision(None, "gave up"))
    elif status is S.UNKNOWN:
        schedule.outcome_unknown(attempt_id="a1", now=T0, error=ERROR)
    elif status is S.MISSED:
        schedule.miss(attempt_id="a1", now=T0, reason="too late")
    assert schedule.status is status
    return schedule


# -- the table -------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_can_transition_matches_the_specified_table(current: S, target: S) -> None:
    assert can_transition(current, target) is ((current, target) in EXPECTED_ALLOWED)


def test_succeeded_and_cancelled_are_final() -> None:
    for final in (S.SUCCEEDED, S.CANCELLED):
        assert not any(can_transition(final, target) for target in S)


# -- each method from each status ------------------------------------------------------------

LATER = T0 + timedelta(seconds=5)

#: method name -> (what it does, the status it leads to for a one-off schedule)
METHODS: dict[str, tuple[Callable[[Schedule], None], S]] = {
    "claim": (lambda s: claim(s, "a2", LATER, "replica-b"), S.RUNNING),
    "claim_after_lease_lapsed": (lambda s: claim(s, "a2", T0 + LEASE + timedelta(seconds=1), "replica-b"), S.RUNNING),
    "succeed": (lambda s: s.succeed(attempt_id="a1", now=LATER, provider_message_id="wamid.9"), S.SUCCEEDED),
    "fail_retry": (lambda s: s.fail(attempt_id="a1", now=LATER, error=ERROR,
                                    decision=RetryDecision(LATER + timedelta(seconds=10), "retry")), S.SCHEDULED),
    "fail_give_up": (lambda s: s.fail(attempt_id="a1", now=LATER, error=ERROR,
                                      decision=RetryDecision(None, "gave up")), S.DEAD),
    "outcome_unknown": (lambda s: s.outcome_unknown(attempt_id="a1", now=LATER, error=ERROR), S.UNKNOWN),
    "release": (lambda s: s.release(attempt_id="a1", now=LATER), S.SCHEDULED),
    "miss": (lambda s: s.miss(attempt_id="a1", now=LATER, reason="too late"), S.MISSED),
    "cancel": (lambda s: s.cancel(now=LATER), S.CANCELLED),
    "pause": (lambda s: s.pause(now=LATER), S.PAUSED),
    "resume": (lambda s: s.resume(now=LATER), S.SCHEDULED),
    "run_now": (lambda s: s.run_now(now=LATER), S.SCHEDULED),
}

#: (method, starting status) pairs that must work; every other pair must raise InvalidTransition.
WORKS = {
    ("claim", S.SCHEDULED),
    ("claim_after_lease_lapsed", S.SCHEDULED),
    ("claim_after_lease_lapsed", S.RUNNING),  # take-over of a lapsed lease
    ("succeed", S.RUNNING),
    ("fail_retry", S.RUNNING),
    ("fail_give_up", S.RUNNING),
    ("outcome_unknown", S.RUNNING),
    ("release", S.RUNNING),
    ("miss", S.RUNNING),
    ("cancel", S.SCHEDULED),
    ("cancel", S.PAUSED),
    ("pause", S.SCHEDULED),
    ("resume", S.PAUSED),
    ("run_now", S.SCHEDULED),
}


@pytest.mark.parametrize(("method", "start"), list(itertools.product(METHODS, S)))
def test_each_method_from_each_status(method: str, start: S) -> None:
    schedule = in_status(start)
    before = schedule.copy()
    action, target = METHODS[method]
    if (method, start) in WORKS:
        action(schedule)
        assert schedule.status is target
        # Every move a method makes is one the table allows (a take-over stays in running).
        assert start is target or can_transition(start, target)
    else:
        with pytest.raises(InvalidTransition):
            action(schedule)
        assert schedule == before, "a refused operation must leave the schedule unchanged"


def test_a_recurring_schedule_cancelled_while_it_runs_takes_the_run_s_lease_away() -> None:
    schedule = Schedule.create(id="r1", task_type="whatsapp.text", payload={}, timezone="UTC",
                               trigger=EveryTrigger(T0, 60), first_run_at=T0, now=T0)
    claim(schedule, "a1", T0, "replica-a")
    schedule.cancel(now=LATER)
    assert (schedule.status, schedule.lease, schedule.next_run_at) == (S.CANCELLED, None, None)
    assert schedule.events[-1].type == "cancelled" and schedule.events[-1].data == {"while_running": "a1"}
    with pytest.raises(InvalidTransition):  # the run's own outcome can no longer be recorded
        schedule.succeed(attempt_id="a1", now=LATER, provider_message_id="wamid.1")


def cancelled_while_running(*, pause_after_failures: int | None = None) -> tuple[Schedule, Schedule]:
    """A recurring schedule whose run ``a1`` started at T0: the cancelled schedule as stored
    (cancelled at T0 + 2 s) and the run's own copy, which knows nothing of the cancel."""
    schedule = Schedule.create(id="r1", task_type="whatsapp.text", payload={}, timezone="UTC",
                               trigger=EveryTrigger(T0, 60), first_run_at=T0, now=T0,
                               pause_after_failures=pause_after_failures)
    claim(schedule, "a1", T0, "replica-a")
    run = schedule.copy()
    run.mark_started(attempt_id="a1", now=T0)  # stored only with the run's outcome
    schedule.cancel(now=T0 + timedelta(seconds=2))
    return schedule, run


def test_a_schedule_cancelled_while_it_ran_keeps_that_run_s_record_and_stays_cancelled() -> None:
    stored, run = cancelled_while_running()
    run.succeed(attempt_id="a1", now=T0 + timedelta(seconds=5), provider_message_id="wamid.1",
                result={"wamid": "wamid.1"})
    assert stored.awaits_run("a1") and not stored.awaits_run("a2")
    record = run.run_record("a1")
    assert record is not None
    version = stored.updated_at
    stored.keep_run(record, now=T0 + timedelta(seconds=5))

    assert (stored.status, stored.next_run_at, stored.lease) == (S.CANCELLED, None, None)
    assert stored.updated_at > version
    [attempt] = stored.attempts
    assert (attempt.attempt_id, attempt.outcome, attempt.provider_message_id, attempt.finished_at) == (
        "a1", "succeeded", "wamid.1", T0 + timedelta(seconds=5))
    # In time order: started before the cancel, the outcome after it; started as it was published.
    assert [e.type for e in stored.events] == ["scheduled", "started", "cancelled", "succeeded"]
    assert stored.events[1] == run.events[-2]
    succeeded = stored.events[-1]
    assert succeeded.id != run.events[-1].id and succeeded.attempt_id == "a1"
    assert succeeded.data == {"wamid": "wamid.1", "provider_message_id": "wamid.1", "after_cancel": "true"}
    assert stored.result == {"wamid": "wamid.1", "provider_message_id": "wamid.1"} and stored.last_error is None
    assert not stored.awaits_run("a1") and stored.cancelled_while("a1")
    with pytest.raises(InvalidTransition):  # once
        stored.keep_run(record, now=T0 + timedelta(seconds=6))
    assert not stored.is_due(T0 + timedelta(hours=1))


@pytest.mark.parametrize(("decision", "outcome", "kept"), [
    (RetryDecision(T0 + timedelta(seconds=30), "retry"), "failed", ["failed"]),
    (RetryDecision(None, "permanent"), "failed", ["failed", "dead"]),
])
def test_a_failed_run_kept_after_a_cancel_says_nothing_of_what_would_have_come_next(
        decision: RetryDecision, outcome: str, kept: list[str]) -> None:
    stored, run = cancelled_while_running(pause_after_failures=1)
    run.fail(attempt_id="a1", now=T0 + timedelta(seconds=5), error=ERROR, decision=decision)
    record = run.run_record("a1")
    assert record is not None
    stored.keep_run(record, now=T0 + timedelta(seconds=5))
    assert [(a.outcome, a.error) for a in stored.attempts] == [(outcome, ERROR)] and stored.last_error == ERROR
    assert [e.type for e in stored.events[3:]] == kept  # no retrying, no paused (pause_after_failures)
    assert all(e.data["after_cancel"] == "true" and "next_run_at" not in e.data for e in stored.events[3:])
    assert (stored.status, stored.next_run_at) == (S.CANCELLED, None)


def test_only_the_run_a_cancel_took_the_lease_from_has_its_record_kept() -> None:
    stored, run = cancelled_while_running()
    run.succeed(attempt_id="a1", now=LATER, provider_message_id="wamid.1")
    record = run.run_record("a1")
    assert record is not None
    other = new_schedule(EveryTrigger(T0, 60))
    other.cancel(now=T0)  # cancelled while nothing ran
    scheduled = new_schedule(EveryTrigger(T0, 60))
    for schedule in (other, scheduled):
        before = schedule.copy()
        with pytest.raises(InvalidTransition):
            schedule.keep_run(record, now=LATER)
        assert schedule == before
    released = cancelled_while_running()[1]
    released.release(attempt_id="a1", now=LATER)
    assert released.run_record("a1") is None  # a run given back recorded no attempt: nothing to keep


def test_claim_sets_a_lease_and_finishing_clears_it() -> None:
    schedule = new_schedule()
    claim(schedule, "a1", T0, "replica-a")
    assert schedule.status is S.RUNNING
    assert schedule.lease is not None
    assert (schedule.lease.owner, schedule.lease.attempt_id) == ("replica-a", "a1")
    assert schedule.lease.until == T0 + LEASE
    schedule.succeed(attempt_id="a1", now=LATER, provider_message_id="wamid.1")
    assert schedule.lease is None
    assert schedule.next_run_at is None
    assert schedule.result == {"provider_message_id": "wamid.1"}
    [attempt] = schedule.attempts
    assert (attempt.number, attempt.outcome, attempt.owner, attempt.started_at, attempt.finished_at) == (
        1, "succeeded", "replica-a", T0, LATER)
    assert attempt.provider_message_id == "wamid.1"


def test_a_held_lease_cannot_be_claimed_but_a_lapsed_one_can() -> None:
    schedule = in_status(S.RUNNING)
    with pytest.raises(InvalidTransition):
        claim(schedule, "a2", T0 + LEASE, "replica-b")  # until >= now: still held
    claim(schedule, "a2", T0 + LEASE + timedelta(milliseconds=1), "replica-b")
    assert schedule.lease is not None and schedule.lease.owner == "replica-b"
    # The old attempt can no longer finish anything.
    with pytest.raises(InvalidTransition):
        schedule.succeed(attempt_id="a1", now=T0 + LEASE + timedelta(seconds=2))
    assert schedule.status is S.RUNNING and schedule.attempts == []


def test_a_run_that_took_a_lapsed_lease_says_so_whether_it_starts_or_is_missed() -> None:
    for finish in ("start", "miss"):
        schedule = in_status(S.RUNNING)
        claim(schedule, "a2", T0 + LEASE + timedelta(milliseconds=1), "replica-b")
        if finish == "start":
            schedule.mark_started(attempt_id="a2", now=T0 + LEASE)
        else:
            schedule.miss(attempt_id="a2", now=T0 + LEASE, reason="too late")
        assert schedule.events[-1].data["taken_over_from"] == "replica-a", finish
    fresh = in_status(S.RUNNING)
    fresh.miss(attempt_id="a1", now=T0, reason="too late")
    assert "taken_over_from" not in fresh.events[-1].data


@pytest.mark.parametrize("method", ["succeed", "fail_retry", "fail_give_up", "outcome_unknown", "release"])
def test_finishing_with_a_wrong_attempt_id_raises_and_changes_nothing(method: str) -> None:
    schedule = in_status(S.RUNNING)
    claim(schedule, "a-new", T0 + LEASE + timedelta(seconds=1), "replica-b")  # "a1" lost its lease
    before = schedule.copy()
    action, _ = METHODS[method]
    with pytest.raises(InvalidTransition):
        action(schedule)
    assert schedule == before


def test_attempts_are_numbered_per_occurrence() -> None:
    schedule = new_schedule()
    now = T0
    for n in range(1, 4):
        claim(schedule, f"a{n}", now)
        now += timedelta(seconds=1)
        schedule.fail(attempt_id=f"a{n}", now=now, error=ERROR, decision=RetryDecision(now + timedelta(seconds=5), "r"))
        now += timedelta(seconds=5)
        assert schedule.status is S.SCHEDULED and schedule.next_run_at == now
    claim(schedule, "a4", now)
    schedule.fail(attempt_id="a4", now=now, error=ERROR, decision=RetryDecision(None, "gave up"))
    assert [a.number for a in schedule.attempts] == [1, 2, 3, 4]
    assert [a.outcome for a in schedule.attempts] == ["retrying", "retrying", "retrying", "failed"]
    assert all(a.scheduled_for == T0 for a in schedule.attempts)
    assert schedule.status is S.DEAD and schedule.next_run_at is None
    assert schedule.last_error == ERROR


def test_a_recurring_schedule_restarts_numbering_at_each_occurrence() -> None:
    schedule = new_schedule(EveryTrigger(T0, 60))
    claim(schedule, "a1", T0)
    schedule.fail(attempt_id="a1", now=T0, error=ERROR, decision=RetryDecision(T0 + timedelta(seconds=5), "r"))
    claim(schedule, "a2", T0 + timedelta(seconds=5))
    schedule.succeed(attempt_id="a2", now=T0 + timedelta(seconds=6))
    assert schedule.status is S.SCHEDULED
    assert schedule.occurrence == schedule.next_run_at == T0 + timedelta(seconds=60)
    claim(schedule, "a3", T0 + timedelta(seconds=60))
    schedule.succeed(attempt_id="a3", now=T0 + timedelta(seconds=61))
    assert [(a.number, a.scheduled_for) for a in schedule.attempts] == [
        (1, T0), (2, T0), (1, T0 + timedelta(seconds=60))]
    assert schedule.delivery_key == f"s1:{(T0 + timedelta(seconds=120)).isoformat()}"


def test_a_recurring_schedule_skips_occurrences_missed_while_it_ran() -> None:
    schedule = new_schedule(EveryTrigger(T0, 60))
    claim(schedule, "a1", T0)
    schedule.succeed(attempt_id="a1", now=T0 + timedelta(seconds=185))
    assert schedule.next_run_at == T0 + timedelta(seconds=240)


def test_release_keeps_the_due_time_and_records_no_attempt() -> None:
    schedule = in_status(S.RUNNING)
    schedule.release(attempt_id="a1", now=LATER)
    assert schedule.status is S.SCHEDULED and schedule.lease is None
    assert schedule.next_run_at == T0 and schedule.attempts == []
    assert schedule.is_due(LATER)


def test_outcome_unknown_is_parked_not_due() -> None:
    schedule = in_status(S.UNKNOWN)
    assert schedule.next_run_at is None
    assert schedule.last_error == ERROR
    assert not schedule.is_due(T0 + timedelta(days=1))
    assert schedule.attempts[-1].outcome == "unknown"


@pytest.mark.parametrize(("after", "shown"), [(timedelta(0), "2030-01-15T12:00:00.001Z"),
                                              (timedelta(microseconds=400), "2030-01-15T12:00:00.001Z"),
                                              (timedelta(seconds=5), "2030-01-15T12:00:05.000Z")])
def test_an_operator_retry_is_a_new_occurrence_with_its_own_key(after: timedelta, shown: str) -> None:
    schedule = in_status(S.UNKNOWN)  # its run ended at T0, the occurrence it retries
    first_key = schedule.delivery_key
    schedule.retry_now(now=T0 + after)
    assert schedule.delivery_key != first_key
    assert schedule.occurrence is not None
    # Still distinct once a store keeps it to the millisecond.
    assert schedule.occurrence.replace(microsecond=schedule.occurrence.microsecond // 1000 * 1000) > T0
    assert schedule.next_run_at == schedule.occurrence == max(T0 + after, T0 + timedelta(milliseconds=1))
    assert schedule.events[-1].data == {"next_run_at": shown, "retried_from": "unknown"}


def test_a_waiting_schedule_moves_to_another_time_earlier_or_later() -> None:
    schedule = new_schedule()
    key = schedule.delivery_key
    moves = [(T0 + timedelta(hours=2), "2030-01-15T14:00:00.000Z", "2030-01-15T12:00:00.000Z"),
             (T0 - timedelta(minutes=30), "2030-01-15T11:30:00.000Z", "2030-01-15T14:00:00.000Z")]
    for at, shown, previous in moves:
        schedule.reschedule(trigger=OnceTrigger(at), first_run_at=at, timezone="UTC", now=LATER)
        assert schedule.next_run_at == schedule.occurrence == at and schedule.trigger == OnceTrigger(at)
        assert schedule.status is S.SCHEDULED and schedule.updated_at >= LATER and schedule.timezone == "UTC"
        assert schedule.delivery_key != key
        assert schedule.events[-1].type == "scheduled"
        assert schedule.events[-1].data == {"next_run_at": shown, "rescheduled_from": previous}


def test_a_paused_schedule_is_held_and_resumes_where_it_was() -> None:
    schedule = new_schedule()
    schedule.pause(now=T0 - timedelta(seconds=30))
    assert schedule.status is S.PAUSED and schedule.next_run_at == T0 and schedule.lease is None
    assert not schedule.is_due(T0 + timedelta(days=1))
    assert schedule.events[-1].type == "paused" and schedule.events[-1].data == {"next_run_at": "2030-01-15T12:00:00.000Z"}
    schedule.resume(now=LATER)  # a one-off keeps its time, passed or not: its misfire policy judges it
    assert (schedule.status, schedule.next_run_at, schedule.occurrence) == (S.SCHEDULED, T0, T0)
    assert schedule.is_due(LATER) and schedule.updated_at == LATER
    assert schedule.events[-1].type == "resumed" and schedule.events[-1].data == {"next_run_at": "2030-01-15T12:00:00.000Z"}


def test_a_recurring_schedule_resumed_skips_what_fell_due_while_it_was_paused() -> None:
    schedule = new_schedule(EveryTrigger(T0, 60))
    schedule.pause(now=T0 - timedelta(seconds=5))
    schedule.resume(now=T0 - timedelta(seconds=1))  # before its next run: nothing skipped
    assert schedule.next_run_at == schedule.occurrence == T0 and "skipped_from" not in schedule.events[-1].data
    schedule.pause(now=T0 - timedelta(seconds=1))
    schedule.resume(now=T0 + timedelta(seconds=150))
    assert schedule.next_run_at == schedule.occurrence == T0 + timedelta(seconds=180)
    assert schedule.events[-1].data == {"skipped_from": "2030-01-15T12:00:00.000Z",
                                        "next_run_at": "2030-01-15T12:03:00.000Z"}
    # An occurrence waiting to retry when paused: its retry is dropped once skipped.
    claim(schedule, "a1", T0 + timedelta(seconds=180))
    retry_at = T0 + timedelta(seconds=190)
    schedule.fail(attempt_id="a1", now=T0 + timedelta(seconds=181), error=ERROR, decision=RetryDecision(retry_at, "r"))
    schedule.pause(now=T0 + timedelta(seconds=182))
    schedule.resume(now=T0 + timedelta(seconds=185))
    assert schedule.next_run_at == retry_at and len(schedule.attempts_for_occurrence) == 1  # not due yet: kept
    schedule.pause(now=T0 + timedelta(seconds=186))
    schedule.resume(now=T0 + timedelta(seconds=200))
    assert schedule.next_run_at == schedule.occurrence == T0 + timedelta(seconds=240)
    assert schedule.attempts_for_occurrence == []


def test_run_now_sends_a_one_off_now_and_gives_a_recurring_schedule_one_more_run() -> None:
    one_off = new_schedule(at=T0 + timedelta(hours=1))
    one_off.run_now(now=T0)
    assert (one_off.next_run_at, one_off.occurrence, one_off.trigger) == (T0, T0, OnceTrigger(T0))
    assert one_off.events[-1].type == "scheduled"
    assert one_off.events[-1].data == {"next_run_at": "2030-01-15T12:00:00.000Z",
                                       "run_now_from": "2030-01-15T13:00:00.000Z"}
    recurring = new_schedule(EveryTrigger(T0 + timedelta(seconds=60), 60), at=T0 + timedelta(seconds=60))
    recurring.run_now(now=T0)
    assert recurring.next_run_at == recurring.occurrence == T0 and recurring.trigger.recurring
    claim(recurring, "a1", T0)
    recurring.succeed(attempt_id="a1", now=T0 + timedelta(seconds=1))
    assert recurring.next_run_at == T0 + timedelta(seconds=60)  # the occurrence it waited for stays next
    before = recurring.copy()
    recurring.run_now(now=T0 + timedelta(seconds=60))  # due already: as it is
    assert recurring == before


def test_run_now_of_one_due_already_but_too_late_to_run_makes_it_due_now_so_that_it_runs() -> None:
    """Run now asked after the scheduler was down past a schedule's misfire grace: the claim
    would end it missed (5400 s late), so it is due now instead, as one not due yet is; within
    its grace, or a recurring one whose latest occurrence due is, it is left as it is."""
    late = new_schedule(at=T0)
    late.misfire = MisfirePolicy(grace=timedelta(hours=1))
    now = T0 + timedelta(hours=1, minutes=30)
    late.run_now(now=now)
    assert (late.next_run_at, late.occurrence, late.trigger) == (now, now, OnceTrigger(now))
    assert late.events[-1].data["run_now_from"] == "2030-01-15T12:00:00.000Z"
    claim(late, "a1", now)
    late.catch_up(now)
    assert late.misfire_reason(now) is None  # it runs
    within = new_schedule(at=T0)
    within.misfire = MisfirePolicy(grace=timedelta(hours=1))
    before = within.copy()
    within.run_now(now=T0 + timedelta(minutes=59))
    assert within == before
    recurring = new_schedule(EveryTrigger(T0, 60), at=T0)
    recurring.misfire = MisfirePolicy(grace=timedelta(seconds=90))
    before = recurring.copy()
    recurring.run_now(now=T0 + timedelta(minutes=10))  # coalesced, it runs as 12:10, within its grace
    assert recurring == before
    recurring.misfire = MisfirePolicy(grace=timedelta(seconds=90), coalesce=False)
    recurring.run_now(now=T0 + timedelta(minutes=10))  # each on its own: 12:00 is too late
    assert recurring.next_run_at == recurring.occurrence == T0 + timedelta(minutes=10)


def test_run_now_of_a_one_off_past_its_send_by_is_refused_saying_so() -> None:
    schedule = new_schedule(at=T0)
    schedule.send_by = T0 + timedelta(minutes=5)
    before = schedule.copy()
    with pytest.raises(InvalidTransition, match="past its send_by deadline 2030-01-15T12:05:00.000Z"):
        schedule.run_now(now=T0 + timedelta(minutes=6), request_key="k1")
    assert schedule == before


def test_run_now_remembers_the_last_request_key_due_already_or_not() -> None:
    schedule = new_schedule(at=T0 + timedelta(hours=1))
    schedule.run_now(now=T0, request_key="k1")
    assert schedule.ran_now_for("k1") and not schedule.ran_now_for("k2") and schedule.next_run_at == T0
    events, version = len(schedule.events), schedule.updated_at
    schedule.run_now(now=T0, request_key="k2")  # due already: only the key, a new version, no event
    assert schedule.ran_now_for("k2") and not schedule.ran_now_for("k1")
    assert len(schedule.events) == events and schedule.updated_at > version and schedule.next_run_at == T0
    unkeyed = new_schedule(at=T0 + timedelta(hours=1))
    unkeyed.run_now(now=T0)
    assert not unkeyed.ran_now_for("k1") and RUN_NOW_KEY not in unkeyed.metadata


def test_run_now_of_a_schedule_waiting_to_retry_retries_now_under_the_same_key() -> None:
    schedule = in_status(S.RUNNING)
    schedule.fail(attempt_id="a1", now=LATER, error=ERROR, decision=RetryDecision(LATER + timedelta(minutes=5), "r"))
    key = schedule.delivery_key
    schedule.run_now(now=LATER + timedelta(seconds=1))
    assert schedule.next_run_at == LATER + timedelta(seconds=1) and schedule.occurrence == T0
    assert schedule.delivery_key == key and len(schedule.attempts_for_occurrence) == 1


def test_a_paused_schedule_moves_and_stays_paused() -> None:
    schedule = new_schedule()
    schedule.pause(now=T0 - timedelta(seconds=30))
    schedule.reschedule(trigger=OnceTrigger(LATER), first_run_at=LATER, timezone="UTC", now=T0)
    assert (schedule.status, schedule.next_run_at) == (S.PAUSED, LATER)


@pytest.mark.parametrize("status", [S.RUNNING, S.SUCCEEDED, S.DEAD, S.UNKNOWN, S.MISSED, S.CANCELLED])
def test_only_a_waiting_schedule_moves(status: ScheduleStatus) -> None:
    schedule = in_status(status)
    before = schedule.copy()
    with pytest.raises(InvalidTransition):
        schedule.reschedule(trigger=OnceTrigger(LATER), first_run_at=LATER, timezone="UTC", now=LATER)
    assert schedule == before


def test_a_one_off_waiting_to_retry_does_not_move_a_recurring_schedule_does() -> None:
    one_off = in_status(S.RUNNING)
    one_off.fail(attempt_id="a1", now=LATER, error=ERROR, decision=RetryDecision(LATER + timedelta(minutes=1), "t"))
    assert one_off.status is S.SCHEDULED and one_off.attempts_for_occurrence
    with pytest.raises(InvalidTransition):
        one_off.reschedule(trigger=OnceTrigger(T0 + timedelta(hours=1)), first_run_at=T0 + timedelta(hours=1),
                           timezone="UTC", now=LATER)
    recurring = new_schedule(EveryTrigger(T0, 60))
    claim(recurring)
    recurring.fail(attempt_id="a1", now=LATER, error=ERROR, decision=RetryDecision(LATER + timedelta(minutes=1), "t"))
    moved_to = T0 + timedelta(hours=1)
    recurring.reschedule(trigger=EveryTrigger(moved_to, 60), first_run_at=moved_to, timezone="UTC", now=LATER)
    assert recurring.next_run_at == moved_to and recurring.attempts_for_occurrence == []  # the retry is dropped


def test_a_reschedule_keeps_the_kind_and_the_deadline() -> None:
    one_off = new_schedule()
    with pytest.raises(ValidationError, match="one-off") as refused:
        one_off.reschedule(trigger=EveryTrigger(T0, 60), first_run_at=T0, timezone="UTC", now=LATER)
    assert refused.value.field == "schedule"
    recurring = new_schedule(EveryTrigger(T0, 60))
    with pytest.raises(ValidationError, match="recurring"):
        recurring.reschedule(trigger=OnceTrigger(LATER), first_run_at=LATER, timezone="UTC", now=LATER)
    bounded = Schedule.create(id="s2", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(T0),
                              timezone="UTC", first_run_at=T0, now=T0 - timedelta(minutes=1),
                              send_by=T0 + timedelta(minutes=10))
    with pytest.raises(ValidationError, match="send_by") as refused:
        bounded.reschedule(trigger=OnceTrigger(T0 + timedelta(hours=1)), first_run_at=T0 + timedelta(hours=1),
                           timezone="UTC", now=LATER)
    assert refused.value.field == "send_at" and bounded.next_run_at == T0


def test_labels_are_its_own_kept_by_a_copy_and_checked_when_created_or_changed() -> None:
    schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(T0),
                               timezone="UTC", first_run_at=T0, now=T0 - timedelta(minutes=1),
                               labels={"order": "123"})
    copied = schedule.copy()
    copied.labels["order"] = "456"
    assert schedule.labels == {"order": "123"} and new_schedule().labels == {}
    with pytest.raises(ValidationError) as refused:
        Schedule.create(id="s2", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(T0), timezone="UTC",
                        first_run_at=T0, now=T0, labels={"bad key": "1"})
    assert refused.value.field == "labels"
    before = schedule.copy()
    with pytest.raises(ValidationError):
        schedule.relabel(labels={"order": "\x00"}, now=LATER)
    with pytest.raises(ValidationError):
        schedule.change_task(payload={"to": "5511888888888"}, labels={"-x": ""}, now=LATER)
    with pytest.raises(ValidationError):
        schedule.reschedule(trigger=OnceTrigger(LATER), first_run_at=LATER, timezone="UTC", now=LATER,
                            labels={"k": "v" * 257})
    assert schedule == before, "labels that are refused change nothing"


def test_labels_change_alone_or_with_the_task_or_the_time_in_one_event() -> None:
    schedule = new_schedule()
    schedule.relabel(labels={"order": "123"}, now=LATER)
    assert (schedule.labels, schedule.next_run_at, schedule.events[-1].data) == (
        {"order": "123"}, T0, {"labels_changed": "true", "next_run_at": "2030-01-15T12:00:00.000Z"})
    schedule.change_task(payload={"to": "5511888888888"}, labels={}, now=LATER)
    assert schedule.labels == {} and schedule.events[-1].data["task_changed"] == "true"
    assert schedule.events[-1].data["labels_changed"] == "true"
    moved_to = T0 + timedelta(hours=1)
    schedule.reschedule(trigger=OnceTrigger(moved_to), first_run_at=moved_to, timezone="UTC", now=LATER,
                        labels={"kind": "reminder"})
    assert schedule.labels == {"kind": "reminder"} and schedule.events[-1].data["labels_changed"] == "true"
    assert "rescheduled_from" in schedule.events[-1].data
    schedule.change_task(payload={"to": "5511777777777"}, now=LATER)  # labels not given: kept
    assert schedule.labels == {"kind": "reminder"} and "labels_changed" not in schedule.events[-1].data


@pytest.mark.parametrize("status", [S.RUNNING, S.SUCCEEDED, S.DEAD, S.UNKNOWN, S.MISSED, S.CANCELLED])
def test_only_a_waiting_schedule_takes_other_labels(status: ScheduleStatus) -> None:
    schedule = in_status(status)
    before = schedule.copy()
    with pytest.raises(InvalidTransition, match="only a scheduled or paused one takes other labels"):
        schedule.relabel(labels={"order": "1"}, now=LATER)
    assert schedule == before


def test_is_due() -> None:
    schedule = new_schedule()
    assert not schedule.is_due(T0 - timedelta(milliseconds=1))
    assert schedule.is_due(T0)
    claim(schedule)
    assert not schedule.is_due(T0 + LEASE)
    assert schedule.is_due(T0 + LEASE + timedelta(milliseconds=1))


# -- random walks ----------------------------------------------------------------------------


class ScheduleWalk(RuleBasedStateMachine):
    """Random sequences of operations, right and wrong, never leave an inconsistent schedule."""

    recurring = False
    #: Recurring: how long its rule lasts (``until``), or None for a rule that never ends.
    lasts: timedelta | None = None

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.ids = itertools.count(1)
        self.seen_attempt_ids: set[str] = set()

    @initialize()
    def create(self) -> None:
        self.schedule = new_schedule(self.trigger_at(T0))
        self.one_off_at = T0  # where a one-off is due: moved only by a reschedule

    # -- helpers

    def trigger_at(self, at: datetime) -> Trigger:
        """The walk's rule, first due at ``at``."""
        if not self.recurring:
            return OnceTrigger(at)
        every = EveryTrigger(at, 60)
        return every if self.lasts is None else BoundedTrigger(rule=every, until=at + self.lasts)

    def attempt_id(self, use_current: bool) -> str:
        if use_current and self.schedule.lease is not None:
            return self.schedule.lease.attempt_id
        return "not-the-lease"

    def holds(self, attempt_id: str) -> bool:
        lease = self.schedule.lease
        return self.schedule.status is S.RUNNING and lease is not None and lease.attempt_id == attempt_id

    def attempt(self, operation: Callable[[], None], expected_ok: bool) -> None:
        before = self.schedule.copy()
        if expected_ok:
            operation()
            # A new version on every change, a claim included, even within one millisecond of the
            # last (or behind the clock that stamped it: a claim never brings a version back).
            assert self.schedule.updated_at == max(self.now, before.updated_at + timedelta(milliseconds=1))
        else:
            with pytest.raises(InvalidTransition):
                operation()
            assert self.schedule == before, "a refused operation must leave the schedule unchanged"

    # -- rules

    @rule(seconds=st.integers(0, 120))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(owner=st.sampled_from(["replica-a", "replica-b"]), lease_seconds=st.integers(1, 60))
    def claim(self, owner: str, lease_seconds: int) -> None:
        attempt_id = f"a{next(self.ids)}"
        lease = self.schedule.lease
        ok = self.schedule.status is S.SCHEDULED or (
            self.schedule.status is S.RUNNING and lease is not None and lease.until < self.now)
        self.attempt(lambda: self.schedule.claim(owner=owner, attempt_id=attempt_id, now=self.now,
                                                 until=self.now + timedelta(seconds=lease_seconds)), ok)
        if ok:
            assert self.schedule.lease is not None and self.schedule.lease.attempt_id == attempt_id

    @rule(use_current=st.booleans())
    def succeed(self, use_current: bool) -> None:
        attempt_id = self.attempt_id(use_current)
        ok = self.holds(attempt_id)
        self.attempt(lambda: self.schedule.succeed(attempt_id=attempt_id, now=self.now,
                                                   provider_message_id="wamid.x"), ok)
        if ok and self.schedule.status is S.SCHEDULED:
            # Coalescing: what fell due while the run lasted is skipped, to the next one after now.
            assert self.schedule.next_run_at is not None and self.schedule.next_run_at > self.now

    @rule(use_current=st.booleans(), retry_in=st.one_of(st.none(), st.integers(1, 300)))
    def fail(self, use_current: bool, retry_in: int | None) -> None:
        attempt_id = self.attempt_id(use_current)
        retry_at = None if retry_in is None else self.now + timedelta(seconds=retry_in)
        ok = self.holds(attempt_id)
        self.attempt(lambda: self.schedule.fail(attempt_id=attempt_id, now=self.now, error=ERROR,
                                                decision=RetryDecision(retry_at, "test")), ok)
        if ok and retry_at is not None:
            assert self.schedule.status is S.SCHEDULED and self.schedule.next_run_at == retry_at

    @rule(use_current=st.booleans())
    def outcome_unknown(self, use_current: bool) -> None:
        attempt_id = self.attempt_id(use_current)
        self.attempt(lambda: self.schedule.outcome_unknown(attempt_id=attempt_id, now=self.now, error=ERROR),
                     self.holds(attempt_id))

    @rule(use_current=st.booleans())
    def release(self, use_current: bool) -> None:
        attempt_id = self.attempt_id(use_current)
        self.attempt(lambda: self.schedule.release(attempt_id=attempt_id, now=self.now), self.holds(attempt_id))

    @rule()
    def cancel(self) -> None:
        status = self.schedule.status
        self.attempt(lambda: self.schedule.cancel(now=self.now),
                     status in (S.SCHEDULED, S.PAUSED) or (status is S.RUNNING and self.schedule.trigger.recurring))
        if self.schedule.status is S.CANCELLED:
            assert self.schedule.lease is None and self.schedule.next_run_at is None

    @rule(later=st.integers(0, 300))
    def reschedule(self, later: int) -> None:
        """Move it later (than both now and its current occurrence), as a user postponing it."""
        at = max(self.now, self.schedule.occurrence or self.now) + timedelta(seconds=later)
        trigger = self.trigger_at(at)
        ok = self.schedule.status in (S.SCHEDULED, S.PAUSED) and (
            self.recurring or not self.schedule.attempts_for_occurrence)
        self.attempt(lambda: self.schedule.reschedule(trigger=trigger, first_run_at=at, timezone="UTC",
                                                      now=self.now), ok)
        if ok:
            assert self.schedule.next_run_at == self.schedule.occurrence == at
            assert self.schedule.timezone == "UTC" and self.schedule.events[-1].type == "scheduled"
            if not self.recurring:
                self.one_off_at = at

    @rule(body=st.sampled_from(["Oi", "Olá", "Bom dia"]))
    def change_task(self, body: str) -> None:
        was, due, occurrence = self.schedule.status, self.schedule.next_run_at, self.schedule.occurrence
        ok = was in (S.SCHEDULED, S.PAUSED) and not self.schedule.attempts_for_occurrence
        payload = {"to": "5511999999999", "body": body}
        self.attempt(lambda: self.schedule.change_task(payload=payload, now=self.now), ok)
        if ok:  # only the task changed: its time, occurrence (so its key) and status stay
            assert self.schedule.payload == payload and self.schedule.status is was
            assert (self.schedule.next_run_at, self.schedule.occurrence) == (due, occurrence)
            assert self.schedule.events[-1].data["task_changed"] == "true"

    @rule(labels=st.dictionaries(st.sampled_from(["order", "kind"]), st.sampled_from(["", "123"]), max_size=2))
    def relabel(self, labels: dict[str, str]) -> None:
        before = self.schedule.copy()
        ok = before.status in (S.SCHEDULED, S.PAUSED)  # also while it waits to retry: labels reach no receiver
        self.attempt(lambda: self.schedule.relabel(labels=labels, now=self.now), ok)
        if ok:  # only the labels changed: its time, occurrence (so its key), task, attempts and status stay
            assert self.schedule.labels == labels
            for kept in ("status", "next_run_at", "occurrence", "payload", "attempts", "trigger"):
                assert getattr(self.schedule, kept) == getattr(before, kept)
            assert self.schedule.events[-1].type == "scheduled"
            assert self.schedule.events[-1].data["labels_changed"] == "true"

    @rule()
    def pause(self) -> None:
        was = self.schedule.status
        due = self.schedule.next_run_at
        self.attempt(lambda: self.schedule.pause(now=self.now), was is S.SCHEDULED)
        if was is S.SCHEDULED:
            assert self.schedule.status is S.PAUSED and self.schedule.next_run_at == due
            assert not self.schedule.is_due(self.now + timedelta(days=365))

    @rule()
    def resume(self) -> None:
        was, due, occurrence = self.schedule.status, self.schedule.next_run_at, self.schedule.occurrence
        self.attempt(lambda: self.schedule.resume(now=self.now), was is S.PAUSED)
        if was is S.PAUSED:
            assert due is not None
            ended = self.schedule.trigger.next_fire_time(self.now) is None  # a rule that ended meanwhile
            if self.recurring and due <= self.now and ended:  # nothing is left to run: it ends
                assert self.schedule.status is S.MISSED and self.schedule.next_run_at is None
                assert [e.type for e in self.schedule.events[-2:]] == ["resumed", "missed"]
                return
            assert self.schedule.status is S.SCHEDULED
            if self.recurring and due <= self.now:  # what fell due while paused is skipped
                assert self.schedule.next_run_at == self.schedule.occurrence > self.now
                assert not self.schedule.attempts_for_occurrence
            else:
                assert (self.schedule.next_run_at, self.schedule.occurrence) == (due, occurrence)

    @rule()
    def run_now(self) -> None:
        was, due, occurrence = self.schedule.status, self.schedule.next_run_at, self.schedule.occurrence
        retrying = bool(self.schedule.attempts_for_occurrence)
        ok = was is S.SCHEDULED and due is not None and due > self.now
        if was is S.SCHEDULED and not ok:  # due already: left as it is
            before = self.schedule.copy()
            self.schedule.run_now(now=self.now)
            assert self.schedule == before
            return
        last = self.schedule.attempts[-1].scheduled_for if self.schedule.attempts else None
        self.attempt(lambda: self.schedule.run_now(now=self.now), ok)
        if ok:
            if retrying:
                assert (self.schedule.next_run_at, self.schedule.occurrence) == (self.now, occurrence)
            else:  # a new occurrence, now, or just after the last one run (a clock behind)
                expected = self.now if last is None or last < self.now else last + timedelta(milliseconds=1)
                assert self.schedule.next_run_at == self.schedule.occurrence == expected
                if not self.recurring:
                    self.one_off_at = expected

    @precondition(lambda self: self.schedule.status is S.SCHEDULED)
    @rule()
    def claim_when_due(self) -> None:
        """Jump to the due time and claim, as a dispatcher would (keeps walks moving forward)."""
        assert self.schedule.next_run_at is not None
        self.now = max(self.now, self.schedule.next_run_at)
        self.claim(owner="replica-a", lease_seconds=30)

    @precondition(lambda self: self.schedule.status is S.RUNNING)
    @rule(dead=st.booleans())
    def finish_run(self, dead: bool) -> None:
        """End the run in progress under its own lease, as its dispatcher would (keeps walks moving)."""
        if dead:
            self.fail(use_current=True, retry_in=None)
        else:
            self.succeed(use_current=True)

    # -- invariants

    @invariant()
    def running_iff_leased(self) -> None:
        assert (self.schedule.status is S.RUNNING) == (self.schedule.lease is not None)

    @invariant()
    def terminal_means_no_next_run(self) -> None:
        if self.schedule.status in TERMINAL:
            assert self.schedule.next_run_at is None
        else:
            assert self.schedule.next_run_at is not None

    @invariant()
    def a_recurring_schedule_ends_only_when_its_rule_does(self) -> None:
        """Cancelled, or its rule has no fire time after its last occurrence and when it ended
        (an ``until`` passed; what fell due while its last run lasted, or while it was paused,
        was skipped)."""
        schedule = self.schedule
        if self.recurring and schedule.status in TERMINAL - {S.CANCELLED}:
            assert schedule.occurrence is not None
            assert schedule.trigger.next_fire_time(max(schedule.occurrence, schedule.updated_at)) is None

    @invariant()
    def an_ending_rule_runs_no_occurrence_after_its_end(self) -> None:
        trigger = self.schedule.trigger
        if isinstance(trigger, BoundedTrigger) and self.schedule.occurrence is not None:
            assert self.schedule.occurrence <= trigger.until

    @invariant()
    def a_one_off_changes_occurrence_only_when_rescheduled(self) -> None:
        if not self.recurring:
            assert self.schedule.occurrence == self.one_off_at

    @invariant()
    def attempts_are_numbered_one_to_k_per_occurrence(self) -> None:
        by_occurrence: dict[datetime, list[int]] = {}
        for attempt in self.schedule.attempts:
            by_occurrence.setdefault(attempt.scheduled_for, []).append(attempt.number)
        for numbers in by_occurrence.values():
            assert numbers == list(range(1, len(numbers) + 1))
        ids = [a.attempt_id for a in self.schedule.attempts]
        assert len(ids) == len(set(ids)), "an attempt is recorded once"
        assert all(a.started_at <= a.finished_at for a in self.schedule.attempts)

    @invariant()
    def only_the_last_attempt_may_be_of_a_later_occurrence(self) -> None:
        occurrences = [a.scheduled_for for a in self.schedule.attempts]
        assert occurrences == sorted(occurrences)
        if self.schedule.occurrence is not None and occurrences:
            assert occurrences[-1] <= self.schedule.occurrence


class RecurringScheduleWalk(ScheduleWalk):
    recurring = True


class EndingScheduleWalk(ScheduleWalk):
    """A recurring rule with an ``until`` two occurrences on: it ends, with its last run's outcome."""

    recurring = True
    lasts = timedelta(minutes=2)


walk_settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestScheduleWalk = ScheduleWalk.TestCase
TestScheduleWalk.settings = walk_settings
TestRecurringScheduleWalk = RecurringScheduleWalk.TestCase
TestRecurringScheduleWalk.settings = walk_settings
TestEndingScheduleWalk = EndingScheduleWalk.TestCase
TestEndingScheduleWalk.settings = walk_settings


@pytest.mark.parametrize(("grace", "late", "said"), [
    (timedelta(minutes=10), timedelta(minutes=10, seconds=30), "630 s late, beyond its misfire grace of 600 s"),
    (timedelta(milliseconds=1), timedelta(milliseconds=250), "0.25 s late, beyond its misfire grace of 0.001 s"),
    (timedelta(seconds=2), timedelta(seconds=5), "5 s late, beyond its misfire grace of 2 s"),
])
def test_a_miss_says_how_late_and_its_grace_as_precisely_as_they_are(grace: timedelta, late: timedelta,
                                                                     said: str) -> None:
    schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(T0),
                               timezone="UTC", first_run_at=T0, now=T0, misfire=MisfirePolicy(grace=grace))
    assert schedule.misfire_reason(T0 + late) == said


@pytest.mark.parametrize(("lasts", "status", "next_run"), [
    (timedelta(seconds=9), S.MISSED, None),  # ended before the grace: nothing left to run
    (None, S.SCHEDULED, T0 + timedelta(seconds=18)),  # the first occurrence within the grace (2 s late)
])
def test_a_miss_without_coalescing_skips_what_the_grace_leaves_behind_and_ends_with_the_rule(
        lasts: timedelta | None, status: S, next_run: datetime | None) -> None:
    """README: of the occurrences older than the grace, the first is recorded as missed and the
    rest are skipped, also when the rule ended (``until``) among them."""
    every = EveryTrigger(T0, 3)
    trigger = every if lasts is None else BoundedTrigger(rule=every, until=T0 + lasts)
    schedule = Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=trigger, timezone="UTC",
                               first_run_at=T0, now=T0 - timedelta(minutes=1),
                               misfire=MisfirePolicy(grace=timedelta(seconds=2), coalesce=False))
    now = T0 + timedelta(seconds=20)
    claim(schedule, now=now)
    reason = schedule.misfire_reason(now)
    assert reason is not None
    schedule.miss(attempt_id="a1", now=now, reason=reason)
    assert (schedule.status, schedule.next_run_at) == (status, next_run)
    assert [a.outcome for a in schedule.attempts] == ["missed"]


@pytest.mark.parametrize("change", [
    lambda s: s.check_movable(),
    lambda s: s.change_task(payload={"to": "5511888888888"}, now=T0),
    lambda s: s.change_settings(labels={"team": "ops"}, now=T0),
])
def test_a_change_refused_while_a_run_is_in_progress_says_it_can_be_made_once_the_run_ends(
        change: Callable[[Schedule], None]) -> None:
    running = new_schedule(EveryTrigger(T0, 60))
    claim(running)
    with pytest.raises(InvalidTransition) as refused:
        change(running)
    assert str(refused.value).endswith("(its run is in progress; change it once the run has ended)")
    ended = in_status(S.SUCCEEDED)
    with pytest.raises(InvalidTransition) as refused:
        change(ended)
    assert "in progress" not in str(refused.value)
