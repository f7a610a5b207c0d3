"""The limit of status webhook deliveries in flight per destination: who runs, who waits in line,
how long, and what is forgotten. A clock the test moves; no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cronjob_adapters.webhooks.destinations import DestinationLimit, LineKey, Origin

SLOW: Origin = ("https", "slow.example", 443)
FAST: Origin = ("https", "fast.example", 443)
T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def key(n: int) -> LineKey:
    """The line's order of the n-th delivery created."""
    return (T0 + timedelta(milliseconds=n), f"d{n}")


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
def limit(clock: Monotonic) -> DestinationLimit:
    return DestinationLimit(2, pause=0.25, max_pause=30.0, now=clock)


def run(limit: DestinationLimit, origin: Origin, n: int) -> None:
    """Admit the n-th delivery and begin its run, as the dispatcher does."""
    assert limit.admit(origin, f"d{n}", key(n)) is None
    assert limit.enter(origin, f"d{n}")


def test_a_full_destination_holds_its_own_back_but_not_the_others(limit: DestinationLimit) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    assert limit.in_flight(SLOW) == 2
    wait = limit.admit(SLOW, "d3", key(3))
    assert wait is not None and wait >= 0.25  # a short wait, never a spin
    assert limit.admit(FAST, "d4", key(4)) is None  # another destination has its own slots
    assert not limit.enter(SLOW, "d5")  # a run not admitted finds no slot either
    limit.leave(SLOW, "d1")
    assert limit.admit(SLOW, "d3", key(3)) is None  # due again, a slot is free: it runs


def test_the_line_keeps_its_order_and_a_later_delivery_waits_behind_it(limit: DestinationLimit) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    waits = [limit.admit(SLOW, f"d{n}", key(n)) for n in range(3, 9)]
    assert all(w is not None for w in waits)
    assert waits == sorted(waits) and len(set(waits)) == len(waits)  # each due after those ahead of it
    limit.leave(SLOW, "d1")
    assert limit.admit(SLOW, "d9", key(9)) is not None  # a slot is free, but six wait ahead of it
    assert limit.admit(SLOW, "d3", key(3)) is None  # the head of the line takes it


def test_a_long_line_spreads_out_with_how_long_the_destination_takes(
        limit: DestinationLimit, clock: Monotonic) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    first = limit.admit(SLOW, "d3", key(3))
    assert first == pytest.approx(0.25)  # nothing known yet: the shortest wait
    clock.now += 8.0  # a receiver that stops answering: its runs have been going for 8 s
    head = limit.admit(SLOW, "d3", key(3))
    assert head is not None and head >= 8.0
    waits = [limit.admit(SLOW, f"d{n}", key(n)) for n in range(4, 40)]
    assert waits[0] == pytest.approx(head, abs=0.01)  # two slots: two due again at once, in order
    assert waits[1] == waits[2] - 0.002 == pytest.approx(2 * head, abs=0.01)  # the next two once those may be done
    assert waits[-1] == pytest.approx(30.0, abs=0.1)  # the longest wait


def test_the_wait_follows_how_long_the_destination_s_runs_took_lately(
        limit: DestinationLimit, clock: Monotonic) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    clock.now += 8.0
    limit.leave(SLOW, "d1")
    limit.leave(SLOW, "d2")
    run(limit, SLOW, 3)
    run(limit, SLOW, 4)
    slow = limit.admit(SLOW, "d5", key(5))
    assert slow == pytest.approx(8.0)
    for n in (3, 4, 5, *range(6, 30)):  # it answers fast again
        if n > 4:
            run(limit, SLOW, n)
        clock.now += 0.01
        limit.leave(SLOW, f"d{n}")
    run(limit, SLOW, 30)
    run(limit, SLOW, 31)
    assert limit.admit(SLOW, "d32", key(32)) == pytest.approx(0.25)


def test_places_of_deliveries_that_never_come_back_are_forgotten(limit: DestinationLimit, clock: Monotonic) -> None:
    run(limit, SLOW, 1)
    run(limit, SLOW, 2)
    assert limit.admit(SLOW, "d3", key(3)) is not None  # then taken by another replica, or cancelled
    limit.leave(SLOW, "d1")
    limit.leave(SLOW, "d2")
    assert limit.admit(SLOW, "d4", key(4)) is not None  # behind d3, for now
    clock.now += 60.0
    assert limit.admit(SLOW, "d4", key(4)) is None


def test_an_admission_whose_run_never_began_lapses(limit: DestinationLimit, clock: Monotonic) -> None:
    assert limit.admit(SLOW, "d1", key(1)) is None
    assert limit.admit(SLOW, "d2", key(2)) is None
    assert limit.admit(SLOW, "d3", key(3)) is not None
    clock.now += 60.0
    assert limit.admit(SLOW, "d3", key(3)) is None
    assert limit.in_flight(SLOW) == 1


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DestinationLimit(0)
