"""What storing schedules costs the SQLite store in commits (each one a sync of its log, the
price of durability): adds made together, ``add_many`` and the status webhook deliveries of a
bulk change, a batch and a run's outcome are each committed together, not one sync per schedule;
and a group commit writes no temporary file besides.

Commits are counted in the store's write-ahead log itself: every commit ends with a commit frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import DuplicateSchedule, ScheduleRepository
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.container import Container
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, set_up
from tests.support.builders import T0, one_off
from tests.support.clock import FixedClock

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
HOOK = "http://127.0.0.1:9/hook"  # never called: deliveries are only stored here
TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá"}


def wal_commits(store: Path) -> int:
    """How many commits the write-ahead log of ``store`` holds: its frames of this log's
    generation (the header's salts) that end a transaction (a non-zero database size)."""
    wal = store.with_name(f"{store.name}-wal").read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    commits, at = 0, 32
    while at + 24 + page_size <= len(wal):
        header = wal[at:at + 24]
        if header[8:16] != salts:
            break  # a frame left from an earlier generation of the log
        commits += struct.unpack(">I", header[4:8])[0] != 0
        at += 24 + page_size
    return commits


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[ScheduleRepository, Path]]:
    path = tmp_path / "cronjob.sqlite3"
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await repo.initialize()
    try:
        yield repo, path
    finally:
        await repo.close()


async def test_adds_made_together_are_one_commit_and_a_duplicate_among_them_fails_alone(
        store: tuple[ScheduleRepository, Path]) -> None:
    repo, path = store
    first = one_off(idempotency_key="order-42")
    await repo.add(first)
    before = wal_commits(path)
    fresh = [one_off() for _ in range(20)]
    again = one_off(idempotency_key="order-42")
    answers = await asyncio.gather(*(repo.add(s) for s in [*fresh[:10], again, *fresh[10:]]), return_exceptions=True)
    assert wal_commits(path) - before == 1
    assert isinstance(answers[10], DuplicateSchedule) and answers[10].existing_id == first.id
    assert [a for i, a in enumerate(answers) if i != 10] == [None] * 20
    assert all([await repo.get(s.id) == s for s in fresh])


async def test_add_many_is_one_commit_whatever_duplicates_it_holds(store: tuple[ScheduleRepository, Path]) -> None:
    repo, path = store
    first = one_off(idempotency_key="order-42")
    await repo.add(first)
    before = wal_commits(path)
    batch = [one_off() for _ in range(50)]
    assert await repo.add_many([*batch, one_off(idempotency_key="order-42")]) == [None] * 50 + [first.id]
    assert wal_commits(path) - before == 1
    assert sum((await repo.count_by_status()).values()) == 51


async def the_deliveries(container: Container) -> list[Any]:
    return await container.repository().list(task_types=["webhook.delivery"], limit=10_000)


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    async with set_up(FixedClock(NOW), "sqlite", tmp_path, webhook_urls=HOOK, webhook_secret="s3cret",
                      http_allow_hosts="127.0.0.1") as container:
        async with api_client(container, AUTH) as client:
            yield container, client


async def test_a_batch_stores_its_schedules_in_one_commit_and_their_deliveries_in_one_more(
        hooked: tuple[Container, httpx.AsyncClient], tmp_path: Path) -> None:
    container, client = hooked
    first = await client.post("/v1/schedules", json={"task": TASK, "schedule": "once @ 2025-06-22 14:00"},
                              headers={"Idempotency-Key": "order-7"})
    assert first.status_code == 201, first.text
    items: list[dict[str, Any]] = [{"task": TASK, "schedule": "once @ 2025-06-22 14:00", "userId": "batch",
                                    "callback_url": f"http://127.0.0.1:9/callback/{i}"} for i in range(300)]
    items[5] = {"task": TASK, "schedule": "once @ 2025-06-22 14:00", "idempotency_key": "order-7"}  # a replay
    items[9] = {"task": TASK, "schedule": "daily at 25:00"}  # refused by the service
    before = wal_commits(tmp_path / "cronjob.sqlite3")
    made = await client.post("/v1/schedules:batch", json={"schedules": items})
    assert made.status_code == 200, made.text
    assert (made.json()["created"], made.json()["replayed"], made.json()["refused"]) == (298, 1, 1)
    assert made.json()["results"][5]["id"] == first.json()["id"]
    # One commit for the 298 schedules' 596 deliveries (callback and global URL), one for the schedules.
    assert wal_commits(tmp_path / "cronjob.sqlite3") - before == 2
    assert len(await the_deliveries(container)) == 1 + 596  # the first one's, to the global URL
    assert len(await container.repository().list(user_id="batch", limit=1000)) == 298


