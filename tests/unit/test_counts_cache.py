"""CountsCache: one read of the store per max_age, shared by concurrent callers, failures not kept."""

from __future__ import annotations

import asyncio

import pytest

from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.web.counts_cache import CountsCache


class Store:
    def __init__(self) -> None:
        self.reads = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def read(self) -> int:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("store down")
        return self.reads


async def test_answers_from_one_read_until_it_is_max_age_old() -> None:
    store, now = Store(), [100.0]
    cache = CountsCache(store.read, max_age=2.0, monotonic=lambda: now[0])
    first, read_at = await cache.get()
    now[0] += 1.999
    assert await cache.get() == (first, read_at) and store.reads == 1
    now[0] += 0.001
    assert (await cache.get())[0] == 2 and store.reads == 2


async def test_callers_during_a_read_share_it() -> None:
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


async def test_a_read_without_an_answer_fails_as_an_unavailable_store() -> None:
    """A stalled connection: the caller, and those queued behind it, get an error in time."""
    store = Store()
    store.gate = asyncio.Event()  # never set: the read never answers
    cache = CountsCache(store.read, max_age=2.0, timeout=0.05)
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="did not answer within 0.05 s"):
            await asyncio.wait_for(cache.get(), 5)
    assert store.reads == 2  # the failed read was not kept
