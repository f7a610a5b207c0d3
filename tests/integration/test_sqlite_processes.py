"""The SQLite store across OS processes: each due schedule is claimed by exactly one process, and
what was committed is there after a restart (clean or killed)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from cronjob.domain.schedule import ScheduleStatus
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import T0, one_off

ROOT = Path(__file__).resolve().parents[2]
LEASE = timedelta(seconds=30)

# A claimer process: open the store, say "ready", wait for "go" on stdin, then claim batches of
# 10 until nothing is due, printing "<id> <lease owner>" for every schedule it won.
CLAIMER = """
import asyncio, sys
from datetime import datetime, timedelta
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser

async def main(path, owner, now):
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await repo.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        while batch := await repo.claim_due(now=now, owner=owner, lease_for=timedelta(hours=1), limit=10):
            print("\\n".join(f"{s.id} {s.lease.owner}" for s in batch), flush=True)
            await asyncio.sleep(0.002)  # hand the lock to the others, like a dispatcher would
    finally:
        await repo.close()

asyncio.run(main(sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])))
"""

# A writer that dies: add schedules, print their ids once each add has returned, then SIGKILL
# itself without closing the repository (no checkpoint, the WAL left as it is).
KILLED_WRITER = """
import asyncio, os, signal, sys
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import one_off

async def main(path):
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await repo.initialize()
    for i in range(20):
        schedule = one_off(idempotency_key=f"killed-{i}")
        await repo.add(schedule)
        print(schedule.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1]))
