"""Data written by earlier versions opens in this one: the stores' files and documents as those
versions wrote them (``tests/data/upgrade/<commit>.*``, taken from a store the version at that
commit wrote through its own API), opened by the real app over HTTP.

``e8ea030`` is the first release that ran on SQLite and MongoDB (WhatsApp messages only): its
schedules have none of the fields added since, and a message that failed for good is ``failed``,
which later versions call ``dead``. Its store holds a one-off still due (``k-a``), one that failed
(``k-b``), one that succeeded and, in the SQLite file, one whose lease its replica held when it
was killed (``k-d``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from pymongo import MongoClient

from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.schema import ADDED_KEYS
from cronjob_bootstrap.container import Container
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, make_container, set_up
from tests.support.builders import one_off
from tests.support.clock import FixedClock

DATA = Path(__file__).resolve().parents[1] / "data" / "upgrade"

# What the first release stored (see the fixtures).
DUE_AT = {"sqlite": datetime(2026, 11, 29, 14, 29, 41, 239000, tzinfo=UTC),
          "mongodb": datetime(2026, 11, 29, 14, 36, 42, 134000, tzinfo=UTC)}
FAILED_ID = {"sqlite": "a8d684275bf043a4ac8d71852f179eff", "mongodb": "87132216291a45bf950bc5361c434680"}
SUCCEEDED_ID = {"sqlite": "0d1f8d2ff647445488e3c5268f1406ef", "mongodb": "29bc42eca1ff44a29ad8958ca6974b4c"}
DUE_ID = {"sqlite": "ee1a0b37a25c4b708df259b1d9b4886e", "mongodb": "ab8c9c3ad1494d0eb259adee2a9ede95"}
# The request that created the one still due (key k-a); an earlier version kept no digest of it.
DUE_REQUEST = {"to": "5511911110001", "body": "Olá {{1}}", "params": ["Ana"], "templateName": "t1",
               "userId": "u1", "send_at": "2026-11-29T14:29:41.239333+00:00"}


@asynccontextmanager
async def _opened(store: str, tmp_path: Path, mongodb_uri: str, clock: FixedClock) -> AsyncIterator[Container]:
    """The app on the first release's data in ``store``, opened (initialized) as start-up does;
    the MongoDB database is named ``upgrade_<tmp_path's name>``."""
    if store == "sqlite":
        with sqlite3.connect(tmp_path / "cronjob.sqlite3") as conn:
            conn.executescript((DATA / "e8ea030.sqlite.sql").read_text(encoding="utf-8"))
        conn.close()
        container = make_container(clock, store="sqlite", data_dir=str(tmp_path))
    else:
        database = _database(tmp_path)
        documents: list[dict[str, Any]] = json_util.loads((DATA / "e8ea030.mongodb.json").read_text(encoding="utf-8"))
        with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
            client[database].schedules.insert_many(documents)
        container = make_container(clock, store="mongodb", mongodb_uri=mongodb_uri, mongodb_database=database)
    repository = container.repository()
    await repository.initialize()
    try:
        yield container
    finally:
        if store == "mongodb":
            await repository.drop_database()  # type: ignore[attr-defined]
        await repository.close()


def _database(tmp_path: Path) -> str:
    return f"upgrade_{tmp_path.name[-40:]}"


