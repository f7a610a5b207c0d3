"""QuietCollector: no automatic full collections; full ones when the engine says it is idle."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from cronjob.ports.clock import SystemClock
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob_adapters.engine.collector import QuietCollector
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.support.waiting import until


class Node:
    """Something that can sit in a reference cycle and be watched with a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


class FullPasses:
    """Counts the full (generation 2) collections that run while it is installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.count += 1


@pytest.fixture
def full_passes() -> Iterator[FullPasses]:
    counter = FullPasses()
    gc.callbacks.append(counter)
    yield counter
    gc.callbacks.remove(counter)


@pytest.fixture
def collector() -> Iterator[QuietCollector]:
    made = QuietCollector(min_quiet=0.2, max_interval=300.0)
    yield made
    made.uninstall()


def old_cycle() -> weakref.ref[Node]:
    """A reference cycle that is garbage and sits in the oldest generation."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(1)  # survives two young passes: now in generation 2
    ref = weakref.ref(a)
    del a, b
    return ref


def churn(young_passes: int) -> None:
    """Make CPython run at least ``young_passes`` generation-1 collections on its own."""
    alive_at_once = gc.get_threshold()[0] + 100  # more new containers than generation 0 holds
    for _ in range(young_passes * 12):
        keep = [[] for _ in range(alive_at_once)]
        del keep


def test_install_switches_automatic_full_collections_off_and_uninstall_restores_them(
        collector: QuietCollector, full_passes: FullPasses) -> None:
    before = gc.get_threshold()
    collector.install()
    collector.install()  # idempotent
    full_passes.count = 0  # the one install runs to start from a clean heap
    assert gc.get_threshold()[:2] == before[:2]
    assert gc.get_threshold()[2] > 10**9
    ref = old_cycle()
    churn(young_passes=40)  # four times what makes CPython consider a full pass
    assert full_passes.count == 0
    assert ref() is not None  # the old cycle waits for a full pass
    collector.uninstall()
    collector.uninstall()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_collects_only_when_owed_and_quiet_long_enough(
        collector: QuietCollector, full_passes: FullPasses) -> None:
    collector.install()
    full_passes.count = 0
    ref = old_cycle()
    assert not collector.should_collect(5.0)  # nothing owed yet
    churn(young_passes=12)
    assert collector.owed
    assert not collector.should_collect(0.0)  # busy
    assert not collector.should_collect(0.05)  # a short sleep: not worth a pause
    assert collector.should_collect(0.5)
    collector.collect()
    assert full_passes.count == 1 and collector.full_collections == 1
    assert ref() is None
    assert not collector.owed and not collector.should_collect(5.0)


def test_a_busy_process_still_collects_every_max_interval(full_passes: FullPasses) -> None:
    now = [0.0]
    collector = QuietCollector(max_interval=60.0, monotonic=lambda: now[0])
    try:
        collector.install()
        churn(young_passes=1)
        assert not collector.should_collect(0.0)
        now[0] = 59.0
        assert not collector.should_collect(0.0)
        now[0] = 60.0
        assert collector.should_collect(0.0)  # never quiet: collect anyway, once it is this old
        collector.collect()
        assert not collector.should_collect(0.0)
    finally:
        collector.uninstall()


async def test_the_timer_engine_collects_when_nothing_is_due(collector: QuietCollector) -> None:
    clock = SystemClock()
    repository = InMemoryScheduleRepository()
    signal = InProcessWorkSignal(clock)
    dispatcher = Dispatcher(repository, {}, clock, signal, DispatcherSettings(owner="gc-test"))
    engine = AsyncioTimerEngine(dispatcher, repository, signal, clock, poll_interval=0.5, collector=collector)
    collector.install()
    churn(young_passes=12)
    assert collector.owed
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    await until(lambda: collector.full_collections > 0)
    stop.set()
    await running
    assert not collector.owed


def test_two_collectors_in_one_process_restore_the_thresholds_whatever_the_order() -> None:
    before = gc.get_threshold()
    first, second = QuietCollector(), QuietCollector()
    try:
        first.install()
        second.install()
        first.uninstall()
        assert gc.get_threshold()[2] > 10**9  # the second still holds the full collections
        second.uninstall()
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
    finally:
        first.uninstall()
        second.uninstall()


def test_a_pause_must_fit_in_the_idle_time(collector: QuietCollector) -> None:
    collector.install()
    churn(young_passes=12)
    collector.last_pause = 0.4  # the last full pass took 0.4 s
    assert not collector.should_collect(0.5)
    assert collector.should_collect(0.8)
