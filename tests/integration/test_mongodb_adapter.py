"""The MongoDB store against a real wire-protocol server: indexes, outages, concurrent claimers.

The shared behaviour is in ``tests/contract``; these tests cover what only this adapter has.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import KEYS_PER_QUERY, StoreUnavailable
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import T0, one_off
from tests.support.mongo_commands import Commands
from tests.support.mongo_server import MongoTestServer
from tests.support.waiting import wait_until

LEASE = timedelta(seconds=30)
RepoFactory = Callable[[], Awaitable[MongoScheduleRepository]]


def _repo(uri: str, database: str, *, timeout_ms: int = 5000) -> MongoScheduleRepository:
    return MongoScheduleRepository.from_uri(uri, database, ScheduleCodec(default_trigger_parser()),
                                            server_selection_timeout_ms=timeout_ms)


async def _until_reachable(repo: MongoScheduleRepository, within: float = 10.0) -> None:
    """Ping until the store answers: the driver re-checks a failed server at most every 0.5 s,
    which is longer than the 0.3 s server selection timeout of the outage test."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await repo.ping()
            return
        except StoreUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture
async def repos(mongodb_uri: str) -> AsyncIterator[RepoFactory]:
    """New repositories, each with its own client, on one fresh database (dropped afterwards)."""
    database = f"integration_{uuid.uuid4().hex[:12]}"
    made: list[MongoScheduleRepository] = []

    async def make() -> MongoScheduleRepository:
        repo = _repo(mongodb_uri, database)
        await repo.initialize()
        made.append(repo)
        return repo

    yield make
    if made:
        await made[0].drop_database()
    for repo in made:
        await repo.close()


async def test_initialize_creates_the_indexes(repos: RepoFactory) -> None:
    repo = await repos()
    await repo.initialize()  # a second time: idempotent
    collection = repo._schedules  # the adapter's own collection, inspected as a test of it
    indexes = {index["name"]: index async for index in await collection.list_indexes()}
    assert dict(indexes["status_next_run_at"]["key"]) == {"status": 1, "next_run_at": 1}
    assert dict(indexes["status_lease_until"]["key"]) == {"status": 1, "lease.until": 1}
    assert dict(indexes["created_at_id"]["key"]) == {"created_at": -1, "_id": -1}
    key_index = indexes["idempotency_key_unique"]
    assert dict(key_index["key"]) == {"idempotency_key": 1}
    assert key_index["unique"] is True
    assert key_index["partialFilterExpression"] == {"idempotency_key": {"$type": "string"}}
    assert dict(indexes["label_pairs_created_at_id"]["key"]) == {"label_pairs": 1, "created_at": -1, "_id": -1}
    assert dict(indexes["status_created_at_id"]["key"]) == {"status": 1, "created_at": -1, "_id": -1}


async def test_idempotency_keys_are_looked_up_in_one_find_per_query_s_worth(mongodb_uri: str) -> None:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True, tzinfo=UTC,
                                                                 event_listeners=[commands])
    repo = MongoScheduleRepository(client, f"integration_{uuid.uuid4().hex[:12]}",
                                   ScheduleCodec(default_trigger_parser()))
    try:
        await repo.initialize()
        keys = [f"camp-{i}" for i in range(2 * KEYS_PER_QUERY + 1)]
        stored = [one_off(idempotency_key=key) for key in keys[:150]]  # more than a first batch's 101
        await repo.add_many(stored)
        commands.sent.clear()
        found = await repo.get_by_idempotency_keys(keys)
        assert sorted(s.id for s in found.values()) == sorted(s.id for s in stored)
        # One find per KEYS_PER_QUERY keys, each answered whole (no getMore), through the filter
        # of the partial unique index (``$type``), as the lookup of one key is.
        assert [name for name, _ in commands.sent] == ["find"] * 3
        asked = [body["filter"]["idempotency_key"] for _, body in commands.sent]
        assert [a["$type"] for a in asked] == ["string"] * 3
        assert [a["$in"] for a in asked] == [keys[:KEYS_PER_QUERY], keys[KEYS_PER_QUERY:-1], keys[-1:]]
    finally:
        await repo.drop_database()
        await client.close()


