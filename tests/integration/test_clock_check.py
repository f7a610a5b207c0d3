"""A process whose clock is off the store's says so: the offset is measured against MongoDB's
server clock (its ``hello``), reported as a metric, and logged when it is too far either way."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from cronjob.ports.clock import Clock, SystemClock
from cronjob.ports.metrics import NullMetrics
from cronjob.services.clock_check import ClockCheck, keep_checking
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser

SLACK = timedelta(seconds=20)  # a 30 s lease renewed every 10 s


class ShiftedClock(Clock):
    """The machine's clock, ``shift`` off: a host whose time synchronisation broke."""

    def __init__(self, shift: timedelta) -> None:
        self._shift = shift

    def now(self) -> datetime:
        return SystemClock().now() + self._shift


class Offsets(NullMetrics):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def clock_offset(self, seconds: float) -> None:
        self.seen.append(seconds)


@pytest.fixture
async def mongo(mongodb_uri: str) -> AsyncIterator[MongoScheduleRepository]:
    repo = MongoScheduleRepository.from_uri(mongodb_uri, f"clock_{uuid.uuid4().hex[:12]}",
                                            ScheduleCodec(default_trigger_parser()))
    yield repo
    await repo.close()


@pytest.mark.parametrize(("shift", "words"), [
    (60, ["60.0 s ahead of the store's", "runs that much early", "taken over"]),
    (-5, ["5.0 s behind the store's", "runs that much late"]),
])
async def test_a_clock_off_the_mongodb_servers_is_measured_and_logged(
        mongo: MongoScheduleRepository, caplog: pytest.LogCaptureFixture, shift: int, words: list[str]) -> None:
    metrics = Offsets()
    check = ClockCheck(mongo, ShiftedClock(timedelta(seconds=shift)), metrics, slack=SLACK)
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        offset = await check.check()
    assert offset is not None and abs(offset.total_seconds() - shift) < 0.5, offset
    assert len(metrics.seen) == 1 and abs(metrics.seen[0] - shift) < 0.5
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    for word in words:
        assert word in record.getMessage(), record.getMessage()
    if shift < 20:
        assert "taken over" not in record.getMessage()


async def test_a_clock_that_agrees_is_quiet_and_one_put_right_is_said_once(
        mongo: MongoScheduleRepository, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Offsets()
    clock = ShiftedClock(timedelta(seconds=30))
    check = ClockCheck(mongo, clock, metrics, slack=SLACK)
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        await check.check()
        clock._shift = timedelta(0)  # NTP put it right
        offset = await check.check()
        await check.check()
    assert offset is not None and abs(offset.total_seconds()) < 0.5
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert "back within" in caplog.records[1].getMessage()
    assert abs(metrics.seen[-1]) < 0.5


async def test_a_store_on_this_hosts_clock_has_nothing_to_compare(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Offsets()
    check = ClockCheck(InMemoryScheduleRepository(), ShiftedClock(timedelta(seconds=60)), metrics, slack=SLACK)
    with caplog.at_level(logging.INFO, logger="cronjob.services.clock_check"):
        assert await check.check() is None
        await asyncio.wait_for(keep_checking(check, asyncio.Event()), 1.0)  # nothing to keep checking
    assert metrics.seen == [] and caplog.records == []
