"""RetryPolicy: properties of the backoff and of the retry decision.

The decision's properties run on failures built to reach the branch they check: ``retryable_failures``
leave room for a retry (attempts below the maximum, a maximum age well beyond the longest delay), so
every example retries; ``aging_failures`` put the maximum age around the earliest retry, so that the
policy retries in some examples and gives up for age in others, and each branch is asserted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.retry import RetryDecision, RetryPolicy

T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
DAY_MS = 86_400_000


def millis(low: int, high: int) -> st.SearchStrategy[timedelta]:
    return st.integers(low, high).map(lambda ms: timedelta(milliseconds=ms))


@st.composite
def policies(draw: st.DrawFn, max_attempts: st.SearchStrategy[int] = st.integers(1, 60)) -> RetryPolicy:
    initial = draw(st.one_of(st.just(timedelta(0)), millis(0, 3_600_000)))
    max_delay = initial + draw(st.one_of(st.just(timedelta(0)), millis(0, 7 * DAY_MS)))
    return RetryPolicy(
        max_attempts=draw(max_attempts),
        initial_delay=initial,
        max_delay=max_delay,
        multiplier=draw(st.one_of(st.just(1.0), st.just(2.0),
                                  st.floats(1.0, 1.0001), st.floats(1.0, 50.0))),
        max_age=draw(millis(0, 30 * DAY_MS)),
        min_delay=draw(millis(0, 120_000)),
    )


jitters = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
retry_afters = st.one_of(st.none(), millis(1, 3 * DAY_MS))
attempt_numbers = st.one_of(st.integers(0, 80), st.integers(0, 10**18))


@dataclass(frozen=True)
class Failure:
    """A retryable failure of attempt ``attempts`` at ``T0 + elapsed`` (the first attempt was at T0)."""

    policy: RetryPolicy
    attempts: int
    jitter: float
    retry_after: timedelta | None
    elapsed: timedelta

    @property
    def now(self) -> datetime:
        return T0 + self.elapsed

    @property
    def earliest_retry(self) -> datetime:
        """The documented earliest start of the next attempt: the backoff, raised to ``min_delay``
        and to the provider's ``retry_after``."""
        floor = max(self.policy.backoff(self.attempts, self.jitter), self.policy.min_delay,
                    self.retry_after or timedelta(0))
        return self.now + floor

    def decide(self) -> RetryDecision:
        return self.policy.decide(attempts_made=self.attempts, retryable=True, first_attempt_at=T0, now=self.now,
                                  jitter=self.jitter, retry_after=self.retry_after)


def _longest_delay(policy: RetryPolicy, retry_after: timedelta | None) -> timedelta:
    return max(policy.max_delay, policy.min_delay, retry_after or timedelta(0))


@st.composite
def retryable_failures(draw: st.DrawFn) -> Failure:
    """Failures that must be retried: fewer attempts than the maximum, and a maximum age that
    leaves room for the longest possible delay."""
    policy = draw(policies(max_attempts=st.integers(2, 60)))
    attempts = draw(st.integers(1, policy.max_attempts - 1))
    retry_after = draw(retry_afters)
    elapsed = draw(millis(0, DAY_MS))
    room = draw(millis(0, 30 * DAY_MS))
    policy = replace(policy, max_age=elapsed + _longest_delay(policy, retry_after) + room)
    return Failure(policy, attempts, draw(jitters), retry_after, elapsed)


@st.composite
def aging_failures(draw: st.DrawFn) -> Failure:
    """Failures with fewer attempts than the maximum whose maximum age falls around their earliest
    retry: from before the failure itself to twice as late, often within microseconds of it (at
    the limit a retry is still allowed, a microsecond earlier the policy gives up)."""
    policy = draw(policies(max_attempts=st.integers(2, 60)))
    failure = Failure(policy, draw(st.integers(1, policy.max_attempts - 1)), draw(jitters), draw(retry_afters),
                      draw(millis(0, DAY_MS)))
    wait_us = (failure.earliest_retry - failure.now) // timedelta(microseconds=1)
    elapsed_us = failure.elapsed // timedelta(microseconds=1)
    offset_us = draw(st.one_of(st.integers(-2, 2), st.integers(-wait_us - elapsed_us, wait_us)))
    max_age = max(failure.elapsed + timedelta(microseconds=wait_us + offset_us), timedelta(0))
    return replace(failure, policy=replace(policy, max_age=max_age))