async def test_labels_are_stored_as_key_value_texts_for_their_multikey_index(repos: RepoFactory) -> None:
    repo = await repos()
    labelled, bare = one_off(labels={"order": "123", "kind": "a=b"}), one_off()
    for schedule in (labelled, bare):
        await repo.add(schedule)
    collection = repo._schedules
    stored = await collection.find_one({"_id": labelled.id})
    assert stored is not None and stored["label_pairs"] == ["kind=a=b", "order=123"]
    assert stored["labels"] == {"order": "123", "kind": "a=b"}
    assert "label_pairs" not in (await collection.find_one({"_id": bare.id}) or {})
    changed = labelled.copy()
    changed.relabel(labels={}, now=T0)
    assert await repo.save(changed, expected_status=ScheduleStatus.SCHEDULED)
    assert "label_pairs" not in (await collection.find_one({"_id": labelled.id}) or {})


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_recovers_when_the_server_comes_back(tmp_path: Path, outage: str) -> None:
    server = MongoTestServer(tmp_path / "data")
    uri = server.start()
    repo = _repo(uri, "outage", timeout_ms=300)
    try:
        await repo.initialize()
        schedule = one_off(idempotency_key="before-the-outage")
        await repo.add(schedule)  # journaled: survives even a SIGKILL right after
        if outage == "stop":
            server.stop()
        else:
            server.kill()

        with pytest.raises(StoreUnavailable):
            await repo.ping()
        with pytest.raises(StoreUnavailable):
            await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)

        assert server.restart() == uri  # same port, same data directory
        await _until_reachable(repo)
        assert await repo.get(schedule.id) == schedule
        [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
        assert claimed.id == schedule.id and claimed.status is ScheduleStatus.RUNNING
    finally:
        await repo.close()
        server.stop()


async def test_two_replicas_never_claim_the_same_schedule(repos: RepoFactory) -> None:
    first, second = await repos(), await repos()
    schedules = [one_off(T0 - timedelta(milliseconds=i)) for i in range(100)]
    for schedule in schedules:
        await first.add(schedule)

    async def drain(repo: MongoScheduleRepository, owner: str) -> list[str]:
        """Claim until nothing is due (a claim that lost every race returns [] with work left)."""
        won: list[str] = []
        while True:
            batch = await repo.claim_due(now=T0, owner=owner, lease_for=LEASE, limit=7)
            for claimed in batch:
                assert claimed.lease is not None and claimed.lease.owner == owner
                assert await repo.get(claimed.id) == claimed
            won.extend(s.id for s in batch)
            if not batch and (await repo.next_due_at() or T0 + LEASE) > T0:
                return won
            await asyncio.sleep(0)

    by_first, by_second = await asyncio.gather(drain(first, "r1"), drain(second, "r2"))
    assert not set(by_first) & set(by_second)
    assert sorted(by_first + by_second) == sorted(s.id for s in schedules)
    assert len(by_first + by_second) == len(schedules)
    assert await first.count_by_status() == {ScheduleStatus.RUNNING: 100}


def _state(pid: int | None) -> str:
    """The process's state letter as /proc shows it (``T``: stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


async def test_a_server_that_stops_answering_is_unavailable_within_the_operation_timeout(tmp_path: Path) -> None:
    """A frozen server (SIGSTOP: it keeps its connections and answers nothing, as a partitioned
    primary does) holds no call past the repository's operation timeout; without one, PyMongo
    waits on the socket until its heartbeat gives the server up, ~35 s."""
    server = MongoTestServer(tmp_path / "data")
    uri = server.start()
    repo = MongoScheduleRepository.from_uri(uri, "frozen", ScheduleCodec(default_trigger_parser()),
                                            operation_timeout=1.0)
    try:
        await repo.initialize()
        schedule = one_off(T0)
        await repo.add(schedule)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # The signal is sent, not yet taken: the server stops as the kernel next schedules it.
            assert wait_until(lambda: _state(server.pid) == "T"), _state(server.pid)
            calls = {
                "get": repo.get(schedule.id),
                "list": repo.list(limit=10),
                "claim": repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10),
                "save": repo.save(schedule, expected_status=ScheduleStatus.SCHEDULED),
                "renew": repo.renew_lease(schedule.id, "attempt", T0 + LEASE),
            }
            for name, call in calls.items():
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(call, 10)  # a TimeoutError here: the call hung
                assert time.monotonic() - started < 3, name
        finally:
            os.kill(server.pid, signal.SIGCONT)
        await _until_reachable(repo)
        assert await repo.get(schedule.id) == schedule
    finally:
        await repo.close()
        server.stop()


async def test_the_uri_s_timeouts_win_over_the_repository_s_defaults() -> None:
    codec = ScheduleCodec(default_trigger_parser())
    base = "mongodb://127.0.0.1:1/?directConnection=true"
    plain = MongoScheduleRepository.from_uri(base, "db", codec)
    assert plain._client.options.server_selection_timeout == 5
    assert plain._timeout == 10
    tuned = MongoScheduleRepository.from_uri(base + "&serverSelectionTimeoutMS=15000&timeoutMS=4000", "db", codec)
    assert tuned._client.options.server_selection_timeout == 15
    assert tuned._client.options.timeout == 4
    assert tuned._timeout is None  # the client applies the URI's timeoutMS to every operation
    await plain.close()
    await tuned.close()
