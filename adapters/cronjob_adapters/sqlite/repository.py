"""A ScheduleRepository on the standard library's ``sqlite3``: one file, WAL, shared by processes.

Each schedule is one row: the columns the queries filter and sort on, plus ``doc``, the codec's
document as JSON (datetimes as ISO-8601 text). Claims and lease renewals run in ``BEGIN IMMEDIATE``
transactions, which take the database's single write lock up front, so concurrent claimers in
other threads or processes are serialised by SQLite itself (waiting up to ``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import (
    DuplicateSchedule,
    ScheduleRepository,
    StoreUnavailable,
    check_finished,
)

from cronjob_adapters.codec import ScheduleCodec, to_millis
from cronjob_adapters.ids import attempt_ids

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
        provider_message_id TEXT,
        doc TEXT NOT NULL
    )""",
    # With ``id`` last, the claim's ORDER BY next_run_at, id is read straight off the index and
    # stops at its LIMIT, even when thousands of schedules share one next_run_at (a burst).
    "CREATE INDEX IF NOT EXISTS schedules_due_at ON schedules (status, next_run_at, id)",
    "DROP INDEX IF EXISTS schedules_due",  # its predecessor, without ``id``
    "CREATE INDEX IF NOT EXISTS schedules_lease ON schedules (status, lease_until)",
    "CREATE INDEX IF NOT EXISTS schedules_created ON schedules (created_at, id)",
)


