"""The limit of status webhook deliveries in flight per slow destination: who runs, who is held
back and how long, and that a destination that keeps up has no limit. A clock the test moves; no
network."""

from __future__ import annotations

import pytest

from cronjob_adapters.webhooks.destinations import DestinationLimit, Origin

SLOW: Origin = ("https", "slow.example", 443)
FAST: Origin = ("https", "fast.example", 443)


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
def limit(clock: Monotonic) -> DestinationLimit:
    # jitter 0.5: the middle of the spread, so that a wait is what the destination's pace says.
    return DestinationLimit(2, slow_after=1.0, pause=0.25, max_pause=30.0, now=clock, jitter=lambda: 0.5)


def run(limit: DestinationLimit, origin: Origin, n: int) -> None:
    """Admit the n-th delivery and begin its run, as the dispatcher does."""
    assert limit.admit(origin, f"d{n}") is None
    assert limit.enter(origin, f"d{n}")


def heard_from(limit: DestinationLimit, clock: Monotonic, origin: Origin, took: float) -> None:
    """One run to ``origin`` that took ``took`` seconds, ended."""
    run(limit, origin, 0)
    clock.now += took
    limit.leave(origin, "d0")


def test_a_destination_not_heard_from_yet_has_the_limit(limit: DestinationLimit) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    assert limit.in_flight(SLOW) == 2
    wait = limit.admit(SLOW, "d3")
    assert wait == pytest.approx(0.25)  # it may hang from its first request; looked at again soon
    assert limit.admit(FAST, "d4") is None  # another destination has its own slots
    assert not limit.enter(SLOW, "d5")  # a run not admitted finds no slot either
    limit.leave(SLOW, "d1")
    assert limit.admit(SLOW, "d3") is None  # due again, a slot is free: it runs


def test_a_destination_that_keeps_up_has_no_limit(limit: DestinationLimit, clock: Monotonic) -> None:
    # Every event to one CRONJOB_WEBHOOK_URLS entry: a backlog to one receiver that answers in 20 ms.
    heard_from(limit, clock, FAST, 0.02)
    for n in range(1, 51):
        run(limit, FAST, n)
    assert limit.in_flight(FAST) == 50


def test_one_that_slows_down_gets_the_limit_again(limit: DestinationLimit, clock: Monotonic) -> None:
    heard_from(limit, clock, SLOW, 0.02)
    for n in range(1, 5):
        run(limit, SLOW, n)
    clock.now += 1.5  # it stopped answering: its runs have been going for 1.5 s
    wait = limit.admit(SLOW, "d5")
    assert wait == pytest.approx(1.5)  # about as long as it takes to free a slot
    assert not limit.enter(SLOW, "d6")
    assert limit.admit(FAST, "d7") is None  # the others are not held back


def test_a_wait_follows_the_pace_from_a_quarter_second_to_thirty(limit: DestinationLimit, clock: Monotonic) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    assert limit.admit(SLOW, "d3") == pytest.approx(0.25)
    clock.now += 8.0
    assert limit.admit(SLOW, "d3") == pytest.approx(8.0)
    clock.now += 100.0  # it never answers
    assert limit.admit(SLOW, "d3") == pytest.approx(30.0)
    # However many are held back: each waits the pace, not longer for a longer backlog.
    assert [limit.admit(SLOW, f"d{n}") for n in range(4, 40)] == [pytest.approx(30.0)] * 36


def test_waits_are_spread_a_quarter_either_way(clock: Monotonic) -> None:
    draws = iter([0.0, 0.999])
    limit = DestinationLimit(1, pause=0.25, now=clock, jitter=lambda: next(draws))
    run(limit, SLOW, 1)
    clock.now += 4.0
    assert limit.admit(SLOW, "d2") == pytest.approx(3.0)
    assert limit.admit(SLOW, "d3") == pytest.approx(5.0, abs=0.01)


def test_the_average_run_time_decides_once_no_run_is_in_flight(limit: DestinationLimit, clock: Monotonic) -> None:
    heard_from(limit, clock, SLOW, 8.0)  # a receiver that answered in 8 s
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    assert limit.admit(SLOW, "d3") == pytest.approx(8.0)  # slow: the limit holds, though its runs are young
    for n in (1, 2, *range(3, 30)):  # it answers fast again
        if n > 2:
            run(limit, SLOW, n)
        clock.now += 0.01
        limit.leave(SLOW, f"d{n}")
    run(limit, SLOW, 30)
    run(limit, SLOW, 31)
    assert limit.admit(SLOW, "d32") is None  # fast again: no limit


def test_an_admission_whose_run_never_began_lapses(limit: DestinationLimit, clock: Monotonic) -> None:
    assert limit.admit(SLOW, "d1") is None
    assert limit.admit(SLOW, "d2") is None
    assert limit.admit(SLOW, "d3") is not None
    clock.now += 60.0
    assert limit.admit(SLOW, "d3") is None
    assert limit.in_flight(SLOW) == 1


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DestinationLimit(0)
