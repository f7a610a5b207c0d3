"""The SQLite store while another process holds its write lock for long (a backup tool, a
``sqlite3`` shell left in a transaction): every call is answered within the store's time limit,
as an unavailable store, and everything works again once the lock is let go."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, make_container
from tests.support.builders import T0, one_off
from tests.support.clock import FixedClock
from tests.support.processes import CronjobProcess, free_port
from tests.support.sqlite_locker import Locker
from tests.support.waiting import wait_until

def _repo(path: Path, timeout: float) -> SqliteScheduleRepository:
    return SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()), call_timeout_seconds=timeout)


async def _timed(call: asyncio.Future[object] | object) -> tuple[float, object]:
    started = time.monotonic()
    try:
        outcome: object = await call  # type: ignore[misc]
    except StoreUnavailable as error:
        outcome = error
    return time.monotonic() - started, outcome


async def test_calls_made_while_another_process_holds_the_lock_fail_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path, timeout=0.5)
    await repo.initialize()
    running = one_off(T0 - timedelta(minutes=1))
    await repo.add(running)
    (claimed,) = await repo.claim_due(now=T0, owner="a", lease_for=timedelta(minutes=5), limit=10)
    assert claimed.lease is not None
    locker = Locker(path)
    try:
        # A creation, a group of writes (a claim and lease renewals, committed together) and
        # reads behind them on the store's one worker thread: each is answered within the limit
        # from when it was asked, not after the others' waits (the group is not waited for again
        # write by write).
        calls = [repo.add(one_off(T0 + timedelta(hours=1))),
                 repo.claim_due(now=T0, owner="b", lease_for=timedelta(minutes=5), limit=10),
                 *(repo.renew_lease(running.id, claimed.lease.attempt_id, T0 + timedelta(minutes=9))
                   for _ in range(5)),
                 repo.get(running.id), repo.list(limit=5)]
        answers = await asyncio.gather(*(_timed(call) for call in calls))
        for waited, outcome in answers:
            assert waited < 1.5, answers
        writes = [outcome for _, outcome in answers[:7]]
        assert all(isinstance(outcome, StoreUnavailable) for outcome in writes), writes
        assert all("locked" in str(outcome) for outcome in writes), writes  # the log says why
    finally:
        locker.release()
    assert await repo.renew_lease(running.id, claimed.lease.attempt_id, T0 + timedelta(minutes=9))
    await repo.add(one_off(T0 + timedelta(hours=1)))
    assert len(await repo.list(limit=5)) == 2
    await repo.close()


async def test_a_write_is_answered_within_the_limit_though_a_later_one_of_its_group_waits_longer(
        tmp_path: Path) -> None:
    # A write queued while the worker waits for the lock joins the next group with the writes
    # asked after it; when that group is refused, the later ones are each tried again until their
    # own (later) deadlines: the first must not wait for them to hear it was refused.
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path, timeout=2.0)
    await repo.initialize()
    locker = Locker(path)
    try:
        first_in_line = asyncio.ensure_future(_timed(repo.add(one_off(T0 + timedelta(hours=1)))))
        await asyncio.sleep(0.1)  # the worker waits for the lock for that one now
        early = asyncio.ensure_future(_timed(repo.add(one_off(T0 + timedelta(hours=2)))))
        await asyncio.sleep(1.7)
        late = asyncio.ensure_future(_timed(repo.add(one_off(T0 + timedelta(hours=3)))))
        (_, first), (waited, refused), (_, last) = await asyncio.gather(first_in_line, early, late)
    finally:
        locker.release()
    assert all(isinstance(outcome, StoreUnavailable) for outcome in (first, refused, last))
    # Its own limit (2 s), not the later write's (about 3.7 s from it): far apart, for a loaded machine.
    assert waited < 3.0, waited
    await repo.close()


@pytest.mark.slow
def test_serve_answers_503_within_10_s_and_stays_alive_while_the_file_is_locked(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer lock-token"}
    env = {"CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_PORT": str(port),
           "CRONJOB_API_TOKENS": "lock-token", "CRONJOB_POLL_INTERVAL_SECONDS": "0.5"}
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    try:
        serve.wait_ready(base)
        body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "every 1 hour"}
        locker = Locker(tmp_path / "var" / "cronjob.sqlite3")
        try:
            started = time.monotonic()
            created = httpx.post(f"{base}/v1/schedules", json=body, headers=auth, timeout=30)
            waited = time.monotonic() - started
            assert created.status_code == 503 and created.headers["retry-after"] == "5", created.text
            assert created.headers["content-type"] == "application/problem+json"
            assert waited < 11.5, waited
            # The scheduler loop keeps ticking: its claims give up in time too, so no restart.
            while time.monotonic() - started < 36:  # past CRONJOB_LOOP_STALL_SECONDS (30)
                live = httpx.get(f"{base}/livez", timeout=5)
                assert live.status_code == 200, (live.text, serve.output()[-3000:])
                time.sleep(2)
        finally:
            locker.release()
        created = httpx.post(f"{base}/v1/schedules", json=body, headers=auth, timeout=30)
        assert created.status_code == 201, created.text
        assert wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 20)
    finally:
        serve.stop()


async def test_the_api_logs_why_the_store_did_not_answer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # An API process has no other line saying why its writes are refused (on a full disk its
    # reads, so /readyz, still answer): the 503's log line carries the store's error.
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path, timeout=0.3)
    await repo.initialize()
    container = make_container(FixedClock(T0), repository=repo)
    locker = Locker(path)
    try:
        with caplog.at_level(logging.WARNING):
            async with api_client(container, AUTH) as client:
                answer = await client.post("/v1/schedules", json={
                    "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "every 1 hour"})
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert str(path) not in answer.text  # the answer names no file
    finally:
        locker.release()
        await repo.close()
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("store unavailable")]
    # SQLite's own words, and the worker's when its time limit ran out first (a write taken in a
    # group commit waits for the lock in the worker, not in SQLite's busy handler).
    [line] = logged
    assert line.startswith(f"store unavailable: StoreUnavailable: SQLite store {path}: database is locked"), logged