def _add_provider_message_id(conn: sqlite3.Connection) -> None:
    """Give a database made before the ``provider_message_id`` column that column (filled from
    the stored documents) and its index. Idempotent; runs in ``initialize``'s transaction."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(schedules)")}
    if "provider_message_id" not in columns:
        conn.execute("ALTER TABLE schedules ADD COLUMN provider_message_id TEXT")
        conn.execute("UPDATE schedules SET provider_message_id ="
                     " json_extract(doc, '$.result.provider_message_id')")
    conn.execute("CREATE INDEX IF NOT EXISTS schedules_provider_message_id"
                 " ON schedules (provider_message_id)")

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


#: A fenced write of a whole schedule (``save``). The id, idempotency key, task type and
#: created_at never change, so their columns are not written: SQLite rewrites the entries of
#: every index over a column named in SET, changed or not (a third of a save's cost).
_SAVE = (
    "UPDATE schedules SET status = :status, next_run_at = :next_run_at,"
    " lease_until = :lease_until, lease_attempt_id = :lease_attempt_id,"
    " provider_message_id = :provider_message_id, doc = :doc"
    " WHERE id = :id AND status = :expected_status"
)
_FENCE = " AND lease_attempt_id = :expected_attempt"

#: A claim, in place: what ``Schedule.claim`` changes (status, lease, updated_at), encoded as the
#: codec encodes it, without decoding and re-encoding the whole document while the write lock is
#: held. ``taken_over_from`` is the previous owner when a lapsed lease is taken over. (The
#: contract suite checks that what a claim returns equals what is stored.)
_CLAIM_IN_PLACE = (
    "UPDATE schedules SET status = 'running', lease_until = :until_ms, lease_attempt_id = :attempt_id,"
    " doc = json_set(doc, '$.status', 'running', '$.updated_at', :claimed_at,"
    " '$.lease', json_object('owner', :owner, 'attempt_id', :attempt_id, 'claimed_at', :claimed_at,"
    " 'until', :until, 'taken_over_from',"
    " CASE WHEN status = 'running' THEN json_extract(doc, '$.lease.owner') END))"
    " WHERE id = :id"
)

#: A write waiting for the next group commit: its work, what to do with the work's result once
#: committed (outside the transaction), and the caller's future for the result.
_Write = tuple[Callable[[sqlite3.Connection], Any], "Callable[[Any], Any] | None", "asyncio.Future[Any]"]


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _dumps(doc: dict[str, Any]) -> str:
    return _ENCODER.encode(doc)  # what json.dumps(doc, <same options>) gives, without a new encoder each time


class SqliteScheduleRepository(ScheduleRepository):
    """Schedules in one SQLite file, safe for several repositories and OS processes at once.

    Every ``sqlite3`` call runs on this instance's own worker thread, on the one connection
    opened there, so the event loop never blocks on disk or on another process's lock. Each
    call submitted to that thread is a whole transaction: a caller that is cancelled while
    waiting cannot leave a transaction open.

    Claims, saves and lease renewals commit in groups: those that arrive while the worker
    thread is busy run together, in order, in one ``BEGIN IMMEDIATE`` transaction, so a burst of
    finishing runs and the claims that refill their slots cost one WAL sync per group instead of
    one each. Each call still returns only once its own write is committed, with its own
    outcome; if the group's transaction fails, each call is retried in a transaction of its own.
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
        self._writes: list[_Write] = []  # writes waiting for the next group commit
        self._writes_lock = threading.Lock()
        self._flush_queued = False  # a group commit is queued on the worker thread

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
                # Copy the WAL back into the database every ~40 MB of WAL (10,000 pages) rather
                # than every ~4 MB (the default): during a burst each of those checkpoints (a copy
                # and a sync of the database file, write lock held) costs as much as many commits.
                # Durability is the same: every commit still syncs the WAL.
                conn.execute("PRAGMA wal_autocheckpoint = 10000")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting up to the busy timeout for another writer's lock.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries, so a
        writer that finds the lock taken for a moment (another scheduler process committing)
        would lose tens of ms; this tries again every fraction of a millisecond instead.
        """
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + self._busy_timeout
            pause = 0.0001
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # any SQLITE_BUSY_*
                    if not busy or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 1.5, 0.002)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in a ``BEGIN IMMEDIATE`` transaction (the write lock taken first)."""
        conn = self._connection()
        self._begin_immediate(conn)
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

    def _flush_writes(self) -> None:
        """Worker thread: run every queued write in one transaction, then report each outcome."""
        with self._writes_lock:
            batch, self._writes = self._writes, []
            self._flush_queued = False
        if not batch:
            return
        outcomes: list[Any]
        if self._closed and self._conn is None:  # queued after ``close``: never reopen
            outcomes = [StoreUnavailable("the SQLite repository is closed") for _ in batch]
            failed = [True] * len(batch)
        else:
            outcomes, failed = self._commit_group(batch)
        for index, (_, after, _) in enumerate(batch):
            if after is not None and not failed[index]:
                try:
                    outcomes[index] = after(outcomes[index])
                except Exception as error:
                    outcomes[index], failed[index] = error, True

        def resolve(loop: asyncio.AbstractEventLoop) -> None:
            for (_, _, future), outcome, bad in zip(batch, outcomes, failed, strict=True):
                if future.get_loop() is not loop or future.done():  # done: the caller was cancelled
                    continue
                if not bad:
                    future.set_result(outcome)
                elif isinstance(outcome, (sqlite3.OperationalError, OSError)):
                    error = StoreUnavailable(f"SQLite store {self._path}: {outcome}")
                    error.__cause__ = outcome
                    future.set_exception(error)
                else:
                    future.set_exception(outcome)

        for loop in {future.get_loop() for _, _, future in batch}:
            with contextlib.suppress(RuntimeError):  # that event loop is gone
                loop.call_soon_threadsafe(resolve, loop)

    def _commit_group(self, batch: list[_Write]) -> tuple[list[Any], list[bool]]:
        """Worker thread: the writes' results (or exceptions) and which of them failed."""
        outcomes: list[Any]
        try:
            outcomes = self._transaction(lambda conn: [work(conn) for work, _, _ in batch])
            failed = [False] * len(batch)
        except Exception as error:
            if len(batch) == 1:
                outcomes, failed = [error], [True]
            else:  # give each write its own transaction, so that a bad one fails only its caller
                outcomes, failed = [], []
                for work, _, _ in batch:
                    try:
                        outcomes.append(self._transaction(work))
                        failed.append(False)
                    except Exception as single:
                        outcomes.append(single)
                        failed.append(True)
        return outcomes, failed

    async def _write(self, work: Callable[[sqlite3.Connection], Any],
                     after: Callable[[Any], _T] | None = None) -> _T:
        """Queue ``work`` for the next group commit and return its result once committed (passed
        through ``after``, on the worker thread but outside the transaction, when given)."""
        if self._closed:
            raise StoreUnavailable("the SQLite repository is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._writes_lock:
            self._writes.append((work, after, future))
            queue_flush, self._flush_queued = not self._flush_queued, True
        if queue_flush:
            # After the callbacks already due in this turn of the loop (the other runs that are
            # finishing now), so that their writes join this group.
            loop.call_soon(self._submit_flush)
        return await future

    def _submit_flush(self) -> None:
        try:
            self._executor.submit(self._flush_writes)
        except RuntimeError:  # closed meanwhile: fail what was queued
            with self._writes_lock:
                batch, self._writes = self._writes, []
                self._flush_queued = False
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable("the SQLite repository is closed"))

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
            "provider_message_id": schedule.result.get("provider_message_id") or None,
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
                _add_provider_message_id(c)

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
            # Writes queued a moment before (their group commit not yet handed to the worker
            # thread) are committed before the connection closes.
            self._executor.submit(self._flush_writes)
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
                    " idempotency_key, created_at, task_type, provider_message_id, doc) VALUES (:id, :status,"
                    " :next_run_at, :lease_until, :lease_attempt_id, :idempotency_key, :created_at,"
                    " :task_type, :provider_message_id, :doc)",
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

    async def get_by_provider_message_id(self, message_id: str) -> Schedule | None:
        def read() -> str | None:
            found = self._connection().execute(
                "SELECT doc FROM schedules WHERE provider_message_id = ?"
                " ORDER BY created_at DESC, id DESC LIMIT 1", (message_id,)).fetchone()
            return found[0] if found else None

        doc = await self._run(read)
        return self._load(doc) if doc is not None else None

    async def list(
        self,
        *,
        status: ScheduleStatus | None = None,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[Schedule]:
        types, params = _type_filter(
            list(task_types) if task_types is not None else None, list(exclude_types))
        where = "WHERE 1 = 1" + types
        if status is not None:
            where += " AND status = :status"
            params["status"] = status.value

        def read() -> list[str]:
            rows = self._connection().execute(
                f"SELECT doc FROM schedules {where} ORDER BY created_at DESC, id DESC"
                " LIMIT :limit OFFSET :offset", {**params, "limit": limit, "offset": offset}).fetchall()
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

        in_place = {"owner": owner, "claimed_at": at.isoformat(), "until": until.isoformat(),
                    "until_ms": _ms(until)}

        def claim(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            """In the transaction: claim the due rows; return their documents as they were read
            (decoded and claimed after the commit, outside the write lock)."""
            rows = conn.execute(query, {"now": _ms(now), "limit": limit, **type_params}).fetchall()
            won: list[tuple[str, str]] = []
            for (schedule_id, doc), attempt_id in zip(rows, attempt_ids(len(rows)), strict=True):
                conn.execute(_CLAIM_IN_PLACE, {**in_place, "id": schedule_id, "attempt_id": attempt_id})
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
        return await self._write(claim, decode)

    async def save(
        self,
        schedule: Schedule,
        *,
        expected_status: ScheduleStatus,
        attempt_id: str | None = None,
        expected_updated_at: datetime | None = None,
    ) -> bool:
        row = self._row(schedule)
        row["expected_status"] = expected_status.value
        statement = _SAVE
        if attempt_id is not None:
            row["expected_attempt"] = attempt_id
            statement += _FENCE
        if expected_updated_at is not None:
            row["expected_updated_at"] = to_millis(expected_updated_at).isoformat()
            statement += " AND json_extract(doc, '$.updated_at') = :expected_updated_at"
        return await self._write(lambda conn: conn.execute(statement, row).rowcount == 1)

    async def delete_finished(
        self, *, before: datetime, statuses: Collection[ScheduleStatus], limit: int
    ) -> int:
        wanted = [s.value for s in check_finished(statuses)]
        if not wanted or limit <= 0:
            return 0
        marks = ", ".join("?" for _ in wanted)

        def delete(conn: sqlite3.Connection) -> int:
            # updated_at lives in the document; created_at <= updated_at, so the column narrows first.
            rows = conn.execute(
                f"SELECT id, json_extract(doc, '$.updated_at') FROM schedules"
                f" WHERE status IN ({marks}) AND created_at < ?", (*wanted, _ms(before))).fetchall()
            doomed = [i for i, updated in rows if datetime.fromisoformat(updated) < before][:limit]
            conn.executemany("DELETE FROM schedules WHERE id = ?", [(i,) for i in doomed])
            return len(doomed)

        return await self._run(lambda: self._transaction(delete))

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        # In place, like a claim: the column and the document's lease.until, fenced by the attempt.
        until = to_millis(until)
        params = {"id": schedule_id, "attempt_id": attempt_id, "until_ms": _ms(until), "until": until.isoformat()}

        def renew(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE schedules SET lease_until = :until_ms, doc = json_set(doc, '$.lease.until', :until)"
                " WHERE id = :id AND status = 'running' AND lease_attempt_id = :attempt_id", params,
            ).rowcount == 1

        return await self._write(renew)
