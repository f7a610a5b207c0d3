"""A ScheduleRepository on the standard library's ``sqlite3``: one file, WAL, shared by processes.

Each schedule is one row: the columns the queries filter and sort on, plus ``doc``, the codec's
document as JSON (datetimes as ISO-8601 text); its labels are also rows of ``schedule_labels``,
indexed by (key, value) newest first and kept by triggers (see ``schema.LABELS``). Claims and lease renewals
run in ``BEGIN IMMEDIATE`` transactions, which take the database's single write lock up front,
so concurrent claimers in other threads or processes are serialised by SQLite itself (each call
waiting at most ``call_timeout_seconds`` in all, see ``SqliteWorker``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any

import orjson

from cronjob.domain.schedule import Schedule, ScheduleStatus, claim_version
from cronjob.ports.repository import (
    ConditionalSave,
    DuplicateSchedule,
    ListCursor,
    ScheduleRepository,
    StoreUnavailable,
    check_cursor,
    check_finished,
    check_one_each,
    key_chunks,
)

from cronjob_adapters.codec import OPTIONAL_KEYS, ScheduleCodec, status_counts, to_millis
from cronjob_adapters.ids import attempt_ids
from cronjob_adapters.sqlite.connection import CHECKPOINT_PAGES, WAL_SIZE_LIMIT, SqliteWorker
from cronjob_adapters.sqlite.schema import (
    CLAIM_IN_PLACE,
    DUE,
    FENCE,
    NEXT_DUE,
    READ_COUNTS,
    SAVE,
    SCHEMA,
    add_columns,
    from_epoch_ms,
    keep_added_keys,
    keep_counts,
    labels_column,
    list_query,
    make_labels,
    rename_statuses,
    to_epoch_ms,
    type_filter,
)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _dumps(doc: dict[str, Any]) -> str:
    """``doc`` as compact JSON text, datetimes in ``datetime.isoformat``'s form.

    orjson writes what the standard library would (datetimes, which the fenced save compares
    ``updated_at`` as, to the character) at a tenth of its cost. What it refuses (integers
    beyond 64 bits, non-string keys) goes to the standard library, as before. It would write a
    non-finite float as ``null``: none reaches a document, the API refuses them. Documents are
    read by the standard library, which reads every integer exactly (orjson reads one beyond
    64 bits as a float).
    """
    try:
        return orjson.dumps(doc).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(doc)


@cache
def _written_keys(keys: tuple[str, ...]) -> str:
    """The ``:written_keys`` of a save (see ``schema.SAVE``) whose document holds ``keys``: each
    of them and of ``OPTIONAL_KEYS``, null. Patched over the stored document, it leaves the
    keys that a later version added, which the save keeps."""
    return json.dumps(dict.fromkeys([*keys, *sorted(OPTIONAL_KEYS)]), ensure_ascii=False, separators=(",", ":"))


def _insert(conn: sqlite3.Connection, *, row: dict[str, Any]) -> str | None:
    """In a transaction: insert a schedule's ``row``; None, or the id of the schedule it collides
    with (by id, else by idempotency key), then not written.

    A duplicate is answered as a value, not raised: the failed INSERT undoes only itself
    (SQLite's default ABORT), so that the other writes of its transaction (its group commit,
    an ``add_many``) are still committed."""
    try:
        conn.execute(
            "INSERT INTO schedules (id, status, next_run_at, lease_until, lease_attempt_id,"
            " idempotency_key, created_at, task_type, provider_message_id, user_id, labels, doc) VALUES"
            " (:id, :status, :next_run_at, :lease_until, :lease_attempt_id, :idempotency_key,"
            " :created_at, :task_type, :provider_message_id, :user_id, :labels, :doc)",
            row,
        )
    except sqlite3.IntegrityError:
        found = conn.execute(
            "SELECT id FROM schedules WHERE id = ? OR idempotency_key = ?"
            " ORDER BY id = ? DESC LIMIT 1",
            (row["id"], row["idempotency_key"], row["id"]),
        ).fetchone()
        if found is None:
            raise  # another constraint: fails the transaction (a group is then tried write by write)
        return str(found[0])
    return None


class SqliteScheduleRepository(ScheduleRepository):
    """Schedules in one SQLite file, safe for several repositories and OS processes at once.

    Every ``sqlite3`` call goes through this instance's :class:`SqliteWorker`: its own worker
    thread and connection, where claims, saves and lease renewals commit in groups.
    ``checkpoint_pages`` (SQLite's ``wal_autocheckpoint``) and ``wal_size_limit_bytes`` (its
    ``journal_size_limit``: the size the write-ahead log is cut back to when it is reused) are
    the log's bounds; the defaults are the service's.
    """

    def __init__(
        self, path: Path | str, codec: ScheduleCodec, *, call_timeout_seconds: float = 10.0,
        checkpoint_pages: int = CHECKPOINT_PAGES, wal_size_limit_bytes: int = WAL_SIZE_LIMIT,
    ) -> None:
        self._codec = codec
        self._db = SqliteWorker(path, call_timeout_seconds=call_timeout_seconds,
                                checkpoint_pages=checkpoint_pages, wal_size_limit_bytes=wal_size_limit_bytes)

    def _load(self, doc: str) -> Schedule:
        return self._codec.from_document(json.loads(doc))

    def _row(self, schedule: Schedule, document: dict[str, Any] | None = None) -> dict[str, Any]:
        """The column values of ``schedule``, with its document (``document``, if the caller
        encoded it already) as JSON."""
        lease = schedule.lease
        if document is None:
            document = self._codec.to_document(schedule)
        return {
            "id": schedule.id,
            "status": schedule.status.value,
            "next_run_at": to_epoch_ms(schedule.next_run_at),
            "lease_until": to_epoch_ms(lease.until) if lease else None,
            "lease_attempt_id": lease.attempt_id if lease else None,
            "idempotency_key": schedule.idempotency_key or None,
            "created_at": to_epoch_ms(schedule.created_at),
            "task_type": schedule.task_type,
            "provider_message_id": schedule.result.get("provider_message_id") or None,
            "user_id": schedule.user_id,
            "labels": labels_column(schedule.labels),
            "doc": _dumps(document),
        }

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        def create() -> None:
            conn = self._db.connection()
            # WAL is a property of the file: readers never block the writer, nor it them.
            conn.execute("PRAGMA journal_mode = WAL")

            def ddl(c: sqlite3.Connection) -> None:
                for statement in SCHEMA:
                    c.execute(statement)
                add_columns(c)
                rename_statuses(c)
                make_labels(c)
                keep_counts(c)
                keep_added_keys(c)

            self._db.transaction(ddl)

        await self._db.run(create)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        def probe() -> None:
            try:
                self._db.connection().execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as error:
                raise StoreUnavailable(f"SQLite store {self._db.path}: {error}") from error

        await self._db.run(probe)

    # -- writes and reads ---------------------------------------------------------------------------------

    async def add(self, schedule: Schedule) -> None:
        row = self._row(schedule)

        def refuse(existing_id: str | None) -> None:
            """After the commit: a duplicate raised to its caller alone."""
            if existing_id is not None:
                raise DuplicateSchedule(existing_id)

        # Joins the group commit: concurrent adds (a batch's schedules, the webhook deliveries of
        # finishing runs) cost one WAL sync together, not one each.
        await self._db.write(partial(_insert, row=row), refuse)

    async def add_many(self, schedules: Sequence[Schedule]) -> list[str | None]:
        if not schedules:
            return []
        rows = [self._row(schedule) for schedule in schedules]  # encoded here, on the event loop
        # One transaction (joining the group commit), one WAL sync for the lot.
        return await self._db.write(lambda conn: [_insert(conn, row=row) for row in rows])

    async def _one(self, query: str, *params: str) -> Schedule | None:
        """The schedule whose document ``query`` selects (its first row), or None."""
        def read() -> str | None:
            found = self._db.connection().execute(query, params).fetchone()
            return found[0] if found else None

        doc = await self._db.run(read)
        return self._load(doc) if doc is not None else None

    async def get(self, schedule_id: str) -> Schedule | None:
        return await self._one("SELECT doc FROM schedules WHERE id = ?", schedule_id)

    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        return await self._one("SELECT doc FROM schedules WHERE idempotency_key = ?", key)

    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        chunks = key_chunks(keys)
        if not chunks:
            return {}

        def read() -> list[tuple[str, str]]:
            # One query per chunk through the key's unique index, all in one call of the worker.
            conn = self._db.connection()
            query = "SELECT idempotency_key, doc FROM schedules WHERE idempotency_key IN ({})"
            return [row for chunk in chunks for row in conn.execute(query.format(", ".join("?" * len(chunk))), chunk)]

        return {key: self._load(doc) for key, doc in await self._db.run(read)}

    async def get_by_provider_message_id(self, message_id: str) -> Schedule | None:
        return await self._one("SELECT doc FROM schedules WHERE provider_message_id = ?"
                               " ORDER BY created_at DESC, id DESC LIMIT 1", message_id)

    async def list(
        self,
        *,
        status: ScheduleStatus | None = None,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
        user_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
        due_after: datetime | None = None,
        due_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        after: ListCursor | None = None,
    ) -> list[Schedule]:
        check_cursor(after, due_after, due_before)
        found = list_query(status=status, task_types=task_types, exclude_types=exclude_types, user_id=user_id,
                           labels=labels, limit=limit, offset=offset, due_after=due_after, due_before=due_before,
                           updated_after=updated_after, updated_before=updated_before, after=after)
        if found is None:
            return []
        query, params = found

        def read() -> list[str]:
            return [doc for (doc,) in self._db.connection().execute(query, params).fetchall()]

        return [self._load(doc) for doc in await self._db.run(read)]

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        def read() -> list[tuple[str, str, int]]:
            # Kept by the store's triggers (see ``schema.COUNTS``): no read of the schedules.
            return self._db.connection().execute(READ_COUNTS).fetchall()

        return status_counts(await self._db.run(read))

    async def next_due_at(self) -> datetime | None:
        def read() -> int | None:
            (earliest,) = self._db.connection().execute(NEXT_DUE).fetchone()
            return earliest

        return from_epoch_ms(await self._db.run(read))

    # -- claims and fenced writes --------------------------------------------------------------

    async def claim_due(
        self,
        *,
        now: datetime,
        owner: str,
        lease_for: timedelta,
        limit: int,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
    ) -> list[Schedule]:
        at, until = to_millis(now), to_millis(now + lease_for)
        types, type_params = type_filter(task_types, exclude_types)
        query = DUE.format(types=types)

        in_place = {"owner": owner, "claimed_at": at.isoformat(), "until": until.isoformat(),
                    "until_ms": to_epoch_ms(until)}

        def claim(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            """In the transaction: claim the due rows; return their documents as they were read
            (decoded and claimed after the commit, outside the write lock)."""
            rows = conn.execute(query, {"now": to_epoch_ms(now), "limit": limit, **type_params}).fetchall()
            won: list[tuple[str, str]] = []
            for (schedule_id, doc, version), attempt_id in zip(rows, attempt_ids(len(rows)), strict=True):
                stamp = to_millis(claim_version(datetime.fromisoformat(version), at)).isoformat()
                conn.execute(CLAIM_IN_PLACE, {**in_place, "id": schedule_id, "attempt_id": attempt_id,
                                              "updated_at": stamp})
                won.append((doc, attempt_id))
            return won

        def decode(won: list[tuple[str, str]]) -> list[Schedule]:
            """After the commit: the schedules as claimed, exactly as now stored."""
            claimed: list[Schedule] = []
            for doc, attempt_id in won:
                schedule = self._load(doc)
                schedule.claim(owner=owner, attempt_id=attempt_id, now=at, until=until)
                claimed.append(schedule)
            return claimed

        if limit <= 0:
            return []
        return await self._db.write(claim, decode)

    async def save(
        self,
        schedule: Schedule,
        *,
        expected_status: ScheduleStatus,
        attempt_id: str | None = None,
        expected_updated_at: datetime | None = None,
    ) -> bool:
        statement, row = self._conditional_save(ConditionalSave(schedule, expected_status, attempt_id,
                                                                expected_updated_at))
        return await self._db.write(lambda conn: conn.execute(statement, row).rowcount == 1)

    async def save_many(self, writes: Sequence[ConditionalSave]) -> list[bool]:
        check_one_each(writes)
        if not writes:
            return []
        # Encoded here, on the event loop; written in one transaction (one WAL sync for all).
        saves = [self._conditional_save(write) for write in writes]
        return await self._db.write(lambda conn: [conn.execute(statement, row).rowcount == 1
                                                  for statement, row in saves])

    def _conditional_save(self, write: ConditionalSave) -> tuple[str, dict[str, Any]]:
        """The statement of ``write`` and its parameters: the row, guarded by its conditions."""
        document = self._codec.to_document(write.schedule)
        row = self._row(write.schedule, document)
        row["written_keys"] = _written_keys(tuple(document))
        row["expected_status"] = write.expected_status.value
        statement = SAVE
        if write.attempt_id is not None:
            row["expected_attempt"] = write.attempt_id
            statement += FENCE
        if write.expected_updated_at is not None:
            row["expected_updated_at"] = to_millis(write.expected_updated_at).isoformat()
            statement += " AND json_extract(doc, '$.updated_at') = :expected_updated_at"
        return statement, row

    async def delete_finished(
        self, *, before: datetime, statuses: Collection[ScheduleStatus], limit: int,
        task_types: Collection[str] | None = None,
    ) -> int:
        wanted = [s.value for s in check_finished(statuses)]
        if not wanted or limit <= 0 or (task_types is not None and not task_types):
            return 0
        # created_at <= updated_at, so an index of created_at narrows first: (status, created_at),
        # or with task types (task_type, created_at), which finds the service's own jobs without
        # reading the users' finished schedules, however many are kept. updated_at lives in the
        # document as UTC ISO text, which sorts as the instants do.
        types = [] if task_types is None else list(task_types)
        by_type = (f" INDEXED BY schedules_type_created WHERE task_type IN ({', '.join('?' for _ in types)}) AND"
                   if types else " WHERE")
        select = (f"SELECT id FROM schedules{by_type} status IN ({', '.join('?' for _ in wanted)})"
                  " AND created_at < ? AND json_extract(doc, '$.updated_at') < ? LIMIT ?")
        params = (*types, *wanted, to_epoch_ms(before), before.astimezone(UTC).isoformat(), limit)

        def delete(conn: sqlite3.Connection) -> int:
            # One statement, limited in SQL, while the write lock is held.
            return conn.execute(f"DELETE FROM schedules WHERE id IN ({select})", params).rowcount

        return await self._db.write(delete)  # joins the group commit, like every other write

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        # In place, like a claim: the column and the document's lease.until, fenced by the attempt.
        until = to_millis(until)
        params = {"id": schedule_id, "attempt_id": attempt_id, "until_ms": to_epoch_ms(until), "until": until.isoformat()}

        def renew(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE schedules SET lease_until = :until_ms, doc = json_set(doc, '$.lease.until', :until)"
                " WHERE id = :id AND status = 'running' AND lease_attempt_id = :attempt_id", params,
            ).rowcount == 1

        return await self._db.write(renew)
