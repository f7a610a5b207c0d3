"""The process's clock: the host's, or, while it follows the store's, the store's time as last
measured counted on by the monotonic clock, whatever the host's clock does meanwhile."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from cronjob.services.aligned_clock import AlignedClock
from tests.support.builders import T0
from tests.support.clock import FixedClock

seconds = st.floats(min_value=-86_400, max_value=86_400, allow_nan=False)


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 1_000.0

    def __call__(self) -> float:
        return self.value


@given(ahead=seconds, elapsed=st.floats(min_value=0, max_value=3_600), host_jump=seconds)
def test_a_followed_clock_tells_the_stores_time_counted_on_whatever_the_host_does(
        ahead: float, elapsed: float, host_jump: float) -> None:
    host, monotonic = FixedClock(T0), Monotonic()
    aligned = AlignedClock(host, monotonic)
    aligned.follow(timedelta(seconds=ahead))
    assert aligned.following
    assert aligned.now() == T0 - timedelta(seconds=ahead)
    monotonic.value += elapsed
    host.advance(timedelta(seconds=elapsed + host_jump))  # the host's clock set meanwhile
    expected = T0 - timedelta(seconds=ahead) + timedelta(seconds=elapsed)
    assert abs((aligned.now() - expected).total_seconds()) <= 3e-6  # timedelta rounds each term to the microsecond
    assert abs((aligned.offset - timedelta(seconds=ahead + host_jump)).total_seconds()) <= 3e-6


@given(ahead=seconds, elapsed=st.floats(min_value=0, max_value=3_600))
def test_a_released_clock_tells_the_hosts_time(ahead: float, elapsed: float) -> None:
    host, monotonic = FixedClock(T0), Monotonic()
    aligned = AlignedClock(host, monotonic)
    assert aligned.now() == T0 and not aligned.following and aligned.offset == timedelta(0)
    aligned.follow(timedelta(seconds=ahead))
    aligned.release()
    monotonic.value += elapsed
    host.advance(elapsed)
    assert aligned.now() == host.now() and aligned.offset == timedelta(0) and not aligned.following
