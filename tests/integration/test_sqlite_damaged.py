"""The SQLite store on a damaged file (pages overwritten underneath, a file that is no database):
an unavailable store, as a full disk is (a 503 and one line saying why), never a 500 with a
traceback; and a store file that is no database stops start-up with one line."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, make_container
from tests.support.builders import T0, one_off
from tests.support.clock import FixedClock
from tests.support.processes import CRONJOB, CronjobProcess, free_port

PAGE = 4096


def _damage(path: Path) -> None:
    """Overwrite every page but the first two (the header and the schema) with one pattern, after
    another connection has copied the log into the file (as a checkpoint by any process does)."""
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    size = path.stat().st_size
    assert size > 3 * PAGE
    with path.open("r+b") as file:
        file.seek(2 * PAGE)
        file.write(b"\xa5" * (size - 2 * PAGE))


async def test_a_damaged_file_is_an_unavailable_store_and_a_503(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cronjob.sqlite3"
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await repo.initialize()
    await repo.add_many([one_off(T0 + timedelta(minutes=i)) for i in range(60)])
    _damage(path)
    try:
        for call in (repo.list(limit=100), repo.add(one_off(T0 + timedelta(hours=2))),
                     repo.claim_due(now=T0 + timedelta(hours=3), owner="a", lease_for=timedelta(minutes=1), limit=100)):
            with pytest.raises(StoreUnavailable, match="database disk image is malformed"):
                await call
        container = make_container(FixedClock(T0), repository=repo)
        with caplog.at_level(logging.WARNING):
            async with api_client(container, AUTH) as client:
                listed = await client.get("/v1/schedules", params={"limit": 100})
        assert listed.status_code == 503 and listed.headers["retry-after"] == "5", listed.text
        assert listed.headers["content-type"] == "application/problem+json"
        [line] = [r for r in caplog.records if r.getMessage().startswith("store unavailable")]
        assert "database disk image is malformed" in line.getMessage() and line.exc_info is None
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no "unhandled error"
    finally:
        await repo.close()


async def test_a_file_that_is_no_database_is_an_unavailable_store(tmp_path: Path) -> None:
    path = tmp_path / "cronjob.sqlite3"
    path.write_bytes(b"\xa5" * 2 * PAGE)
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    try:
        with pytest.raises(StoreUnavailable, match="file is not a database"):
            await repo.initialize()
    finally:
        await repo.close()


@pytest.mark.parametrize("content", [b"\xa5" * 2 * PAGE, b"SQLite"])
def test_a_store_file_that_is_no_database_stops_start_up(content: bytes, tmp_path: Path) -> None:
    store = tmp_path / "var" / "cronjob.sqlite3"
    store.parent.mkdir()
    store.write_bytes(content)
    env = {"PATH": "/usr/bin:/bin", "CRONJOB_DATA_DIR": str(store.parent), "CRONJOB_API_TOKENS": "damaged-token",
           "CRONJOB_PORT": str(free_port())}
    result = subprocess.run([*CRONJOB, "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"cronjob: invalid setting CRONJOB_DATA_DIR: {store} is not an SQLite database (put a backup in its"
           " place, or move it away to start with an empty store)")


def test_an_empty_store_file_is_a_new_database(tmp_path: Path) -> None:
    store = tmp_path / "var" / "cronjob.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"")
    port = free_port()
    env = {"CRONJOB_DATA_DIR": str(store.parent), "CRONJOB_API_TOKENS": "damaged-token", "CRONJOB_PORT": str(port)}
    api = CronjobProcess("api", env, tmp_path / "api.log").start()
    try:
        api.wait_ready(f"http://127.0.0.1:{port}")
    finally:
        api.stop()