"""


def _repo(path: Path) -> SqliteScheduleRepository:
    return SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))


def _python(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _seed(path: Path, count: int) -> list[str]:
    repo = _repo(path)
    try:
        await repo.initialize()
        schedules = [one_off(T0 - timedelta(milliseconds=i % 50)) for i in range(count)]
        for schedule in schedules:
            await repo.add(schedule)
        return [s.id for s in schedules]
    finally:
        await repo.close()


@pytest.mark.slow
def test_processes_claim_each_due_schedule_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "cronjob.sqlite3"
    ids = asyncio.run(_seed(path, 300))
    claimers = [_python(CLAIMER, str(path), f"p{n}", T0.isoformat(), stdin=subprocess.PIPE)
                for n in range(3)]
    try:
        for claimer in claimers:  # every process is connected before any of them claims
            assert claimer.stdout is not None and claimer.stdout.readline().strip() == "ready"
        for claimer in claimers:
            assert claimer.stdin is not None
            claimer.stdin.write("go\n")
            claimer.stdin.flush()
        outputs = [claimer.communicate(timeout=60) for claimer in claimers]
    finally:
        for claimer in claimers:
            if claimer.poll() is None:
                claimer.kill()
                claimer.wait()
    for claimer, (_, err) in zip(claimers, outputs):
        assert claimer.returncode == 0, err

    winner: dict[str, str] = {}
    claims: Counter[str] = Counter()
    for n, (out, _) in enumerate(outputs):
        for line in out.splitlines():
            schedule_id, owner = line.split()
            assert owner == f"p{n}"
            claims[schedule_id] += 1
            winner[schedule_id] = owner
    assert sorted(claims) == sorted(ids)
    # Otherwise one process drained the store before the others started: nothing was contended.
    assert len(set(winner.values())) >= 2, Counter(winner.values())
    assert set(claims.values()) == {1}, [i for i, c in claims.items() if c > 1]

    async def stored_leases() -> dict[str, str]:
        repo = _repo(path)
        try:
            assert await repo.count_by_status() == {ScheduleStatus.RUNNING: 300}
            running = await repo.list(status=ScheduleStatus.RUNNING, limit=1000)
            return {s.id: s.lease.owner for s in running if s.lease is not None}
        finally:
            await repo.close()

    assert asyncio.run(stored_leases()) == winner  # the store agrees with what each process got


async def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path)
    await repo.initialize()
    waiting = one_off(T0 + timedelta(hours=1), idempotency_key="order-7")
    done = one_off(T0)
    running = one_off(T0 - timedelta(seconds=1))
    for schedule in (waiting, done, running):
        await repo.add(schedule)
    first, second = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=2)
    assert (first.id, second.id) == (running.id, done.id) and second.lease is not None
    second.succeed(attempt_id=second.lease.attempt_id, now=T0, provider_message_id="wamid.1")
    assert await repo.save(second, expected_status=ScheduleStatus.RUNNING,
                           attempt_id=second.attempts[-1].attempt_id)
    assert first.lease is not None
    assert await repo.renew_lease(first.id, first.lease.attempt_id, T0 + 2 * LEASE)
    before = {s.id: await repo.get(s.id) for s in (waiting, done, running)}
    await repo.close()

    reopened = _repo(path)
    try:
        await reopened.initialize()  # idempotent over existing data
        assert {s.id: await reopened.get(s.id) for s in (waiting, done, running)} == before
        found = await reopened.get_by_idempotency_key("order-7")
        assert found is not None and found.id == waiting.id
        assert await reopened.count_by_status() == {
            ScheduleStatus.SCHEDULED: 1, ScheduleStatus.RUNNING: 1, ScheduleStatus.SUCCEEDED: 1}
        assert await reopened.next_due_at() == T0 + 2 * LEASE
        stored = before[running.id]
        assert stored is not None and stored.lease is not None
        assert stored.lease.until == T0 + 2 * LEASE
        # The fence still holds after the restart: only the stored attempt can write.
        assert not await reopened.renew_lease(running.id, "stale", T0 + 3 * LEASE)
        assert await reopened.renew_lease(running.id, stored.lease.attempt_id, T0 + 3 * LEASE)
    finally:
        await reopened.close()


async def test_adds_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "cronjob.sqlite3"
    writer = _python(KILLED_WRITER, str(path))
    out, err = await asyncio.to_thread(writer.communicate, timeout=60)
    assert writer.returncode == -9, err
    added = out.split()
    assert len(added) == 20

    repo = _repo(path)
    try:
        for i, schedule_id in enumerate(added):
            stored = await repo.get(schedule_id)
            assert stored is not None and stored.idempotency_key == f"killed-{i}"
        assert await repo.count_by_status() == {ScheduleStatus.SCHEDULED: 20}
    finally:
        await repo.close()


async def test_a_database_from_before_the_added_columns_is_given_them_filled_in(tmp_path: Path) -> None:
    """A file written before the ``provider_message_id`` and ``user_id`` columns opens, and the
    lookups that read those columns find its schedules."""
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path)
    try:
        await repo.initialize()
        for schedule in (one_off(T0, user_id="ana"), one_off(T0, user_id="bruno")):
            await repo.add(schedule)
        [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
        assert claimed.lease is not None
        attempt_id = claimed.lease.attempt_id
        claimed.succeed(attempt_id=attempt_id, now=T0, provider_message_id="wamid.old")
        assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    finally:
        await repo.close()
    with sqlite3.connect(path) as conn:  # back to the first release's table
        conn.execute("DROP INDEX schedules_user_status")  # a later index of user_id (by status)
        for name in ("provider_message_id", "user_id"):
            conn.execute(f"DROP INDEX schedules_{name}")
            conn.execute(f"ALTER TABLE schedules DROP COLUMN {name}")
    conn.close()
    reopened = _repo(path)
    try:
        await reopened.initialize()
        await reopened.initialize()  # and again: nothing added twice
        assert [s.id for s in await reopened.list(user_id=claimed.user_id)] == [claimed.id]
        found = await reopened.get_by_provider_message_id("wamid.old")
        assert found is not None and found.id == claimed.id
        newer = one_off(T0, user_id="ana", now=T0)
        await reopened.add(newer)
        assert [s.id for s in await reopened.list(user_id="ana")][0] == newer.id
    finally:
        await reopened.close()