@pytest.mark.parametrize("store", ["sqlite", "mongodb"])
async def test_the_first_release_s_schedules_are_listed_counted_retried_replayed_and_run(
        store: str, tmp_path: Path, mongodb_uri: str) -> None:
    clock = FixedClock(DUE_AT[store] - timedelta(minutes=1))
    async with _opened(store, tmp_path, mongodb_uri, clock) as container, api_client(container, AUTH) as http:
        listed = await http.get("/v1/schedules")
        assert listed.status_code == 200, listed.text
        statuses = sorted(item["status"] for item in listed.json()["items"])
        expected = ["dead", "running", "scheduled", "succeeded"] if store == "sqlite" else ["dead", "scheduled", "succeeded"]
        assert statuses == expected

        # The message that failed for good is a dead letter: listed, counted, retried as one.
        dead = await http.get("/v1/schedules", params={"status": "dead"})
        assert [item["id"] for item in dead.json()["items"]] == [FAILED_ID[store]]
        stats = await http.get("/v1/stats")
        assert stats.status_code == 200, stats.text
        assert stats.json()["by_status"]["dead"] == 1
        by_user = await http.get("/v1/schedules", params={"userId": "u1"})
        assert sorted(item["id"] for item in by_user.json()["items"]) == sorted([DUE_ID[store], FAILED_ID[store]])
        retried = await http.post(f"/v1/schedules/{FAILED_ID[store]}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "scheduled"

        # Its idempotency key still replays the schedule it created.
        replay = await http.post("/schedule-message", json=DUE_REQUEST, headers={"Idempotency-Key": "k-a"})
        assert replay.status_code == 200, replay.text
        assert replay.json()["id"] == DUE_ID[store]

        # Due, it is claimed (with the retried dead letter, and the run whose lease lapsed).
        clock.set(DUE_AT[store])
        claimed = await container.repository().claim_due(
            now=clock.now(), owner="new", lease_for=timedelta(seconds=30), limit=10)
        assert DUE_ID[store] in {s.id for s in claimed}
        assert FAILED_ID[store] in {s.id for s in claimed}




@pytest.mark.parametrize("store", ["sqlite", "mongodb"])
async def test_a_failed_status_that_a_replica_of_the_first_release_writes_after_the_upgrade_is_dead(
        store: str, tmp_path: Path, mongodb_uri: str) -> None:
    """During a rolling update an old replica still writes ``failed``, after this version opened
    the store (and renamed what it held): it is shown as ``dead`` and counted with the others."""
    clock = FixedClock(DUE_AT[store] - timedelta(minutes=1))
    async with _opened(store, tmp_path, mongodb_uri, clock) as container, api_client(container, AUTH) as http:
        schedule_id = SUCCEEDED_ID[store]  # the old replica's status, over the document it had
        if store == "sqlite":
            with sqlite3.connect(tmp_path / "cronjob.sqlite3") as conn:
                conn.execute("UPDATE schedules SET status = 'failed', doc = json_set(doc, '$.status', 'failed')"
                             " WHERE id = ?", (schedule_id,))
            conn.close()
        else:
            with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
                client[_database(tmp_path)].schedules.update_one({"_id": schedule_id}, {"$set": {"status": "failed"}})
        shown = await http.get(f"/v1/schedules/{schedule_id}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "dead"
        listed = await http.get("/v1/schedules")
        assert listed.status_code == 200, listed.text
        stats = await http.get("/v1/stats")
        assert stats.status_code == 200, stats.text
        assert stats.json()["by_status"]["dead"] == 2  # the one renamed at the upgrade, and this one


async def test_a_sqlite_write_by_a_version_that_knows_fewer_keys_keeps_the_labels_and_time_limit(
        tmp_path: Path) -> None:
    """A replica of a version from before labels (21cf960^) or before run time limits (42fe599^)
    runs beside this one on the same file (a rolling update, or the api and scheduler processes
    upgraded one at a time), or is rolled back to: it rewrites whole documents without the keys
    it does not know. Those keys keep what the document held, in the document as in the label
    index, and this version's next write keeps them too."""
    clock = FixedClock(datetime(2030, 1, 7, 9, 0, tzinfo=UTC))
    async with set_up(clock, "sqlite", tmp_path) as container, api_client(container, AUTH) as http:
        created = await http.post("/v1/schedules", json={
            "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "bom dia"},
            "schedule": "every 10 minutes", "timezone": "UTC", "labels": {"team": "ops"},
            "run_timeout_seconds": 60, "pause_after_failures": 3})
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]
        moved_on = "2030-01-07T09:20:00+00:00"
        with sqlite3.connect(tmp_path / "cronjob.sqlite3") as conn:  # the old version's save
            (text,) = conn.execute("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            doc = json.loads(text)
            for key in ("labels", "run_timeout_seconds"):
                del doc[key]
            doc["next_run_at"] = doc["occurrence"] = moved_on  # and its own change
            conn.execute("UPDATE schedules SET next_run_at = ?, doc = ? WHERE id = ?",
                         (int(datetime.fromisoformat(moved_on).timestamp() * 1000), json.dumps(doc), schedule_id))
        conn.close()

        shown = (await http.get(f"/v1/schedules/{schedule_id}")).json()
        assert (shown["labels"], shown["run_timeout_seconds"], shown["pause_after_failures"]) == ({"team": "ops"}, 60, 3)
        assert shown["next_run_at"] == "2030-01-07T09:20:00.000Z"
        listed = (await http.get("/v1/schedules", params={"label": "team=ops"})).json()["items"]
        assert [(s["id"], s["labels"]) for s in listed] == [(schedule_id, {"team": "ops"})]

        paused = await http.post(f"/v1/schedules/{schedule_id}/pause")  # this version's write
        assert paused.status_code == 200, paused.text
        assert (paused.json()["labels"], paused.json()["run_timeout_seconds"]) == ({"team": "ops"}, 60)
        listed = (await http.get("/v1/schedules", params={"label": "team=ops"})).json()["items"]
        assert [s["id"] for s in listed] == [schedule_id]


def test_the_keys_sqlite_puts_back_are_every_key_added_since_the_first_release() -> None:
    """The keep-added-keys trigger knows a document from an earlier version by its lacking the
    newest key (ADDED_KEYS' last), and puts back those of ADDED_KEYS: a key added to the stored
    document but not there would be dropped by an earlier version's writes again."""
    first_release = set(json.loads(_first_release_sqlite_doc()))
    codec = ScheduleCodec(default_trigger_parser())
    now = datetime(2030, 1, 1, tzinfo=UTC)
    schedule = one_off(now, now=now, labels={"k": "v"}, idempotency_key="k-1")
    written = set(codec.to_document(schedule))
    assert written - first_release == set(ADDED_KEYS)
    # Written by this version whatever the schedule holds (None, empty), the newest one above all:
    # a document without it is an earlier version's.
    assert set(ADDED_KEYS) <= set(codec.to_document(one_off(now, now=now)))


def _first_release_sqlite_doc() -> str:
    """The document of the first row the first release wrote (its fixture's first INSERT)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript((DATA / "e8ea030.sqlite.sql").read_text(encoding="utf-8"))
        return str(conn.execute("SELECT doc FROM schedules WHERE status = 'scheduled' LIMIT 1").fetchone()[0])
    finally:
        conn.close()
