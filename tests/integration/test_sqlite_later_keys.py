"""SQLite: this version's writes keep the document keys a later version adds.

During a rolling update or a roll-back, replicas of two versions share one SQLite file. A later
version may add a key to the stored schedule (as labels and ``run_timeout_seconds`` were added);
this version does not know it, and must not drop it when it writes the schedule (a claim, a
renewal, an outcome, a user's change), or the later version loses it at every write of ours, as
it would on MongoDB without its key-by-key updates (``test_mongodb_later_keys.py``). The keys
this version leaves out on purpose (``codec.OPTIONAL_KEYS``: an idempotency key the schedule no
longer has) are removed, so what is written is still the schedule as it is. And the trigger that
puts back what an earlier version's write leaves out, made again at every open, is not replaced
by this version's when a later version made its own (which puts back more). Real app over HTTP
and the real adapter, on real SQLite files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import ConditionalSave
from cronjob_adapters.codec import OPTIONAL_KEYS, ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_adapters.sqlite.schema import ADDED_KEYS, keep_added_keys_trigger
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, set_up
from tests.support.builders import T0, one_off
from tests.support.clock import FixedClock
from tests.support.later_keys import every_write_keeps_the_later_keys

#: Keys this version does not know, as a later version would store them beside the others: an
#: object (kept whole), and values whose JSON text SQLite could change on the way (a null, a
#: float that needs 17 digits, a string to escape, a key with a quote and a dot in its name).
LATER: dict[str, Any] = {"priority": {"level": 7, "since": "a later version"}, "quiet_until": None,
                         "weight": 0.30000000000000004, "note": 'say "hi"\n', 'odd."key': [True, False]}
LEASE = timedelta(seconds=30)
NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqliteScheduleRepository]:
    repository = SqliteScheduleRepository(tmp_path / "cronjob.sqlite3", ScheduleCodec(default_trigger_parser()))
    await repository.initialize()
    yield repository
    await repository.close()


def _file(repo: SqliteScheduleRepository) -> Path:
    return Path(repo._db.path)


def _stored(path: Path, schedule_id: str) -> dict[str, Any]:
    """The stored document, read by a connection of its own (as another process would)."""
    conn = sqlite3.connect(path)
    try:
        (text,) = conn.execute("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
    finally:
        conn.close()
    return dict(json.loads(text))


def _written_by_a_later_version(path: Path, *ids: str) -> None:
    """The later version's write: its keys added to each document (read, changed, written back
    whole, as any version writes a document)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for schedule_id in ids:
            (text,) = conn.execute("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            conn.execute("UPDATE schedules SET doc = ? WHERE id = ?", (json.dumps({**json.loads(text), **LATER}),
                                                                     schedule_id))
    finally:
        conn.close()


def _kept(path: Path, schedule_id: str) -> dict[str, Any]:
    """The stored document, asserted to hold the later version's keys still, exactly."""
    doc = _stored(path, schedule_id)
    assert {key: doc.get(key, "<missing>") for key in LATER} == LATER, sorted(doc)
    return doc


async def test_every_write_of_the_adapter_keeps_a_later_version_s_keys(repo: SqliteScheduleRepository) -> None:
    path = _file(repo)
    first, second = one_off(labels={"team": "ops"}), one_off(T0 + timedelta(minutes=1))
    await repo.add_many([first, second])
    _written_by_a_later_version(path, first.id, second.id)

    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
    assert claimed.id == first.id and _kept(path, first.id)["status"] == "running"
    assert claimed.lease is not None
    attempt = claimed.lease.attempt_id
    assert await repo.renew_lease(first.id, attempt, T0 + 2 * LEASE)
    assert _kept(path, first.id)["lease"]["until"] == (T0 + 2 * LEASE).isoformat()

    claimed.mark_started(attempt_id=attempt, now=T0)
    claimed.succeed(attempt_id=attempt, now=T0 + timedelta(seconds=1), provider_message_id="wamid.1")
    assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt)  # the outcome
    done = _kept(path, first.id)
    assert done["status"] == "succeeded" and done["result"]["provider_message_id"] == "wamid.1"
    assert await repo.get(first.id) == claimed  # the later keys are not read back into the schedule
    assert await repo.get_by_provider_message_id("wamid.1") == claimed
    assert [s.id for s in await repo.list(labels={"team": "ops"})] == [first.id]

    paused = (await repo.get(second.id)).copy()  # type: ignore[union-attr]
    paused.pause(now=T0)
    assert await repo.save_many([ConditionalSave(paused, ScheduleStatus.SCHEDULED)]) == [True]
    assert _kept(path, second.id)["status"] == "paused"
    assert await repo.get(second.id) == paused
    resumed = paused.copy()
    resumed.resume(now=T0)  # a save conditional on the version read, as a user's change is
    assert await repo.save(resumed, expected_status=ScheduleStatus.PAUSED, expected_updated_at=paused.updated_at)
    assert _kept(path, second.id)["status"] == "scheduled"


