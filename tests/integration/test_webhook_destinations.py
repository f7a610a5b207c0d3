"""Status webhooks per destination, end to end on the real engine and the system clock: a receiver
that hangs holds at most ``CRONJOB_WEBHOOK_PER_DESTINATION`` deliveries of a replica, so the
deliveries to other receivers go out meanwhile; those held back are all sent, each once, in
their order, once it answers. Real receivers on 127.0.0.1 (each its own port: its own
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


async def test_deliveries_held_back_keep_their_order_and_later_ones_wait_behind_them(slow: Receiver) -> None:
    release = slow.hold("/slow")
    container = make_container(webhook_per_destination=1)
    repository = container.repository()

    async def held_back(ids: list[str]) -> bool:
        """Whether the deliveries of ``ids``' events have each been given back to wait."""
        jobs = await repository.list(task_types=("webhook.delivery",), limit=100)
        waiting = {j.metadata["schedule_id"] for j in jobs if j.next_run_at and j.next_run_at > j.created_at}
        return set(ids) <= waiting

    try:
        async for client in running(container):
            ids = []
            for _ in range(5):
                ids.append(await schedule(client, slow.url("/slow")))
                await asyncio.sleep(0.003)  # events a few milliseconds apart: their order is theirs
            await until(lambda: len(slow.at("/slow")) == 1, timeout=WHILE_HELD)
            deadline = time.monotonic() + WHILE_HELD
            while not await held_back(ids[1:]):
                assert time.monotonic() < deadline, "the deliveries behind the one in hand were not held back"
                await asyncio.sleep(0.02)
            ids.append(await schedule(client, slow.url("/slow")))  # comes after those in line
            assert len(slow.at("/slow")) == 1 and not release.is_set()
            release.set()
            await until(lambda: len(slow.at("/slow")) == 6, timeout=30)
    finally:
        release.set()
    assert [d.event["schedule_id"] for d in slow.at("/slow")] == ids
    assert all(d.verified for d in slow.all)
