"""More requests at once than a process is bounded to (``CRONJOB_MAX_REQUESTS_IN_FLIGHT``): the
service's own server (``runtime.run``) over real sockets on loopback.

Beyond the bound a request is answered 503 problem+json with ``Retry-After`` at once, before
anything reads it, instead of queueing behind the others until the probes time out and Kubernetes
restarts a process that is merely busy. The probes and ``/metrics`` are never refused. A refused
request did nothing: sent again with its ``Idempotency-Key`` once there is room, it is made once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from cronjob.ports.clock import SystemClock
from cronjob_bootstrap.settings import Settings
from tests.support.app import AUTH, TOKEN, make_container
from tests.support.processes import free_port
from tests.support.serving import creation_head, serving
from tests.support.waiting import PROMPTLY

BOUND = 5


def _message(to: str) -> bytes:
    return json.dumps({"to": to, "body": "Olá, {{1}}!", "type": "template", "templateName": "oi",
                       "params": ["Ana"], "send_at": "2030-06-21T14:00:00Z"}).encode()


@contextlib.asynccontextmanager
async def _serving(max_requests_in_flight: int) -> AsyncIterator[httpx.AsyncClient]:
    """The API (in memory) served by ``runtime.run`` on a free port with that bound (and a body
    timeout long enough to hold requests in flight with a body not sent yet); a client of it."""
    port = free_port()
    settings = {"max_requests_in_flight": max_requests_in_flight, "body_timeout_seconds": 60.0}
    container = make_container(SystemClock(), **settings)
    async with serving(container, Settings(api_tokens=TOKEN, port=port, **settings)):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=PROMPTLY) as http:
            yield http


class _Held:
    """Creations held in flight: their heads sent, their bodies not yet."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]] = []

    async def hold(self, count: int) -> None:
        for i in range(len(self.connections), len(self.connections) + count):
            body = _message(f"55119000{i:05d}")
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(creation_head(len(body), f"held-{i}"))
            await writer.drain()
            self.connections.append((reader, writer, body))

    async def finish(self) -> list[int]:
        """Send the bodies; the status each was answered with."""
        statuses = []
        for reader, writer, body in self.connections:
            writer.write(body)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PROMPTLY)
            statuses.append(int(head.split(b" ", 2)[1]))
        self.close()
        return statuses

    def close(self) -> None:
        for _, writer, _ in self.connections:
            writer.close()
        self.connections = []


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with _serving(BOUND) as client:
        yield client


@pytest.fixture
async def held(http: httpx.AsyncClient) -> AsyncIterator[_Held]:
    holding = _Held(http.base_url.port or 0)
    try:
        yield holding
    finally:
        holding.close()


async def _until_refused(http: httpx.AsyncClient) -> None:
    """Ask for the task types until the process refuses one (its held requests are all in)."""
    async with asyncio.timeout(PROMPTLY):
        while (await http.get("/v1/task-types")).status_code != 503:
            await asyncio.sleep(0.01)


async def _create(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post("/schedule-message", content=_message("5511999999999"),
                           headers={"Content-Type": "application/json", "Idempotency-Key": key})


async def test_beyond_the_bound_a_request_is_refused_at_once_and_the_probes_still_answer(
        http: httpx.AsyncClient, held: _Held) -> None:
    await held.hold(BOUND)
    await _until_refused(http)

    # At once: not queued behind the held ones (their bodies would hold them for 60 s).
    answer = await asyncio.wait_for(_create(http, "the-next-one"), PROMPTLY)
    refused = 2  # the task types that found the bound reached, and this one
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"
    problem = answer.json()
    assert problem["status"] == 503 and problem["title"] == "Too many requests in flight"
    assert f"serving {BOUND} requests already (CRONJOB_MAX_REQUESTS_IN_FLIGHT)" in problem["detail"]
    assert answer.headers["x-request-id"]

    for probe in ("/livez", "/readyz", "/healthcheck"):
        assert (await http.get(probe)).status_code == 200, probe
        assert (await http.head(probe)).status_code == 200, probe
    metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert f'cronjob_http_requests_refused_total{{limit="max_requests_in_flight"}} {float(refused)}' in metrics.text

    # Once the held ones end, requests are accepted again; the refused one had made nothing, and
    # sent again with its key it is made once.
    assert await held.finish() == [201] * BOUND
    first = await _create(http, "the-next-one")
    assert first.status_code == 201
    again = await _create(http, "the-next-one")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    listed = (await http.get("/v1/schedules", params={"limit": 100})).json()["items"]
    assert len(listed) == BOUND + 1


async def test_requests_whose_clients_went_away_free_their_places(http: httpx.AsyncClient, held: _Held) -> None:
    await held.hold(BOUND)
    await _until_refused(http)
    held.close()  # the clients give up before sending their bodies: nothing is made
    async with asyncio.timeout(PROMPTLY):
        while (answer := await _create(http, "after-they-left")).status_code == 503:
            await asyncio.sleep(0.01)
    assert answer.status_code == 201
    assert [s["id"] for s in (await http.get("/v1/schedules")).json()["items"]] == [answer.json()["id"]]


async def test_the_probes_are_not_counted_in_the_bound(http: httpx.AsyncClient, held: _Held) -> None:
    # With one place left, many probes at once all answer, and leave that place free.
    await held.hold(BOUND - 1)
    await asyncio.sleep(0.2)  # the held ones are in
    answers = await asyncio.gather(*(http.get(p) for p in ("/livez", "/readyz", "/healthcheck", "/metrics") * 5))
    assert [a.status_code for a in answers] == [200] * 20
    assert (await _create(http, "the-last-place")).status_code == 201
    await held.hold(1)
    await _until_refused(http)  # (the bound is there)


async def test_zero_is_no_bound() -> None:
    async with _serving(0) as http:
        held = _Held(http.base_url.port or 0)
        try:
            await held.hold(BOUND * 4)
            await asyncio.sleep(0.2)
            assert (await _create(http, "one-more")).status_code == 201
            assert await held.finish() == [201] * BOUND * 4
        finally:
            held.close()