@given(policies(), attempt_numbers, jitters)
def test_backoff_stays_within_zero_and_the_cap(policy: RetryPolicy, attempts: int, jitter: float) -> None:
    delay = policy.backoff(attempts, jitter)
    assert timedelta(0) <= delay <= policy.max_delay


@given(retryable_failures())
def test_a_retry_delay_is_within_the_floor_and_the_ceiling(failure: Failure) -> None:
    policy, attempts, jitter, retry_after = failure.policy, failure.attempts, failure.jitter, failure.retry_after
    decision = failure.decide()
    assert decision.retry_at is not None, decision.reason  # room for the longest delay: it retries
    assert decision.reason == f"retry {attempts + 1} of {policy.max_attempts}"
    delay = decision.retry_at - failure.now
    # The floor (min_delay) wins over the cap when it is the larger: the ceiling is the largest of the three.
    ceiling = max(policy.max_delay, policy.min_delay, retry_after or timedelta(0))
    assert policy.min_delay <= delay <= ceiling
    assert delay >= policy.backoff(attempts, jitter)
    if retry_after is not None:
        assert delay >= retry_after
    assert decision.retry_at == failure.earliest_retry  # and no later than it needs to be


@given(policies(), st.integers(0, 200), jitters, retry_afters, millis(0, DAY_MS))
def test_never_retries_once_max_attempts_were_made(
    policy: RetryPolicy, more: int, jitter: float, retry_after: timedelta | None, elapsed: timedelta
) -> None:
    decision = policy.decide(attempts_made=policy.max_attempts + more, retryable=True, first_attempt_at=T0,
                             now=T0 + elapsed, jitter=jitter, retry_after=retry_after)
    assert decision.retry_at is None
    assert decision.gives_up


@given(aging_failures())
def test_never_retries_beyond_the_maximum_age(failure: Failure) -> None:
    policy = failure.policy
    decision = failure.decide()
    limit = T0 + policy.max_age
    event("retries" if decision.retry_at is not None else "gives up for age")
    if decision.retry_at is not None:
        assert decision.retry_at <= limit
        assert decision.retry_at >= failure.now + policy.min_delay
        assert decision.retry_at >= failure.earliest_retry
    else:  # only because the earliest allowed retry would start after the limit
        assert decision.reason == f"retry would exceed the maximum age of {policy.max_age}"
        assert failure.earliest_retry > limit


def test_aging_failures_reach_both_branches() -> None:
    """The age property above checks a branch only where an example reaches it: the strategy must
    produce failures that retry and failures that give up for age (also at the exact limit)."""
    seen: set[str] = set()

    @settings(max_examples=200, derandomize=True, database=None)
    @given(aging_failures())
    def collect(failure: Failure) -> None:
        decision = failure.decide()
        limit = T0 + failure.policy.max_age
        if decision.retry_at is not None:
            seen.add("retries at the limit" if decision.retry_at == limit else "retries")
        else:
            seen.add("gives up a microsecond past" if failure.earliest_retry - limit == timedelta(microseconds=1)
                     else "gives up for age")

    collect()
    assert seen == {"retries", "retries at the limit", "gives up for age", "gives up a microsecond past"}


@given(policies(), st.integers(0, 80), jitters, retry_afters, millis(0, DAY_MS))
def test_a_permanent_error_never_retries(
    policy: RetryPolicy, attempts: int, jitter: float, retry_after: timedelta | None, elapsed: timedelta
) -> None:
    decision = policy.decide(attempts_made=attempts, retryable=False, first_attempt_at=T0, now=T0 + elapsed,
                             jitter=jitter, retry_after=retry_after)
    assert decision.gives_up
    assert decision.reason == "permanent error"


@given(policies())
def test_backoff_is_non_decreasing_in_attempts_without_jitter(policy: RetryPolicy) -> None:
    delays = [policy.backoff(n, 1.0) for n in range(0, 70)]
    assert delays == sorted(delays)
    assert delays[0] == delays[1] == policy.initial_delay  # before any retry and after the first attempt


@given(policies(), st.integers(1, 69))
def test_the_decided_delay_is_non_decreasing_in_attempts_without_jitter(policy: RetryPolicy, n: int) -> None:
    roomy = RetryPolicy(max_attempts=100, initial_delay=policy.initial_delay, max_delay=policy.max_delay,
                        multiplier=policy.multiplier, max_age=timedelta(days=3650), min_delay=policy.min_delay)
    first = roomy.decide(attempts_made=n, retryable=True, first_attempt_at=T0, now=T0)
    second = roomy.decide(attempts_made=n + 1, retryable=True, first_attempt_at=T0, now=T0)
    assert first.retry_at is not None and second.retry_at is not None
    assert first.retry_at <= second.retry_at


