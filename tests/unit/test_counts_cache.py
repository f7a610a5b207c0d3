"""CountsCache: the last read answered at once, read again in the background no more often than
its interval (which grows with how long a read takes), one read at a time, failures not kept."""

from __future__ import annotations

import asyncio

import pytest

from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.web.counts_cache import LONGEST_FAILED_WAIT, READ_INTERVAL_FACTOR, CountsCache


class Store:
    """Counts that are the number of reads made so far; each read can be held (``gate``), made
    to fail (``fail``) and made to take ``takes`` seconds of the test's clock."""

    def __init__(self, now: list[float] | None = None) -> None:
        self.reads = 0
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.now = now
        self.takes = 0.0

    async def read(self) -> int:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.now is not None:
            self.now[0] += self.takes
        if self.fail:
            raise ConnectionError("store down")
        return self.reads


async def settled() -> None:
    """Let a read started in the background run to its end (it awaits nothing that blocks)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def failed_once(takes: float, *, timeout: float, read_limit: float) -> tuple[list[float], Store, CountsCache]:
    """The test's clock, a store and a cache over it whose first read failed after ``takes``
    seconds of that clock; the store answers again from then on."""
    now = [100.0]
    store = Store(now)
    store.takes, store.fail = takes, True
    cache = CountsCache(store.read, max_age=2.0, timeout=timeout, read_limit=read_limit, monotonic=lambda: now[0])
    with pytest.raises(ConnectionError):
        await cache.get()
    store.fail = False
    return now, store, cache


async def test_answers_from_one_read_until_it_is_max_age_old() -> None:
    now = [100.0]
    store = Store(now)
    cache = CountsCache(store.read, max_age=2.0, monotonic=lambda: now[0])
    first, read_at = await cache.get()
    now[0] += 1.999
    assert await cache.get() == (first, read_at) and store.reads == 1
    now[0] += 0.001
    # A read that answers within fresh_wait (a small store's) is waited for: current counts.
    assert (await cache.get())[0] == 2 and store.reads == 2


async def test_the_read_a_caller_starts_is_waited_for_briefly_then_the_last_one_answers() -> None:
    now = [100.0]
    store = Store(now)
    cache = CountsCache(store.read, max_age=2.0, fresh_wait=0.05, monotonic=lambda: now[0])
    first = await cache.get()
    store.gate = asyncio.Event()
    now[0] += 2
    assert await asyncio.wait_for(cache.get(), 0.5) == first
    store.gate.set()
    await settled()
    assert (await cache.get())[0] == 2 and store.reads == 2


async def test_a_stale_read_is_answered_at_once_while_a_new_one_runs() -> None:
    """Once counted, a slow store never holds a caller up: each gets the last read and its
    ``as_of`` while the one read under way goes on, however many ask."""
    now = [100.0]
    store = Store(now)
    cache = CountsCache(store.read, max_age=2.0, timeout=0.05, monotonic=lambda: now[0])
    first = await cache.get()
    store.gate = asyncio.Event()  # the next read does not answer until let
    now[0] += 5
    for _ in range(10):
        assert await asyncio.wait_for(cache.get(), 1) == first
        now[0] += 5
    assert store.reads == 2  # one read under way, not one per caller
    store.gate.set()
    await settled()
    counts, as_of = await cache.get()
    assert counts == 2 and as_of > first[1]


async def test_the_interval_grows_with_how_long_a_read_took() -> None:
    """A read that took 3 s is made again no sooner than 30 s after it ended: the counts cost
    the store a tenth of its time at most, however big it is and however often they are asked."""
    now = [100.0]
    store = Store(now)
    store.takes = 3.0
    cache = CountsCache(store.read, max_age=2.0, timeout=5.0, monotonic=lambda: now[0])
    await cache.get()
    now[0] += READ_INTERVAL_FACTOR * 3.0 - 0.01
    await cache.get()
    await settled()
    assert store.reads == 1
    now[0] += 0.01
    await cache.get()
    await settled()
    assert store.reads == 2


async def test_callers_during_a_first_read_share_it() -> None:
    store = Store()
    store.gate = asyncio.Event()
    cache = CountsCache(store.read, max_age=2.0)
    waiting = [asyncio.create_task(cache.get()) for _ in range(5)]
    await asyncio.sleep(0.01)
    store.gate.set()
    assert {value for value, _ in await asyncio.gather(*waiting)} == {1}
    assert store.reads == 1


async def test_a_failed_read_is_not_kept() -> None:
    store = Store()
    store.fail = True
    cache = CountsCache(store.read, max_age=2.0)
    with pytest.raises(ConnectionError):
        await cache.get()
    store.fail = False
    assert (await cache.get())[0] == 2 and store.reads == 2


async def test_after_a_failed_read_callers_wait_for_a_new_one_rather_than_see_the_old_counts() -> None:
    """A store that went down must say so (a 503, ``cronjob_store_up 0``), not show the counts
    from before it went for ever: once a read failed, the next caller waits for another."""
    now = [100.0]
    store = Store(now)
    cache = CountsCache(store.read, max_age=2.0, monotonic=lambda: now[0])
    assert (await cache.get())[0] == 1
    store.fail = True
    now[0] += 2
    assert (await cache.get())[0] == 1  # the last counts: the caller that found them due
    await settled()
    with pytest.raises(ConnectionError):
        await cache.get()
    store.fail = False
    assert (await cache.get())[0] == 4 and store.reads == 4


async def test_a_first_read_without_an_answer_fails_as_an_unavailable_store_and_goes_on() -> None:
    """A stalled connection: the caller, and those queued behind it, get an error in time; the
    read is not started again while it runs, and what it reads answers the next caller."""
    store = Store()
    store.gate = asyncio.Event()
    cache = CountsCache(store.read, max_age=2.0, timeout=0.05)
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="did not answer within 0.05 s"):
            await asyncio.wait_for(cache.get(), 5)
    assert store.reads == 1
    store.gate.set()
    await settled()
    assert (await asyncio.wait_for(cache.get(), 5))[0] == 1 and store.reads == 1


async def test_a_read_that_never_answers_is_given_up_after_its_limit() -> None:
    store = Store()
    store.gate = asyncio.Event()  # never set
    cache = CountsCache(store.read, max_age=2.0, timeout=0.05, read_limit=0.1)
    with pytest.raises(StoreUnavailable):
        await cache.get()
    await asyncio.sleep(0.2)  # the read was given up at its limit, 0.1 s: it ran into it
    with pytest.raises(StoreUnavailable, match="could not be read"):
        await cache.get()  # at once: the next read comes 10 times 0.1 s after it ended
    assert store.reads == 1
    await asyncio.sleep(0.9)
    with pytest.raises(StoreUnavailable, match="did not answer"):
        await cache.get()
    assert store.reads == 2


async def test_a_read_that_failed_slowly_is_not_made_again_sooner_than_its_interval() -> None:
    """A count that ran into its time limit (a store too big to count within it: it failed
    having run at least half of ``read_limit``) cost the store all that time: the next read comes
    no sooner than READ_INTERVAL_FACTOR times it after, as after a read that answered, not at the
    next caller (which would keep the store counting all the time, per process). Callers
    meanwhile are answered at once: the store could not be read."""
    now, store, cache = await failed_once(6.0, timeout=10.0, read_limit=10.0)
    for _ in range(3):
        now[0] += (READ_INTERVAL_FACTOR * 6.0 - 0.01) / 3
        with pytest.raises(StoreUnavailable, match=r"could not be read \(ConnectionError: store down\)"):
            await asyncio.wait_for(cache.get(), 0.5)
    assert store.reads == 1
    now[0] += 0.01
    assert (await cache.get())[0] == 2 and store.reads == 2


async def test_a_read_that_failed_before_half_its_limit_is_made_again_by_the_next_caller() -> None:
    """A read that failed sooner than half its limit is an outage (a server not found within the
    driver's selection timeout), which cost the store nothing: the next caller reads again at
    once, so that a store that comes back shows as soon as it is asked."""
    now, store, cache = await failed_once(6.0, timeout=10.0, read_limit=20.0)
    now[0] += 0.5
    assert (await cache.get())[0] == 2 and store.reads == 2


async def test_the_wait_after_a_read_that_ran_into_its_limit_is_bounded() -> None:
    """A 60 s count that failed is read again 10 times as late, but LONGEST_FAILED_WAIT at most
    (a store that hangs every call until its limit, then comes back, is counted again by then)."""
    now, store, cache = await failed_once(60.0, timeout=100.0, read_limit=65.0)
    now[0] += LONGEST_FAILED_WAIT - 0.01
    with pytest.raises(StoreUnavailable, match="could not be read"):
        await asyncio.wait_for(cache.get(), 0.5)
    now[0] += 0.01
    assert (await cache.get())[0] == 2 and store.reads == 2