async def test_a_bulk_pause_stores_its_page_s_webhook_deliveries_in_one_commit(
        hooked: tuple[Container, httpx.AsyncClient], tmp_path: Path) -> None:
    container, client = hooked
    made = await client.post("/v1/schedules:batch", json={"schedules": [
        {"task": TASK, "schedule": "once @ 2025-06-22 14:00", "userId": "bulk",
         "callback_url": f"http://127.0.0.1:9/callback/{i}"} for i in range(300)]})
    assert made.status_code == 200, made.text
    assert len(await the_deliveries(container)) == 600  # scheduled, to its callback and the global URL
    before = wal_commits(tmp_path / "cronjob.sqlite3")
    paused = await client.post("/v1/schedules:pause", json={"userId": "bulk"})
    assert paused.status_code == 200 and len(paused.json()["paused"]) == 300, paused.text
    # One commit for the page's 600 deliveries, one for the 300 schedules (not one per delivery).
    assert wal_commits(tmp_path / "cronjob.sqlite3") - before == 2
    deliveries = await the_deliveries(container)
    assert len(deliveries) == 1200 and all(d.status is ScheduleStatus.SCHEDULED for d in deliveries)
    assert sorted(d.metadata["schedule_id"] for d in deliveries if d.metadata["event_type"] == "paused") == sorted(
        2 * paused.json()["paused"])


async def test_a_run_s_outcome_stores_its_deliveries_in_one_commit(
        hooked: tuple[Container, httpx.AsyncClient], tmp_path: Path) -> None:
    container, client = hooked
    made = await client.post("/v1/schedules", json={"task": TASK, "schedule": "once @ 2025-06-21 16:00",
                                                    "timezone": "UTC", "callback_url": "http://127.0.0.1:9/callback"})
    assert made.status_code == 201, made.text
    publisher, repository = container.publisher(), container.repository()
    [claimed] = await repository.claim_due(now=NOW, owner="r1", lease_for=timedelta(seconds=30), limit=1,
                                           task_types=["whatsapp.text"])
    assert claimed.lease is not None
    events_before = len(claimed.events)
    claimed.mark_started(attempt_id=claimed.lease.attempt_id, now=NOW)  # started, then succeeded: to
    claimed.succeed(attempt_id=claimed.lease.attempt_id, now=NOW)        # two subscribers each
    before = wal_commits(tmp_path / "cronjob.sqlite3")
    assert await publisher.publish(claimed, claimed.events[events_before:])
    assert wal_commits(tmp_path / "cronjob.sqlite3") - before == 1
    published = [d for d in await the_deliveries(container) if d.metadata["schedule_id"] == made.json()["id"]]
    assert sorted(d.metadata["event_type"] for d in published) == sorted(
        ["scheduled", "scheduled", *[e.type for e in claimed.events[events_before:] for _ in range(2)]])


def sqlite_temp_files() -> list[str]:
    """The temporary files SQLite has open in this process: it deletes each one as it opens it,
    so only the process's open files show them (Linux's ``/proc/self/fd``)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own descriptor, gone once listed
            if "etilqs_" in (target := os.readlink(f"/proc/self/fd/{fd}")):
                found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc/self/fd")
async def test_a_group_commit_keeps_its_statement_journal_in_memory(store: tuple[ScheduleRepository, Path]) -> None:
    """In a transaction SQLite saves the original of every page a statement changes (its
    statement journal); past 64 KiB that journal went to a temporary file, written page by page
    (in a burst, most of the store's write calls). A schedule whose document spans more than 16
    pages (a 100 KB message) passes that in one claim, and again in one save of its outcome."""
    repo, path = store
    assert isinstance(repo, SqliteScheduleRepository)
    big = [one_off(T0) for _ in range(3)]
    for schedule in big:
        schedule.payload = {**schedule.payload, "body": "x" * 100_000}
    assert await repo.add_many(big) == [None] * 3
    seen: list[list[str]] = []

    async def look() -> None:
        """Joins the group commit of the writes asked just before it, after them: a temporary
        file a statement of theirs opened is open until the transaction ends."""
        await repo._db.write(lambda conn: seen.append(sqlite_temp_files()))

    before = wal_commits(path)
    claimed, _ = await asyncio.gather(repo.claim_due(now=T0, owner="r1", lease_for=timedelta(seconds=30), limit=3),
                                      look())
    assert len(claimed) == 3
    attempts = [schedule.lease.attempt_id for schedule in claimed if schedule.lease is not None]
    for schedule, attempt_id in zip(claimed, attempts, strict=True):
        schedule.mark_started(attempt_id=attempt_id, now=T0)
        schedule.succeed(attempt_id=attempt_id, now=T0)
    saved = await asyncio.gather(*(repo.save(s, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
                                   for s, attempt_id in zip(claimed, attempts, strict=True)), look())
    assert saved[:3] == [True] * 3
    assert wal_commits(path) - before == 2  # the claims and the first look, the saves and the second
    assert seen == [[], []]
    assert all([await repo.get(s.id) == s for s in claimed])

    def temp_store(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA temp_store").fetchone()[0])

    # Only the group commits: reads (which may sort many rows) keep SQLite's default, files.
    assert await repo._db.run(lambda: temp_store(repo._db.connection())) == 0
