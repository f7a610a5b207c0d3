"""The fixtures of an HTTP test module on the in-memory app: ``clock`` at the module's own
``NOW``, a ``container`` on the shipped in-memory store, and a ``client`` of its app (no token
sent: each test sends :data:`tests.support.app.AUTH` as it needs). Import them into the module
(``from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest

from cronjob.domain.message import OutboundMessage
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.app import api_client, make_container
from tests.support.clock import FixedClock


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> FixedClock:
    return FixedClock(request.module.NOW)


@pytest.fixture
def container(clock: FixedClock) -> Container:
    return make_container(clock)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container) as http:
        yield http


async def sent_at(container: Container, clock: FixedClock, now: datetime) -> list[OutboundMessage]:
    """Every message the container's dispatcher sends with the clock at ``now`` (its recording
    sender's record, from the start)."""
    clock.set(now)
    dispatcher = container.dispatcher()
    await dispatcher.dispatch_due()
    await dispatcher.drain(5)
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    return list(sender.sent)
