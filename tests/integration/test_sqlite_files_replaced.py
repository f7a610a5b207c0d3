"""The SQLite store when its files are deleted or replaced underneath a running process (an
``rm`` of the data directory's files, a backup moved over the live file): the process refuses
every call as an unavailable store (503), rather than answering writes as stored into a file no
other process sees and that is gone when it exits; the files SQLite itself makes and keeps are
no false alarm."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import T0, one_off
from tests.support.processes import CronjobProcess, free_port
from tests.support.waiting import wait_until


def _repo(path: Path) -> SqliteScheduleRepository:
    return SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))


def _delete(path: Path, *suffixes: str) -> None:
    for suffix in suffixes:
        os.remove(f"{path}{suffix}")


def _replace_with_copy(path: Path, *suffixes: str) -> None:
    """Each of the files put back by a copy of itself: the same content, another file."""
    for suffix in suffixes:
        shutil.copyfile(f"{path}{suffix}", f"{path}{suffix}.copy")
        os.replace(f"{path}{suffix}.copy", f"{path}{suffix}")


@pytest.mark.parametrize(("change", "suffixes", "said"), [
    (_delete, ("",), "cronjob.sqlite3 was deleted"),
    (_delete, ("-wal", "-shm"), "cronjob.sqlite3-wal was deleted"),
    (_delete, ("-shm",), "cronjob.sqlite3-shm was deleted"),
    (_replace_with_copy, ("",), "cronjob.sqlite3 was replaced"),
    (_replace_with_copy, ("-wal",), "cronjob.sqlite3-wal was replaced"),
])
async def test_every_call_is_refused_once_a_file_of_the_open_database_is_deleted_or_replaced(
        tmp_path: Path, change: Callable[..., None], suffixes: tuple[str, ...], said: str) -> None:
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path)
    await repo.initialize()
    kept = one_off(T0 + timedelta(hours=1))
    await repo.add(kept)
    change(path, *suffixes)
    calls = [repo.add(one_off(T0 + timedelta(hours=2))), repo.get(kept.id), repo.ping(),
             repo.claim_due(now=T0 + timedelta(hours=3), owner="a", lease_for=timedelta(minutes=1), limit=10)]
    for call in calls:
        with pytest.raises(StoreUnavailable, match=f"{said} while this process had the database open"):
            await call
    await repo.close()


async def test_the_files_sqlite_makes_and_keeps_itself_are_no_false_alarm(tmp_path: Path) -> None:
    # Several connections (processes) opening and closing the one file: a fresh file and its log
    # made by the first, the log kept while any is open, deleted by the last to close and made
    # again by the next; checkpoints that truncate the log (another process's, a backup tool's).
    path = tmp_path / "cronjob.sqlite3"
    first, second = _repo(path), _repo(path)
    await first.initialize()
    await second.initialize()
    await first.add(one_off(T0 + timedelta(hours=1)))
    await second.close()
    third = _repo(path)
    await third.ping()
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    await first.add(one_off(T0 + timedelta(hours=2)))
    await first.close()
    await third.add(one_off(T0 + timedelta(hours=3)))
    await third.close()
    assert not os.path.exists(f"{path}-wal")  # the last to close deleted the log
    again = _repo(path)
    await again.initialize()
    await again.add(one_off(T0 + timedelta(hours=4)))
    assert len(await again.list(limit=10)) == 4
    await again.close()


@pytest.mark.slow
def test_serve_refuses_creations_once_its_database_file_is_deleted(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer files-token"}
    data = tmp_path / "var"
    env = {"CRONJOB_DATA_DIR": str(data), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": "files-token",
           "CRONJOB_LOG_FORMAT": "text"}
    body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "every 1 hour"}
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    try:
        serve.wait_ready(base)
        assert httpx.post(f"{base}/v1/schedules", json=body, headers=auth, timeout=15).status_code == 201
        (data / "cronjob.sqlite3").unlink()
        created = httpx.post(f"{base}/v1/schedules", json=body, headers=auth, timeout=15)
        assert created.status_code == 503 and created.headers["retry-after"] == "5", created.text
        assert created.headers["content-type"] == "application/problem+json"
        assert str(data) not in created.text  # the answer names no file
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200  # a restart is the operator's call
        assert wait_until(lambda: "cronjob.sqlite3 was deleted" in serve.output()), serve.output()
        [line] = [line for line in serve.output().splitlines()
                  if line.split(" WARNING ", 1)[-1].startswith("cronjob_adapters.web.problems")]
        assert "cronjob.sqlite3 was deleted while this process had the database open" in line, line
        assert "Traceback" not in serve.output()
    finally:
        serve.stop()


@pytest.mark.parametrize(("change", "said"), [(_delete, "deleted"), (_replace_with_copy, "replaced")])
async def test_a_backup_put_back_once_the_processes_stopped_opens_as_it_was_taken(
        tmp_path: Path, change: Callable[..., None], said: str) -> None:
    # The runbook: the database file deleted (or replaced) under a running process; every
    # process stopped; a backup put back in its place. The log and index the stopped process
    # had open belong to the file that is gone: left at the path, SQLite would apply that log
    # over the backup (here: a log begun again after a checkpoint, so pages of two times).
    path = tmp_path / "cronjob.sqlite3"
    repo = _repo(path)
    await repo.initialize()
    backed_up = [one_off(T0 + timedelta(hours=1), user_id=f"before-{i}") for i in range(20)]
    for schedule in backed_up:
        await repo.add(schedule)
    with sqlite3.connect(path) as live, sqlite3.connect(tmp_path / "backup.sqlite3") as backup:
        live.backup(backup)
    live.close()
    backup.close()
    for i in range(200):
        await repo.add(one_off(T0 + timedelta(hours=2), user_id=f"after-{i}"))
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    for i in range(50):
        await repo.add(one_off(T0 + timedelta(hours=3), user_id=f"later-{i}"))
    change(path, "")
    with pytest.raises(StoreUnavailable, match=f"cronjob.sqlite3 was {said}"):
        await repo.ping()
    await repo.close()

    assert not os.path.exists(f"{path}-wal") and not os.path.exists(f"{path}-shm")
    shutil.copyfile(tmp_path / "backup.sqlite3", path)
    restored = _repo(path)
    await restored.initialize()
    listed = await restored.list(limit=100)
    assert sorted(s.id for s in listed) == sorted(s.id for s in backed_up)
    await restored.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    check.close()
