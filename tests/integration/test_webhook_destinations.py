"""Status webhooks per destination, end to end on the real engine and the system clock: a receiver
that hangs holds at most ``CRONJOB_WEBHOOK_PER_DESTINATION`` deliveries of a replica, so the
deliveries to other receivers go out meanwhile; those held back are all sent, each once, once
it answers. Real receivers on 127.0.0.1 (each its own port: its own
destination); what a receiver that hangs holds is released by the test, never by a timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cronjob.ports.clock import SystemClock
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH
from tests.support.app import make_container as app_container
from tests.support.builders import SEED
from tests.support.waiting import until
from tests.support.webhook_receiver import Receiver

SECRET = "whsec-test-0123456789"
#: Less than a delivery's own timeout (10 s), after which a receiver that hangs lets go of its
#: deliveries anyway: what arrives within it arrived while the slow receiver still held its own.
WHILE_HELD = 5.0


def _receiver() -> Iterator[Receiver]:
    server = Receiver(SECRET, time.time).start()
    try:
        yield server
    finally:
        server.stop()


#: Two receivers, each on a port of its own: two destinations.
slow = pytest.fixture(_receiver, name="slow")
fast = pytest.fixture(_receiver, name="fast")


def make_container(**settings: Any) -> Container:
    return app_container(SystemClock(), **{
        "webhook_secret": SECRET, "http_allow_hosts": "127.0.0.1", "poll_interval_seconds": 0.05, **settings})


async def running(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The API's client while the container's engine runs (stopped, and its runs drained, after)."""
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as client:
        stop = asyncio.Event()
        engine = asyncio.create_task(container.engine().run(stop))
        try:
            yield client
        finally:
            stop.set()
            await engine


async def schedule(client: httpx.AsyncClient, callback_url: str) -> str:
    """A message due in an hour: its ``scheduled`` event is the one webhook sent now."""
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await client.post("/schedule-message", json={**SEED, "send_at": send_at, "callback_url": callback_url})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_receiver_that_hangs_does_not_hold_back_the_deliveries_to_another(
        slow: Receiver, fast: Receiver) -> None:
    release = slow.hold("/slow")
    # Four webhook slots (half of 8), at most two of them for one destination.
    container = make_container(max_in_flight=8, webhook_per_destination=2)
    try:
        async for client in running(container):
            hanging = [await schedule(client, slow.url("/slow")) for _ in range(6)]
            await until(lambda: len(slow.at("/slow")) >= 2, timeout=WHILE_HELD)
            other = await schedule(client, fast.url("/fast"))
            await until(lambda: len(fast.at("/fast")) == 1, timeout=WHILE_HELD)
            assert not release.is_set()
            assert len(slow.at("/slow")) == 2  # the limit: two in hand, the four others held back
            release.set()
            await until(lambda: len(slow.at("/slow")) == 6, timeout=WHILE_HELD)
    finally:
        release.set()
    [delivered] = fast.at("/fast")
    assert delivered.verified and delivered.event["schedule_id"] == other
    # Every delivery held back was sent, once.
    assert sorted(d.event["schedule_id"] for d in slow.at("/slow")) == sorted(hanging)
    assert all(d.verified for d in slow.all)
