"""The retention of the service's own finished jobs, with real OS processes over one SQLite store:
one ``cronjob api`` and three ``cronjob scheduler`` processes started together.

What is proven here:

- the three schedulers store one retention schedule between them (one of them says ``created``,
  the others find it ``current``); a scheduler started with ``CRONJOB_INTERNAL_RETENTION_HOURS=0``
  cancels it, one started with another retention makes it afresh with that one;
- a retention schedule that is due runs once across the three, and deletes, in pages, the
  service's own jobs finished longer ago than the retention, and nothing else (users' finished
  schedules, recent own jobs, live ones).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.services.retention import PAGE, RETENTION_ID, RetentionKeeper
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import ended as ended_job
from tests.support.builders import one_off
from tests.support.clock import FixedClock
from tests.support.processes import CronjobProcess, free_port
from tests.support.replicas import API_TOKEN, auth, now, start_replicas, wait_log
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

OWN = ["webhook.delivery", "whatsapp.status"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {"CRONJOB_DATA_DIR": str(data_dir), "CRONJOB_POLL_INTERVAL_SECONDS": "0.5", "CRONJOB_LOG_FORMAT": "text",
            **extra}


def _retention(base: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/v1/schedules", params={"type": "cronjob.retention"}, headers=auth())
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def _scheduler(data_dir: Path, log: Path, **extra: str) -> CronjobProcess:
    return CronjobProcess("scheduler", {**_env(data_dir, **extra), "CRONJOB_API_TOKENS": API_TOKEN,
                                        "CRONJOB_PORT": str(free_port())}, log).start()


def test_schedulers_started_together_store_one_retention_that_follows_the_setting(tmp_path: Path) -> None:
    replicas = start_replicas(tmp_path, _env(tmp_path / "data"))
    try:
        for proc in replicas.schedulers.values():
            wait_log(proc, "retention of the service's own finished jobs:")
        said = [line.split("jobs: ")[1] for proc in replicas.schedulers.values()
                for line in proc.output().splitlines() if "retention of the service's own finished jobs:" in line]
        assert sorted(said) == ["created (168 h)", "current (168 h)", "current (168 h)"], said
        [kept] = _retention(replicas.base)
        assert kept["id"] == RETENTION_ID and kept["status"] == "scheduled"
        assert kept["payload"] == {"keep_hours": 168, "task_types": OWN}
        # The service's own job: not in the list, nor in the counts, and not cancelled by hand.
        assert httpx.get(f"{replicas.base}/v1/schedules", headers=auth()).json()["items"] == []
        assert httpx.get(f"{replicas.base}/v1/stats", headers=auth()).json()["total"] == 0
        refused = httpx.delete(f"{replicas.base}/v1/schedules/{RETENTION_ID}", headers=auth())
        assert refused.status_code == 409 and "CRONJOB_INTERNAL_RETENTION_HOURS=0" in refused.json()["detail"]
        assert replicas.stop() == {name: 0 for name in replicas.schedulers} | {"api": 0}

        off = _scheduler(tmp_path / "data", tmp_path / "off.log", CRONJOB_INTERNAL_RETENTION_HOURS="0")
        wait_log(off, "retention of the service's own finished jobs: switched off (kept for ever)")
        assert off.stop() == 0
        day = _scheduler(tmp_path / "data", tmp_path / "day.log", CRONJOB_INTERNAL_RETENTION_HOURS="24")
        wait_log(day, "retention of the service's own finished jobs: replaced (24 h)")
        assert day.stop() == 0
        stored = asyncio.run(_stored(tmp_path / "data" / "cronjob.sqlite3"))
        assert stored.status is ScheduleStatus.SCHEDULED and stored.payload["keep_hours"] == 24
    finally:
        replicas.kill_all()


async def _stored(path: Path) -> Schedule:
    repository = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    try:
        found = await repository.get(RETENTION_ID)
        assert found is not None
        return found
    finally:
        await repository.close()


async def _seed(path: Path) -> dict[str, list[str]]:
    """Own jobs finished 8 days ago (more than two pages), one made 10 days ago that died a day ago, a live one, a
    user's schedule finished 60 days ago, and the retention itself, overdue."""
    repository = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await repository.initialize()
    current = now()
    seeded: dict[str, list[str]] = {"old": [], "kept": []}

    def ended(task_type: str, ago: timedelta, *, dead: bool = False, made: timedelta | None = None) -> Schedule:
        return ended_job(task_type, made=current - (made or ago + timedelta(hours=1)), at=current - ago, dead=dead)

    old = [ended(OWN[i % 2], timedelta(days=8), dead=not i % 3) for i in range(2 * PAGE + 7)]
    # A dead letter is kept for the retention from when it died, however long ago it was made.
    kept = [ended("webhook.delivery", timedelta(days=1), dead=True, made=timedelta(days=10)),
            ended("whatsapp.text", timedelta(days=60)),
            one_off(current + timedelta(days=1), task_type="webhook.delivery")]
    assert await repository.add_many([*old, *kept]) == [None] * (len(old) + len(kept))
    seeded["old"], seeded["kept"] = [s.id for s in old], [s.id for s in kept]
    # Made two hours ago: due since then (its runs coalesce into one).
    await RetentionKeeper(repository, FixedClock(current - timedelta(hours=2)), keep_hours=168,
                          task_types=OWN).keep()
    await repository.close()
    return seeded


def test_a_due_retention_runs_once_across_replicas_and_deletes_only_old_own_jobs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    seeded = asyncio.run(_seed(data / "cronjob.sqlite3"))
    replicas = start_replicas(tmp_path, _env(data))
    try:
        def ran() -> bool:
            [kept] = _retention(replicas.base)
            return bool(kept["attempts"]) and kept["status"] == "scheduled"

        assert wait_until(ran, timeout=30)
        [kept] = _retention(replicas.base)
        assert len(kept["attempts"]) == 1, kept["attempts"]  # one run, by one replica
        assert kept["result"]["deleted"] == str(len(seeded["old"])) and kept["result"]["more"] == "false"
        stored = asyncio.run(_ids(data / "cronjob.sqlite3"))
        assert stored == {*seeded["kept"], RETENTION_ID}
    finally:
        replicas.kill_all()


async def _ids(path: Path) -> set[str]:
    repository = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    try:
        return {s.id for s in await repository.list(limit=10_000)}
    finally:
        await repository.close()
