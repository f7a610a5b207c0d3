"""Meta's rate limits hold back the sends they concern, without spending attempts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cronjob.domain.message import DeliveryError, MessageKind
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import WHATSAPP_TEMPLATE, WHATSAPP_TEXT, ScheduleMessageCommand
from cronjob.services.scheduling import SchedulingService
from cronjob.services.throttle import RateLimitThrottle
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.whatsapp.errors import error_from_response
from tests.support.fake_whatsapp import graph_error
from tests.support.clock import FixedClock

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def meta_error(code: int, retry_after: str | None = None) -> DeliveryError:
    """The error the WhatsApp adapter makes of Meta's answer with this Graph error code."""
    return error_from_response(400, json.dumps(graph_error(code, "limit")).encode(), retry_after=retry_after)


class Rig:
    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.repository = InMemoryScheduleRepository()
        self.sender = RecordingMessageSender()
        signal = InProcessWorkSignal(self.clock)
        self.service = SchedulingService(self.repository, self.clock, signal)
        handler = WhatsAppMessageHandler(self.sender, RateLimitThrottle(self.clock, timedelta(seconds=30)))
        self.dispatcher = Dispatcher(self.repository, {WHATSAPP_TEXT: handler, WHATSAPP_TEMPLATE: handler},
                                     self.clock, signal, DispatcherSettings(owner="r1"), jitter=lambda: 1.0)

    async def message(self, to: str) -> Schedule:
        command = ScheduleMessageCommand(to=to, body="Oi", kind=MessageKind.TEXT, send_at=NOW,
                                         send_at_text=NOW.isoformat(), timezone="UTC")
        return (await self.service.schedule_message(command)).schedule

    async def run(self) -> None:
        await self.dispatcher.dispatch_due()
        await self.dispatcher.drain(5)

    async def stored(self, schedule_id: str) -> Schedule:
        found = await self.repository.get(schedule_id)
        assert found is not None
        return found


@pytest.mark.parametrize("code", [4, 17, 80007, 130429])
async def test_an_account_rate_limit_defers_every_other_send(code: int) -> None:
    rig = Rig()
    first = await rig.message("5511900000001")
    rig.sender.fail_with(meta_error(code, retry_after="60"))
    await rig.run()
    assert (await rig.stored(first.id)).attempts[-1].outcome == "retrying"
    second = await rig.message("5511900000002")
    await rig.run()
    held = await rig.stored(second.id)
    assert rig.sender.sent == [] and held.attempts == []  # not sent, no attempt spent
    # Held back before it started: no `started` event (nor its webhook) for a send not made.
    assert [e.type for e in held.events] == ["scheduled"]
    assert held.status is ScheduleStatus.SCHEDULED and held.next_run_at == NOW + timedelta(seconds=60)
    rig.clock.advance(timedelta(seconds=61))
    await rig.run()
    assert len(rig.sender.sent) == 2
    sent = await rig.stored(second.id)
    assert sent.status is ScheduleStatus.SUCCEEDED
    assert [e.type for e in sent.events] == ["scheduled", "started", "succeeded"]


async def test_a_pair_rate_limit_holds_back_that_recipient_only() -> None:
    rig = Rig()
    await rig.message("5511900000001")
    rig.sender.fail_with(meta_error(131056))
    await rig.run()
    again = await rig.message("5511900000001")
    other = await rig.message("5511900000002")
    await rig.run()
    assert [m.to for m in rig.sender.sent] == ["5511900000002"]
    assert (await rig.stored(other.id)).status is ScheduleStatus.SUCCEEDED
    held = await rig.stored(again.id)
    assert held.attempts == [] and held.next_run_at == NOW + timedelta(seconds=30)
    assert [e.type for e in held.events] == ["scheduled"]


async def test_other_errors_do_not_throttle() -> None:
    rig = Rig()
    await rig.message("5511900000001")
    rig.sender.fail_with(meta_error(132001))
    await rig.run()
    other = await rig.message("5511900000001")
    await rig.run()
    assert (await rig.stored(other.id)).status is ScheduleStatus.SUCCEEDED