@settings(max_examples=50, deadline=1000)
@given(policies(), st.integers(10**6, 10**30), jitters)
def test_huge_attempt_numbers_neither_overflow_nor_hang(policy: RetryPolicy, attempts: int, jitter: float) -> None:
    delay = policy.backoff(attempts, jitter)
    assert timedelta(0) <= delay <= policy.max_delay
    if policy.initial_delay > timedelta(0) and policy.multiplier >= 2.0:
        assert delay == timedelta(seconds=policy.max_delay.total_seconds() * jitter)


def test_huge_attempt_numbers_with_growth_one_or_no_initial_delay() -> None:
    flat = RetryPolicy(multiplier=1.0, initial_delay=timedelta(seconds=10), max_delay=timedelta(minutes=10))
    assert flat.backoff(10**15) == timedelta(seconds=10)
    zero = RetryPolicy(initial_delay=timedelta(0))
    assert zero.backoff(10**15) == timedelta(0)
    slow = RetryPolicy(multiplier=1.000001, initial_delay=timedelta(seconds=1), max_delay=timedelta(days=1))
    assert slow.backoff(10**15) == timedelta(days=1)
    assert RetryPolicy().backoff(10**100) == timedelta(minutes=10)


# -- examples --------------------------------------------------------------------------------


def test_default_policy_schedule_of_delays() -> None:
    policy = RetryPolicy()
    assert [policy.backoff(n).total_seconds() for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 600, 600]
    assert policy.backoff(3, 0.5) == timedelta(seconds=20)


def test_retry_after_and_min_delay_raise_the_delay() -> None:
    policy = RetryPolicy(initial_delay=timedelta(0), max_delay=timedelta(seconds=5), min_delay=timedelta(seconds=2))
    decision = policy.decide(attempts_made=1, retryable=True, first_attempt_at=T0, now=T0, jitter=0.0)
    assert decision.retry_at == T0 + timedelta(seconds=2)
    decision = policy.decide(attempts_made=1, retryable=True, first_attempt_at=T0, now=T0,
                             retry_after=timedelta(seconds=90))
    assert decision.retry_at == T0 + timedelta(seconds=90)
    assert decision.reason == "retry 2 of 5"


def test_gives_up_exactly_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.decide(attempts_made=2, retryable=True, first_attempt_at=T0, now=T0).gives_up
    assert policy.decide(attempts_made=3, retryable=True, first_attempt_at=T0, now=T0).gives_up


def test_gives_up_when_the_retry_would_exceed_the_maximum_age() -> None:
    policy = RetryPolicy(max_age=timedelta(seconds=30), initial_delay=timedelta(seconds=10))
    ok = policy.decide(attempts_made=1, retryable=True, first_attempt_at=T0, now=T0 + timedelta(seconds=20))
    assert ok.retry_at == T0 + timedelta(seconds=30)  # exactly at the limit: still allowed
    late = policy.decide(attempts_made=1, retryable=True, first_attempt_at=T0, now=T0 + timedelta(seconds=21))
    assert late.gives_up and "maximum age" in late.reason


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": -3}, "retry.max_attempts"),
        ({"initial_delay": timedelta(seconds=60), "max_delay": timedelta(seconds=59)}, "retry.max_delay_seconds"),
        ({"initial_delay": timedelta(seconds=-1)}, "retry.initial_delay_seconds"),
        ({"multiplier": 0.5}, "retry.multiplier"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert raised.value.field == field


@given(st.integers(-10, 0))
def test_any_max_attempts_below_one_is_refused(max_attempts: int) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=max_attempts)


@given(millis(1, DAY_MS), millis(1, DAY_MS))
def test_max_delay_below_initial_is_refused(initial: timedelta, less: timedelta) -> None:
    with pytest.raises(ValidationError) as raised:
        RetryPolicy(initial_delay=initial, max_delay=initial - less)
    assert raised.value.field == "retry.max_delay_seconds"


@pytest.mark.parametrize("jitter", [-0.01, 1.01])
def test_jitter_outside_zero_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy().backoff(2, jitter)
