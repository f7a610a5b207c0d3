"""SQLite with millions of schedules: what a store's size must not slow down.

Each test reads the SQL the adapter actually runs (SQLite's own trace of the repository's
connection, or the adapter's query builders) and asks SQLite how it would run it
(``EXPLAIN QUERY PLAN``): a read that grows with every schedule kept (a scan of ``schedules``, a
sort of all of a user's or a campaign's) would take seconds with a million, which timings on a
test-sized store could not show. Real SQLite files, the real repository.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import ConditionalSave, ListCursor, ListOrder
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_adapters.tasks.builtin_routines import PurgeArgs, purge_runs
from cronjob_adapters.tasks.python import RoutineContext
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import T0, ended, one_off
from tests.support.clock import FixedClock

LEASE = timedelta(seconds=30)


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqliteScheduleRepository]:
    repository = SqliteScheduleRepository(tmp_path / "cronjob.sqlite3", ScheduleCodec(default_trigger_parser()))
    await repository.initialize()
    try:
        yield repository
    finally:
        await repository.close()


async def traced(repository: SqliteScheduleRepository) -> list[str]:
    """The statements the repository's connection runs from now on (SQLite's trace), but the
    ``PRAGMA``s the worker runs before each call."""
    statements: list[str] = []

    def trace() -> None:  # on the store's worker thread, on its one connection
        repository._db.connection().set_trace_callback(
            lambda statement: None if statement.startswith("PRAGMA") else statements.append(statement))

    await repository._db.run(trace)
    return statements


def plan(path: Path, statement: str) -> list[str]:
    """How SQLite runs ``statement`` (as traced: its parameters written in) on the file ``path``."""
    with sqlite3.connect(path) as conn:
        steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")]
    conn.close()
    return steps


def grouped(path: Path) -> dict[tuple[ScheduleStatus, str], int]:
    """The counts as a group-by over every schedule finds them (what the kept counts must equal)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT status, task_type, count(*) FROM schedules GROUP BY 1, 2").fetchall()
    conn.close()
    return {(ScheduleStatus(status), task_type): n for status, task_type, n in rows}


async def test_the_counts_are_read_without_reading_the_schedules(repo: SqliteScheduleRepository) -> None:
    """``GET /v1/stats`` and ``/metrics`` read the counts: a group-by over every schedule took
    seconds with a million (a 503 after 2 s); the kept counts are a few rows, whatever the size."""
    await repo.add_many([one_off(), one_off(task_type="email")])
    statements = await traced(repo)
    counts = await repo.count_by_status_and_type()
    assert counts == {(ScheduleStatus.SCHEDULED, "whatsapp.text"): 1, (ScheduleStatus.SCHEDULED, "email"): 1}
    (statement,) = statements
    steps = plan(repo._db.path, statement)
    assert steps and not any("schedules " in step or step.endswith("schedules") for step in steps), steps


async def test_the_kept_counts_follow_every_write(repo: SqliteScheduleRepository) -> None:
    """Adds, claims, fenced saves, bulk saves, deletes: the kept counts equal a group-by after each."""
    path = repo._db.path
    waiting = [one_off(T0, now=T0 - timedelta(days=1)) for _ in range(4)]
    await repo.add_many(waiting)
    await repo.add(one_off(T0 + timedelta(days=1), task_type="email"))
    assert await repo.count_by_status_and_type() == grouped(path)

    claimed = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=3)
    assert len(claimed) == 3
    assert await repo.count_by_status_and_type() == grouped(path)

    first, second, third = claimed
    first_attempt, second_attempt = (s.lease.attempt_id for s in (first, second))  # type: ignore[union-attr]
    first.succeed(attempt_id=first_attempt, now=T0)
    assert await repo.save(first, expected_status=ScheduleStatus.RUNNING, attempt_id=first_attempt)
    second.succeed(attempt_id=second_attempt, now=T0)
    assert not await repo.save(second, expected_status=ScheduleStatus.RUNNING, attempt_id="not-its-attempt")
    assert await repo.renew_lease(third.id, third.lease.attempt_id, T0 + 2 * LEASE)  # type: ignore[union-attr]
    assert await repo.count_by_status_and_type() == grouped(path)

    (cancelled,) = (s.copy() for s in waiting if s.id not in {c.id for c in claimed})
    cancelled.cancel(now=T0)
    assert await repo.save_many([ConditionalSave(second, ScheduleStatus.RUNNING, second_attempt),
                                 ConditionalSave(cancelled, ScheduleStatus.SCHEDULED)]) == [True, True]
    assert await repo.count_by_status_and_type() == grouped(path) == {
        (ScheduleStatus.SUCCEEDED, "whatsapp.text"): 2, (ScheduleStatus.RUNNING, "whatsapp.text"): 1,
        (ScheduleStatus.CANCELLED, "whatsapp.text"): 1, (ScheduleStatus.SCHEDULED, "email"): 1}

    assert await repo.delete_finished(before=T0 + timedelta(days=1), statuses=[ScheduleStatus.SUCCEEDED],
                                      limit=10) == 2
    counts = await repo.count_by_status_and_type()
    assert counts == grouped(path) and (ScheduleStatus.SUCCEEDED, "whatsapp.text") not in counts


