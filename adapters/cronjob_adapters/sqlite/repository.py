"""A ScheduleRepository on the standard library's ``sqlite3``: one file, WAL, shared by processes.

Each schedule is one row: the columns the queries filter and sort on, plus ``doc``, the codec's
document as JSON (datetimes as ISO-8601 text). Claims and lease renewals run in ``BEGIN IMMEDIATE``
transactions, which take the database's single write lock up front, so concurrent claimers in
other threads or processes are serialised by SQLite itself (waiting up to ``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import DuplicateSchedule, ScheduleRepository, StoreUnavailable

from cronjob_adapters.codec import ScheduleCodec, to_millis

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schedules (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        next_run_at INTEGER,
        lease_until INTEGER,
        lease_attempt_id TEXT,
        idempotency_key TEXT UNIQUE,
        created_at INTEGER NOT NULL,
        task_type TEXT NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS schedules_due ON schedules (status, next_run_at)",
    "CREATE INDEX IF NOT EXISTS schedules_lease ON schedules (status, lease_until)",
    "CREATE INDEX IF NOT EXISTS schedules_created ON schedules (created_at, id)",
)

# Due work, through the two status indexes; each branch is limited before the merge. Lapsed
# leases are sorted by their due time too: there are few (at most the runs in flight at a crash).
_DUE = """
SELECT id, doc FROM (
    SELECT * FROM (
        SELECT id, doc, next_run_at AS due FROM schedules
        WHERE status = 'scheduled' AND next_run_at <= :now {types}
        ORDER BY next_run_at, id LIMIT :limit)
    UNION ALL
    SELECT * FROM (
        SELECT id, doc, COALESCE(next_run_at, :now) AS due FROM schedules
        WHERE status = 'running' AND lease_until < :now {types}
        ORDER BY due, id LIMIT :limit)
)
ORDER BY due, id LIMIT :limit
"""


def _type_filter(
    task_types: Collection[str] | None, exclude_types: Collection[str]
) -> tuple[str, dict[str, str]]:
    """The SQL condition (with named parameters) that keeps only the wanted task types."""
    clause, params = "", {}
    if task_types is not None:
        names = [f":in{i}" for i in range(len(task_types))]
        params.update({n[1:]: t for n, t in zip(names, task_types, strict=True)})
        clause += f" AND task_type IN ({', '.join(names) or 'NULL'})"
    if exclude_types:
        names = [f":ex{i}" for i in range(len(exclude_types))]
        params.update({n[1:]: t for n, t in zip(names, exclude_types, strict=True)})
        clause += f" AND task_type NOT IN ({', '.join(names)})"
    return clause, params

_NEXT_DUE = """
SELECT min(t) FROM (
    SELECT min(next_run_at) AS t FROM schedules WHERE status = 'scheduled'
    UNION ALL
    SELECT min(lease_until) AS t FROM schedules WHERE status = 'running'
)
"""


def _ms(value: datetime | None) -> int | None:
    """Epoch milliseconds of ``value`` (UTC, truncated like the codec), or None."""
    return None if value is None else (to_millis(value) - _EPOCH) // _MS


def _from_ms(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MS


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, default=_json_default, ensure_ascii=False, separators=(",", ":"))


class SqliteScheduleRepository(ScheduleRepository):
    """Schedules in one SQLite file, safe for several repositories and OS processes at once.

    Every ``sqlite3`` call runs on this instance's own worker thread, on the one connection
    opened there, so the event loop never blocks on disk or on another process's lock. Each
    call submitted to that thread is a whole transaction: a caller that is cancelled while
    waiting cannot leave a transaction open.
    """

    def __init__(
        self, path: Path | str, codec: ScheduleCodec, *, busy_timeout_seconds: float = 30.0
    ) -> None:
        self._path = Path(path)
        self._codec = codec
        self._busy_timeout = busy_timeout_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cronjob-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._closed = False

    # -- plumbing (worker thread) --------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            try:
                # ``timeout`` is SQLite's busy timeout: a locked database is waited for, not an error.
                # FULL: every commit syncs the WAL, so a schedule accepted (``add`` returned) or a
                # result saved survives power loss; WAL+NORMAL may lose the last commits then.
                conn.execute("PRAGMA synchronous = FULL")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in a ``BEGIN IMMEDIATE`` transaction (the write lock taken first)."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def _run(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` on the worker thread; a store that cannot be reached or stays locked
        past the busy timeout is :class:`StoreUnavailable`."""
        if self._closed:
            raise StoreUnavailable("the SQLite repository is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except (sqlite3.OperationalError, OSError) as error:
            raise StoreUnavailable(f"SQLite store {self._path}: {error}") from error

    def _load(self, doc: str) -> Schedule:
        return self._codec.from_document(json.loads(doc))

    def _row(self, schedule: Schedule) -> dict[str, Any]:
        """The column values of ``schedule``, with its document as JSON."""
        lease = schedule.lease
        return {
            "id": schedule.id,
            "status": schedule.status.value,
            "next_run_at": _ms(schedule.next_run_at),
            "lease_until": _ms(lease.until) if lease else None,
            "lease_attempt_id": lease.attempt_id if lease else None,
            "idempotency_key": schedule.idempotency_key or None,
            "created_at": _ms(schedule.created_at),
            "task_type": schedule.task_type,
            "doc": _dumps(self._codec.to_document(schedule)),
        }

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        def create() -> None:
            conn = self._connection()
            # WAL is a property of the file: readers never block the writer, nor it them.
            conn.execute("PRAGMA journal_mode = WAL")

            def ddl(c: sqlite3.Connection) -> None:
                for statement in _SCHEMA:
                    c.execute(statement)

            self._transaction(ddl)

        await self._run(create)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        def probe() -> None:
            try:
                self._connection().execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as error:
                raise StoreUnavailable(f"SQLite store {self._path}: {error}") from error

        await self._run(probe)

    # -- writes and reads ---------------------------------------------------------------------------------

    async def add(self, schedule: Schedule) -> None:
        row = self._row(schedule)

        def insert() -> None:
            conn = self._connection()
            try:
                conn.execute(
                    "INSERT INTO schedules (id, status, next_run_at, lease_until, lease_attempt_id,"
                    " idempotency_key, created_at, task_type, doc) VALUES (:id, :status,"
                    " :next_run_at, :lease_until, :lease_attempt_id, :idempotency_key, :created_at,"
                    " :task_type, :doc)",
                    row,
                )
            except sqlite3.IntegrityError:
                found = conn.execute(
                    "SELECT id FROM schedules WHERE id = ? OR idempotency_key = ?"
                    " ORDER BY id = ? DESC LIMIT 1",
                    (row["id"], row["idempotency_key"], row["id"]),
                ).fetchone()
                if found is None:
                    raise
                raise DuplicateSchedule(found[0]) from None

        await self._run(insert)

    async def get(self, schedule_id: str) -> Schedule | None:
        def read() -> str | None:
            found = self._connection().execute(
                "SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            return found[0] if found else None

        doc = await self._run(read)
        return self._load(doc) if doc is not None else None

    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        def read() -> str | None:
            found = self._connection().execute(
                "SELECT doc FROM schedules WHERE idempotency_key = ?", (key,)).fetchone()
            return found[0] if found else None

        doc = await self._run(read)
        return self._load(doc) if doc is not None else None

    async def list(
        self, *, status: ScheduleStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Schedule]:
        where, params = ("WHERE status = ?", [status.value]) if status is not None else ("", [])

        def read() -> list[str]:
            rows = self._connection().execute(
                f"SELECT doc FROM schedules {where} ORDER BY created_at DESC, id DESC"
                " LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
            return [doc for (doc,) in rows]

        return [self._load(doc) for doc in await self._run(read)]

    async def count_by_status(self) -> dict[ScheduleStatus, int]:
        def read() -> list[tuple[str, int]]:
            return self._connection().execute(
                "SELECT status, count(*) FROM schedules GROUP BY status").fetchall()

        return {ScheduleStatus(status): count for status, count in await self._run(read)}

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        def read() -> list[tuple[str, str, int]]:
            return self._connection().execute(
                "SELECT status, task_type, count(*) FROM schedules GROUP BY status, task_type").fetchall()

        return {(ScheduleStatus(status), task_type): count for status, task_type, count in await self._run(read)}

    async def next_due_at(self) -> datetime | None:
        def read() -> int | None:
            (earliest,) = self._connection().execute(_NEXT_DUE).fetchone()
            return earliest

        return _from_ms(await self._run(read))

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
        types, type_params = _type_filter(
            list(task_types) if task_types is not None else None, list(exclude_types))
        query = _DUE.format(types=types)

        def claim(conn: sqlite3.Connection) -> list[Schedule]:
            rows = conn.execute(query, {"now": _ms(now), "limit": limit, **type_params}).fetchall()
            claimed: list[Schedule] = []
            for _, doc in rows:
                schedule = self._load(doc)
                schedule.claim(owner=owner, attempt_id=uuid.uuid4().hex, now=at, until=until)
                claimed.append(schedule)
            conn.executemany(
                "UPDATE schedules SET status = :status, lease_until = :lease_until,"
                " lease_attempt_id = :lease_attempt_id, doc = :doc WHERE id = :id",
                [self._row(schedule) for schedule in claimed],
            )
            return claimed

        if limit <= 0:
            return []
        return await self._run(lambda: self._transaction(claim))

    async def save(
        self, schedule: Schedule, *, expected_status: ScheduleStatus, attempt_id: str | None = None
    ) -> bool:
        row = self._row(schedule)
        row["expected_status"] = expected_status.value
        fence = ""
        if attempt_id is not None:
            row["expected_attempt"] = attempt_id
            fence = " AND lease_attempt_id = :expected_attempt"

        def update() -> bool:
            # The id and idempotency key never change, so neither column is written.
            cursor = self._connection().execute(
                "UPDATE schedules SET status = :status, next_run_at = :next_run_at,"
                " lease_until = :lease_until, lease_attempt_id = :lease_attempt_id,"
                " created_at = :created_at, task_type = :task_type, doc = :doc"
                " WHERE id = :id AND status = :expected_status" + fence,
                row,
            )
            return cursor.rowcount == 1

        return await self._run(update)

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        def renew(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                "SELECT doc FROM schedules WHERE id = ? AND status = 'running'"
                " AND lease_attempt_id = ?", (schedule_id, attempt_id)).fetchone()
            if found is None:
                return False
            schedule = self._load(found[0])
            assert schedule.lease is not None  # the row's lease columns mirror the document
            schedule.lease = replace(schedule.lease, until=to_millis(until))
            row = self._row(schedule)
            conn.execute("UPDATE schedules SET lease_until = :lease_until, doc = :doc WHERE id = :id",
                         row)
            return True

        return await self._run(lambda: self._transaction(renew))
