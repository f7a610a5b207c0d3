"""The MongoDB store through a replica set's fail-over, as the driver reports it.

During an election the driver retries a retryable read or write once; what it raises when that
retry fails too is as often an ``OperationFailure`` (a ``WriteConcernError`` with the stepped-down
primary's code, ``ExceededTimeLimit``, ``MaxTimeMSExpired``) as a ``ConnectionFailure``. Each must
reach the service as :class:`StoreUnavailable` (503 with ``Retry-After``, a scheduler backing
off), never as a 500. The errors come from the test server's own ``failCommand`` fail point,
which MongoDB's driver tests use, on a server of this module's own (fail points are server-wide).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.mongodb.change_stream import watch_new_work
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, make_container
from tests.support.builders import SEED, T0, one_off
from tests.support.clock import FixedClock
from tests.support.mongo_server import MongoTestServer
from tests.support.signal import RecordingSignal

Document = dict[str, Any]
Call = Callable[[MongoScheduleRepository], Awaitable[object]]

#: A primary that stepped down while it waited for the majority: the write is applied there, not
#: confirmed (the server labels it retryable; the driver's retry found no primary in time).
STEPPED_DOWN = {"writeConcernError": {"code": 189, "errmsg": "primary stepped down"},
                "errorLabels": ["RetryableWriteError"]}
#: ``w: majority`` not reached within its time.
WTIMEOUT = {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out",
                                  "errInfo": {"wtimeout": True}}}


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = MongoTestServer(tmp_path_factory.mktemp("failover") / "data")
    yield server.start()
    server.stop()


@pytest.fixture
async def fail_point(server_uri: str) -> AsyncIterator[Callable[[list[str], Document], Awaitable[None]]]:
    """Make the server fail the named commands, as ``data`` says, until the test ends."""
    admin: AsyncMongoClient[Document] = AsyncMongoClient(server_uri)

    async def arm(commands: list[str], data: Document) -> None:
        await admin.admin.command({"configureFailPoint": "failCommand", "mode": "alwaysOn",
                                   "data": {"failCommands": commands, **data}})

    yield arm
    await admin.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    await admin.close()


@pytest.fixture
async def repo(server_uri: str) -> AsyncIterator[MongoScheduleRepository]:
    database = f"failover_{uuid.uuid4().hex[:12]}"
    # The driver's retry after a stepped-down primary gives up after 0.3 s, as it does after 5 s
    # of an election that takes longer (it looks again at the server only 10 s later; sooner,
    # the retry finds the write applied, as a new primary that has it answers).
    # Within its operation timeout the driver keeps retrying (PyMongo's client-side operation
    # timeout): 1 s here rather than 10 s.
    repository = MongoScheduleRepository.from_uri(server_uri, database, ScheduleCodec(default_trigger_parser()),
                                                  server_selection_timeout_ms=300, operation_timeout=1.0)
    await repository.initialize()
    await repository.add(one_off(T0, schedule_id="waiting"))
    yield repository
    await repository.close()
    # By a client of its own: the repository's may still hold the server for one that stepped down.
    cleaner: AsyncMongoClient[Document] = AsyncMongoClient(server_uri)
    await cleaner.drop_database(database)
    await cleaner.close()


async def _save(repo: MongoScheduleRepository) -> object:
    schedule = await repo.get("waiting")
    assert schedule is not None
    schedule.pause(now=T0)
    return await repo.save(schedule, expected_status=ScheduleStatus.SCHEDULED)


async def _claim(repo: MongoScheduleRepository) -> object:
    return await repo.claim_due(now=T0 + timedelta(minutes=1), owner="r1", lease_for=timedelta(seconds=30), limit=5)


async def _list(repo: MongoScheduleRepository) -> object:
    return await repo.list(limit=10)


async def _count(repo: MongoScheduleRepository) -> object:
    return await repo.count_by_status_and_type()


async def _add(repo: MongoScheduleRepository) -> object:
    await repo.add(one_off(T0))
    return None


@pytest.mark.parametrize(("commands", "data", "call"), [
    pytest.param(["update"], STEPPED_DOWN, _save, id="save-stepped-down-in-majority-wait"),
    pytest.param(["insert"], WTIMEOUT, _add, id="add-majority-timed-out"),
    pytest.param(["find"], {"errorCode": 262}, _claim, id="claim-exceeded-time-limit"),
    pytest.param(["find"], {"errorCode": 50}, _list, id="list-max-time-ms-expired"),
    pytest.param(["aggregate"], {"errorCode": 134}, _count, id="count-majority-read-not-available-yet"),
])
async def test_what_the_driver_could_not_retry_away_is_store_unavailable(
        repo: MongoScheduleRepository, fail_point: Callable[[list[str], Document], Awaitable[None]],
        commands: list[str], data: Document, call: Call) -> None:
    await fail_point(commands, data)
    with pytest.raises(StoreUnavailable):
        await call(repo)


async def test_an_error_that_waiting_would_not_cure_is_left_as_it_is(
        repo: MongoScheduleRepository, fail_point: Callable[[list[str], Document], Awaitable[None]]) -> None:
    await fail_point(["find"], {"errorCode": 2})  # BadValue: a wrong query is a bug, not an outage
    with pytest.raises(OperationFailure) as raised:
        await _list(repo)
    assert not isinstance(raised.value, StoreUnavailable)


async def test_the_api_answers_503_when_the_majority_is_out_of_reach_and_a_retry_with_the_key_finds_the_schedule(
        server_uri: str, fail_point: Callable[[list[str], Document], Awaitable[None]]) -> None:
    database = f"failover_api_{uuid.uuid4().hex[:12]}"
    container = make_container(FixedClock(datetime(2025, 6, 21, 16, 0, tzinfo=UTC)), store="mongodb",
                               mongodb_uri=server_uri, mongodb_database=database)
    repository = container.repository()
    await repository.initialize()
    # raise_app_exceptions=False: a 500 is answered as uvicorn would answer it, not raised here.
    transport = httpx.ASGITransport(app=container.app(), raise_app_exceptions=False)
    headers = {**AUTH, "Idempotency-Key": "order-1"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:
            await fail_point(["insert"], WTIMEOUT)
            during = await http.post("/schedule-message", json=SEED)
            assert during.status_code == 503, during.text
            assert during.headers["retry-after"] == "5"
            await fail_point([], {})  # the majority is back
            again = await http.post("/schedule-message", json=SEED)
            # The write was applied on the primary, not yet confirmed by a majority: the retry
            # with the key finds it (a replay), rather than creating a second schedule.
            assert again.status_code == 200, again.text
            listed = await http.get("/v1/schedules")
            assert [s["id"] for s in listed.json()["items"]] == [again.json()["id"]]
    finally:
        await repository.close()
        cleaner: AsyncMongoClient[Document] = AsyncMongoClient(server_uri)
        await cleaner.drop_database(database)
        await cleaner.close()



def _said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "cronjob_adapters.mongodb.change_stream" and r.levelno == level]


async def test_a_server_without_change_streams_is_said_once_and_not_asked_again(
        repo: MongoScheduleRepository, fail_point: Callable[[list[str], Document], Awaitable[None]],
        caplog: pytest.LogCaptureFixture) -> None:
    """A standalone mongod refuses $changeStream for good: one warning, then the poll alone (the
    watcher used to warn and retry every 5 s for the process's whole life). It still ends only
    at stop, since the runtime takes a role that ends on its own for a failure."""
    await fail_point(["aggregate"], {"errorCode": 40573,
                                     "errmsg": "The $changeStream stage is only supported on replica sets"})
    stop = asyncio.Event()
    with caplog.at_level(logging.DEBUG, logger="cronjob_adapters.mongodb.change_stream"):
        watching = asyncio.create_task(watch_new_work(repo, RecordingSignal(FixedClock(T0)), stop, retry_after=0.02))
        await asyncio.sleep(0.5)
        assert not watching.done()
        stop.set()
        await asyncio.wait_for(watching, 5)
    [warning] = _said(caplog, logging.WARNING)
    assert "offers no change streams" in warning and "40573" in warning
    assert _said(caplog, logging.INFO) == [] and _said(caplog, logging.DEBUG) == []


async def test_an_outage_of_the_stream_is_logged_once_and_its_end_too(
        repo: MongoScheduleRepository, fail_point: Callable[[list[str], Document], Awaitable[None]],
        caplog: pytest.LogCaptureFixture) -> None:
    await fail_point(["aggregate"], {"errorCode": 262, "errmsg": "operation exceeded time limit"})
    woken, stop = RecordingSignal(FixedClock(T0)), asyncio.Event()
    with caplog.at_level(logging.DEBUG, logger="cronjob_adapters.mongodb.change_stream"):
        watching = asyncio.create_task(watch_new_work(repo, woken, stop, retry_after=0.02))
        await asyncio.sleep(0.5)  # many tries meanwhile
        assert len(_said(caplog, logging.WARNING)) == 1 and len(_said(caplog, logging.DEBUG)) >= 2
        await fail_point([], {})  # the server is back
        assert await until_true(lambda: bool(_said(caplog, logging.INFO)))
        await repo.add(one_off(T0 + timedelta(days=1)))
        assert await until_true(lambda: woken.notified == [T0 + timedelta(days=1)])
        stop.set()
        await asyncio.wait_for(watching, 5)
    assert len(_said(caplog, logging.WARNING)) == 1
    assert _said(caplog, logging.INFO) == ["change stream open again (it failed with OperationFailure meanwhile)"]


async def until_true(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()