async def test_a_save_removes_the_idempotency_key_and_labels_the_schedule_no_longer_has(
        repo: SqliteScheduleRepository) -> None:
    """A key this version leaves out when the schedule has no value for it (OPTIONAL_KEYS) is
    removed, not kept as a later version's would be; labels emptied are written empty (the key
    is always written) and leave the label index."""
    path = _file(repo)
    kept = one_off(idempotency_key="order-42", labels={"team": "ops"})
    await repo.add(kept)
    _written_by_a_later_version(path, kept.id)
    assert set(OPTIONAL_KEYS) <= set(_stored(path, kept.id))
    bare = kept.copy()
    bare.idempotency_key = None
    bare.relabel(labels={}, now=T0)
    assert await repo.save(bare, expected_status=ScheduleStatus.SCHEDULED)

    doc = _kept(path, kept.id)
    assert not set(OPTIONAL_KEYS) & set(doc)
    assert doc["labels"] == {}
    assert await repo.get(kept.id) == bare
    assert await repo.list(labels={"team": "ops"}) == []


async def test_the_optional_keys_are_every_key_a_schedule_s_document_may_leave_out(
        repo: SqliteScheduleRepository) -> None:
    """Every other key is written whatever the schedule holds, so a save replaces it: a key left
    out conditionally but not in OPTIONAL_KEYS would be kept after its removal."""
    full = json.loads(repo._row(one_off(idempotency_key="k-1", labels={"k": "v"}))["doc"])  # the adapter's own form
    bare = json.loads(repo._row(one_off())["doc"])
    assert set(full) - set(bare) == set(OPTIONAL_KEYS)
    assert set(bare) <= set(full)


#: The trigger that the version before this one made at every open: unmarked, and knowing the
#: keys this version knows.
UNMARKED_TRIGGER = (
    "CREATE TRIGGER schedules_keep_added_keys AFTER UPDATE OF doc ON schedules"
    " WHEN json_type(new.doc, '$.run_timeout_seconds') IS NULL BEGIN"
    " UPDATE schedules SET doc = json_insert(new.doc, "
    + ", ".join(f"'$.{key}', json_extract(old.doc, '$.{key}')" for key in ADDED_KEYS)
    + ") WHERE id = new.id; END"
)


def _earlier_version_s_save(path: Path, schedule_id: str) -> None:
    """A save by a version from before run time limits: the whole document without the keys it
    does not know (this version's newest, and a later version's)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        (text,) = conn.execute("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
        doc = {key: value for key, value in json.loads(text).items() if key not in {"run_timeout_seconds", *LATER}}
        conn.execute("UPDATE schedules SET doc = ? WHERE id = ?", (json.dumps(doc), schedule_id))
    finally:
        conn.close()


def _replace_trigger(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER schedules_keep_added_keys")
        conn.execute(sql)
    finally:
        conn.close()


def _trigger(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        [(sql,)] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'schedules_keep_added_keys'").fetchall()
    finally:
        conn.close()
    return str(sql)


async def _opened_again(path: Path) -> SqliteScheduleRepository:
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await repo.initialize()
    return repo


async def test_opening_the_file_keeps_the_trigger_a_later_version_made(repo: SqliteScheduleRepository) -> None:
    """A later version's trigger puts back its own keys too when an earlier version's write
    leaves them out; this version, opening the file after it (a roll-back, a restarted replica
    of a rolling update), leaves that trigger in place rather than making its own again."""
    path = _file(repo)
    schedule = one_off(labels={"team": "ops"})
    await repo.add(schedule)
    later = keep_added_keys_trigger((*ADDED_KEYS, "priority"))  # the later version opened the file
    _replace_trigger(path, later)
    _written_by_a_later_version(path, schedule.id)

    again = await _opened_again(path)  # this version opens it again
    try:
        _earlier_version_s_save(path, schedule.id)
        doc = _stored(path, schedule.id)
        assert doc.get("priority") == LATER["priority"], sorted(doc)
        assert (doc["labels"], doc["run_timeout_seconds"]) == ({"team": "ops"}, None)
        assert await again.get(schedule.id) == schedule
        assert _trigger(path) == later
    finally:
        await again.close()


async def test_opening_the_file_makes_its_trigger_again_over_an_earlier_one(repo: SqliteScheduleRepository) -> None:
    """The trigger of the version before this one (unmarked: it knows no more keys) or of one
    that knew fewer keys is made again as this version makes it, which then stays as it is;
    what an earlier version's write leaves out is put back."""
    path = _file(repo)
    schedule = one_off(labels={"team": "ops"})
    await repo.add(schedule)
    ours = _trigger(path)
    assert ours == keep_added_keys_trigger(ADDED_KEYS)
    for earlier in (UNMARKED_TRIGGER, keep_added_keys_trigger(ADDED_KEYS[:-1])):
        _replace_trigger(path, earlier)
        for _ in range(2):
            await (await _opened_again(path)).close()
            assert _trigger(path) == ours
    _earlier_version_s_save(path, schedule.id)
    doc = _stored(path, schedule.id)
    assert (doc["labels"], doc["run_timeout_seconds"]) == ({"team": "ops"}, None)


async def test_the_api_and_the_scheduler_keep_a_later_version_s_keys(tmp_path: Path) -> None:
    """Every write this version makes of a schedule, through the API (a change, bulk pause and
    resume, a retry, bulk cancel) and the scheduler (claim, outcome), keeps the keys."""
    clock = FixedClock(NOW)
    path = tmp_path / "cronjob.sqlite3"

    async def written_later(*ids: str) -> None:
        _written_by_a_later_version(path, *ids)

    async def kept(schedule_id: str) -> dict[str, Any]:
        return _kept(path, schedule_id)

    async with set_up(clock, "sqlite", tmp_path) as container, api_client(container, AUTH) as http:
        await every_write_keeps_the_later_keys(container, http, clock, written_later, kept)