async def test_a_file_from_before_the_kept_counts_is_counted_once_and_kept_for_earlier_versions(
        tmp_path: Path) -> None:
    """A file an earlier version made (no kept counts) is counted once when this version opens
    it; then an earlier version's writes (a rolling update, a roll-back: plain SQL, which knows
    nothing of the counts) keep them too, through the triggers in the file."""
    path = tmp_path / "cronjob.sqlite3"
    codec = ScheduleCodec(default_trigger_parser())
    repository = SqliteScheduleRepository(path, codec)
    await repository.initialize()
    await repository.add_many([one_off(), one_off(), ended("webhook.delivery", made=T0, at=T0)])
    await repository.close()
    with sqlite3.connect(path) as conn:  # as the previous release left it
        for name in ("schedule_counts_added", "schedule_counts_deleted", "schedule_counts_moved"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE schedule_counts")
    conn.close()

    repository = SqliteScheduleRepository(path, codec)
    try:
        await repository.initialize()
        await repository.initialize()  # idempotent: counted once
        assert await repository.count_by_status_and_type() == grouped(path) == {
            (ScheduleStatus.SCHEDULED, "whatsapp.text"): 2, (ScheduleStatus.SUCCEEDED, "webhook.delivery"): 1}
        with sqlite3.connect(path) as conn:  # an earlier version's writes
            conn.execute("UPDATE schedules SET status = 'cancelled' WHERE status = 'scheduled' AND rowid ="
                         " (SELECT min(rowid) FROM schedules WHERE status = 'scheduled')")
            conn.execute("DELETE FROM schedules WHERE task_type = 'webhook.delivery'")
        conn.close()
        assert await repository.count_by_status_and_type() == grouped(path) == {
            (ScheduleStatus.SCHEDULED, "whatsapp.text"): 1, (ScheduleStatus.CANCELLED, "whatsapp.text"): 1}
    finally:
        await repository.close()


async def test_purge_runs_deletes_a_page_per_write_transaction(repo: SqliteScheduleRepository) -> None:
    """``cronjob.purge_runs`` with a limit of up to 1,000,000 deleted them in one statement, one
    write transaction: every creation and claim waited for it (10 s at most, then a 503 or a
    failed claim). It deletes 500 per write, as the retention of the service's own jobs does."""
    old = T0 - timedelta(days=60)
    await repo.add_many([ended("whatsapp.template", made=old, at=old) for _ in range(1_250)])
    statements = await traced(repo)
    context = RoutineContext(repo, FixedClock(T0), one_off(T0))
    purged = await purge_runs(PurgeArgs(older_than_days=30, limit=1_100), context)
    assert purged["deleted"] == "1100"
    # Each write transaction's DELETE (the trace repeats its text for each trigger it fires).
    transactions = " ".join(statements).split("BEGIN IMMEDIATE")[1:]
    limits = [sorted({int(n) for n in re.findall(r"^DELETE FROM schedules .* LIMIT (\d+)\)", t, re.M)})
              for t in (t.replace("DELETE FROM", "\nDELETE FROM") for t in transactions)]
    assert limits == [[500], [500], [100]], limits
    assert grouped(repo._db.path) == {(ScheduleStatus.SUCCEEDED, "whatsapp.template"): 150}
    assert (await purge_runs(PurgeArgs(older_than_days=30), context))["deleted"] == "150"


async def test_a_label_list_reads_the_label_index_in_its_order_and_stops_at_the_page(
        repo: SqliteScheduleRepository) -> None:
    """A page of a campaign's schedules, newest first, and each page after it by cursor: read off
    the label index in its order from the cursor on, not every schedule of the label sorted (a
    campaign of 100,000: over a second a page)."""
    made = [one_off(now=T0 + timedelta(minutes=i), labels={"campaign": "bf"}) for i in range(5)]
    await repo.add_many(made)
    statements = await traced(repo)
    first = await repo.list(labels={"campaign": "bf"}, limit=2)
    assert [s.id for s in first] == [made[4].id, made[3].id]
    after = ListCursor.of(first[-1], ListOrder.CREATED)
    assert [s.id for s in await repo.list(labels={"campaign": "bf"}, limit=2, after=after)] == [made[2].id, made[1].id]
    for statement in statements:
        steps = plan(repo._db.path, statement)
        assert steps[0].startswith("SEARCH l0 USING COVERING INDEX schedule_labels_newest (key=? AND value=?"), steps
        assert not any("TEMP B-TREE" in step or step.startswith("SCAN") for step in steps), steps
    assert "(schedule_created_at,schedule_id)<(?,?)" in plan(repo._db.path, statements[-1])[0]


async def test_a_file_from_before_the_label_order_gets_it_at_start(tmp_path: Path) -> None:
    """The label rows of an earlier version's file get their schedule's ``created_at`` when this
    version first opens it (and its triggers fill it from then on); the earlier index goes."""
    path = tmp_path / "cronjob.sqlite3"
    codec = ScheduleCodec(default_trigger_parser())
    made = [one_off(now=T0 + timedelta(minutes=i), labels={"campaign": "bf", "order": str(i)}) for i in range(3)]
    repository = SqliteScheduleRepository(path, codec)
    await repository.initialize()
    await repository.add_many(made)
    await repository.close()
    with sqlite3.connect(path) as conn:  # the label index as the previous release made it
        for name in ("schedule_labels_added", "schedule_labels_changed", "schedule_labels_deleted"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("CREATE TABLE earlier (schedule_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                     " PRIMARY KEY (schedule_id, key)) WITHOUT ROWID")
        conn.execute("INSERT INTO earlier SELECT schedule_id, key, value FROM schedule_labels")
        conn.execute("DROP TABLE schedule_labels")
        conn.execute("ALTER TABLE earlier RENAME TO schedule_labels")
        conn.execute("CREATE INDEX schedule_labels_key_value ON schedule_labels (key, value, schedule_id)")
        conn.execute("""CREATE TRIGGER schedule_labels_added AFTER INSERT ON schedules WHEN new.labels IS NOT NULL
            BEGIN INSERT INTO schedule_labels (schedule_id, key, value)
            SELECT new.id, key, value FROM json_each(new.labels); END""")
    conn.close()

    repository = SqliteScheduleRepository(path, codec)
    try:
        await repository.initialize()
        await repository.initialize()  # idempotent
        later = one_off(now=T0 + timedelta(hours=1), labels={"campaign": "bf"})
        await repository.add(later)
        listed = await repository.list(labels={"campaign": "bf"}, limit=10)
        assert [s.id for s in listed] == [later.id, made[2].id, made[1].id, made[0].id]
    finally:
        await repository.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT count(*), count(l.schedule_created_at) FROM schedule_labels AS l"
                            " JOIN schedules AS s ON s.id = l.schedule_id"
                            " WHERE l.schedule_created_at IS s.created_at").fetchone()
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'schedule_labels'")}
    conn.close()
    assert rows == (7, 7)  # every label row, the three schedules' two each and the later one's
    assert indexes == {"schedule_labels_newest"}


async def test_a_users_schedules_in_one_status_are_read_without_the_rest_of_theirs(
        repo: SqliteScheduleRepository) -> None:
    """A bulk change by ``userId`` lists one status at a time, newest first: through the
    ``(user_id, status, created_at, id)`` index, from the cursor on, not every schedule of that
    user (a large account's 100,000 finished ones for each page of its waiting ones)."""
    await repo.add_many([one_off(now=T0 + timedelta(minutes=i), user_id="acme") for i in range(3)])
    statements = await traced(repo)
    first = await repo.list(user_id="acme", status=ScheduleStatus.SCHEDULED, task_types=["whatsapp.text"], limit=2)
    after = ListCursor.of(first[-1], ListOrder.CREATED)
    assert len(await repo.list(user_id="acme", status=ScheduleStatus.SCHEDULED, limit=2, after=after)) == 1
    assert [plan(repo._db.path, statement) for statement in statements] == [
        ["SEARCH schedules USING INDEX schedules_user_status (user_id=? AND status=?)"],
        ["SEARCH schedules USING INDEX schedules_user_status (user_id=? AND status=? AND (created_at,id)<(?,?))"]]
