"""AsyncioTimerEngine end to end in memory, on the real clock (loose timing bounds only).

What every engine must do (stop, drain, a failing store, ...) is in
``tests/contract/test_scheduler_engine.py``; these are the timer's own: its wake-ups. Both run
on the replica of ``tests.support.engine_rig``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.engine_rig import Rig
from tests.support.waiting import PROMPTLY, until

#: The timer's poll interval here: long, so that whatever runs sooner was woken by the timer or the signal.
LONG_POLL = 30.0


def timer_rig(repository: InMemoryScheduleRepository | None = None) -> Rig:
    """One replica on the AsyncioTimerEngine, polling only every ``LONG_POLL`` seconds."""
    return Rig("timer", repository, poll_interval=LONG_POLL, drain_timeout=2.0)


async def test_a_message_is_sent_after_it_is_due_and_not_before() -> None:
    rig = timer_rig()
    due = rig.clock.now() + timedelta(seconds=0.2)
    schedule_id = await rig.schedule(due, "na hora")
    async with rig.running():
        await asyncio.sleep(0.05)
        assert rig.sender.sent == []  # well before it is due
        await until(lambda: len(rig.sender.sent) == 1, timeout=PROMPTLY)  # the bound: promptly once due
        assert rig.sender.sent[0].body == "na hora"
        assert rig.sender.sent_at[0] >= due, "sent before it was due"
        stored = await rig.repository.get(schedule_id)
        assert stored is not None and stored.status.value == "succeeded"
        await asyncio.sleep(0.1)
        assert len(rig.sender.sent) == 1  # once
    assert rig.engine.last_tick is not None


async def test_work_due_later_wakes_the_engine_at_its_due_time() -> None:
    rig = timer_rig()
    async with rig.running():
        await until(lambda: rig.engine.last_tick is not None)
        due = rig.clock.now() + timedelta(seconds=0.3)
        await rig.schedule(due, "depois")
        await until(lambda: len(rig.sender.sent) == 1)
        assert rig.sender.sent_at[0] >= due


class LosesFirstClaims(InMemoryScheduleRepository):
    """Answers the first ``losses`` claims with nothing, as when another replica won the race,
    while ``next_due_at`` still reports the work as due."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    async def claim_due(self, **kwargs: Any) -> list[Schedule]:  # type: ignore[override]
        if self.losses > 0:
            self.losses -= 1
            return []
        return await super().claim_due(**kwargs)


async def test_due_work_lost_to_another_claim_is_looked_at_again_without_errors(
        caplog: pytest.LogCaptureFixture) -> None:
    rig = timer_rig(LosesFirstClaims(losses=3))
    schedule_id = await rig.schedule(rig.clock.now())
    async with rig.running():
        await until(lambda: len(rig.sender.sent_at) == 1)
    stored = await rig.repository.get(schedule_id)
    assert stored is not None and stored.status is ScheduleStatus.SUCCEEDED
    assert not [r for r in caplog.records if r.name == "cronjob_adapters.engine.timer"]  # no loop error
