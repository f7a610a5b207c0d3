"""The SQLite store's connection on its own worker thread: transactions, group commits, closing.

The plumbing under :class:`~cronjob_adapters.sqlite.repository.SqliteScheduleRepository`, which
owns one :class:`SqliteWorker` and hands it the work that touches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cronjob.ports.repository import StoreUnavailable

_T = TypeVar("_T")

#: A write waiting for the next group commit: its work, what to do with the work's result once
#: committed (outside the transaction), the caller's future for the result, and the deadline
#: (``time.monotonic()``) by which it is committed or failed.
_Write = tuple[Callable[[sqlite3.Connection], Any], "Callable[[Any], Any] | None", "asyncio.Future[Any]", float]


class _TooLate(sqlite3.OperationalError):
    """A call that could not be answered within the worker's time limit (see :class:`SqliteWorker`)."""


class _Replaced(sqlite3.OperationalError):
    """A file the connection has open is no longer the one at its path (see :meth:`SqliteWorker.same_files`)."""


#: SQLite's result codes for a database file that is damaged or no database at all, which the
#: ``sqlite3`` module raises as a plain ``DatabaseError``: the store's failure, as a full disk or
#: a lock is, not the caller's (unlike the ``IntegrityError`` and ``ProgrammingError`` it also is).
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def store_failed(error: BaseException) -> bool:
    """Whether ``error`` is the store's failure (:class:`StoreUnavailable` to the caller): a lock
    held too long, a full disk, an I/O error, a damaged file, rather than a bug of the caller."""
    if isinstance(error, (sqlite3.OperationalError, OSError)):
        return True
    return type(error) is sqlite3.DatabaseError and getattr(error, "sqlite_errorcode", 0) & 0xFF in _DAMAGED


#: The files of an SQLite database in WAL mode, by their suffix to its path: the database, its
#: write-ahead log and the log's shared-memory index.
_FILES = ("", "-wal", "-shm")

#: The write-ahead log's bounds (see :meth:`SqliteWorker.connection`): copied back into the
#: database every ~40 MB (pages), and cut back to 64 MB (bytes) whenever it is reused.
CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _identity(name: Path | str) -> tuple[int, int] | None:
    """The file at ``name`` as ``(st_dev, st_ino)``; None when there is none."""
    try:
        found = os.stat(name)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class SqliteWorker:
    """The one connection to an SQLite file, with its worker thread and group commits.

    Every ``sqlite3`` call runs on this instance's own worker thread, on the one connection
    opened there, so the event loop never blocks on disk or on another process's lock. Each
    call submitted to that thread is a whole transaction: a caller that is cancelled while
    waiting cannot leave a transaction open.

    Claims, saves and lease renewals commit in groups: those that arrive while the worker
    thread is busy run together, in order, in one ``BEGIN IMMEDIATE`` transaction, so a burst of
    finishing runs and the claims that refill their slots cost one WAL sync per group instead of
    one each. Each call still returns only once its own write is committed, with its own
    outcome; if the group's transaction fails, each call is retried in a transaction of its own.

    Each call is answered within ``call_timeout_seconds`` of being asked, waiting for the
    calls before it on the worker thread and for another process's write lock included (as the
    MongoDB store answers within 10 s in all): one that cannot be is :class:`StoreUnavailable`,
    so a database locked for long (a backup tool, a ``sqlite3`` shell left in a transaction)
    holds no API request or scheduler loop longer, and a group commit refused for the lock is
    not waited for again by each of its writes (each is answered once its own try is made).

    Each call first checks that the database's files at its path are still those the connection
    has open (:meth:`same_files`): a file deleted or replaced underneath (an ``rm``, a backup
    restored over it) would otherwise take this process's writes into a file no other process
    sees and that is gone when it exits, each answered as stored.
    """

    def __init__(self, path: Path | str, *, call_timeout_seconds: float,
                 checkpoint_pages: int = CHECKPOINT_PAGES, wal_size_limit_bytes: int = WAL_SIZE_LIMIT) -> None:
        self.path = Path(path)
        self._call_timeout = call_timeout_seconds
        self._checkpoint_pages = checkpoint_pages
        self._wal_size_limit = wal_size_limit_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cronjob-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._closed = False
        self._writes: list[_Write] = []  # writes waiting for the next group commit
        self._writes_lock = threading.Lock()
        self._flush_queued = False  # a group commit is queued on the worker thread
        # (st_dev, st_ino) of each of the database's files (by suffix, see _FILES) as the
        # connection opened it: noted after a call, since SQLite opens the log on its first read.
        self._files: dict[str, tuple[int, int]] = {}

    def connection(self) -> sqlite3.Connection:
        """Worker thread: the connection, opened (with its PRAGMAs) on first use."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._call_timeout, isolation_level=None,
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
                conn.execute(f"PRAGMA wal_autocheckpoint = {int(self._checkpoint_pages)}")
                # SQLite reuses the WAL from its start once a checkpoint copied all of it back,
                # but never shrinks the file: one burst, or a reader holding a snapshot (a backup)
                # while writes go on, would leave it at its high-water mark (gigabytes of disk)
                # for as long as any process has the database open. Cut it back to this size
                # whenever it is reused (above the ~40 MB it reaches between checkpoints).
                conn.execute(f"PRAGMA journal_size_limit = {int(self._wal_size_limit)}")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._note_files()  # the database file: opened (created, if new) by ``connect``
        return self._conn

    def _note_files(self) -> None:
        """Worker thread: note the identity of each of the database's files not noted yet that
        is at its path, after a call (so the connection has it open: it keeps them open, and
        SQLite never deletes them while a connection is open, until its last one closes)."""
        if len(self._files) == len(_FILES):
            return
        for suffix in _FILES:
            if suffix not in self._files and (found := _identity(f"{self.path}{suffix}")) is not None:
                self._files[suffix] = found

    def same_files(self) -> None:
        """Worker thread: raise :class:`_Replaced` (an ``OperationalError``, so the caller gets
        :class:`StoreUnavailable`) when a file the connection has open was deleted or replaced
        at its path since: its changes would be seen by no other process and lost when this one
        exits. Nothing mends that but a restart, once the file is in place again."""
        for suffix, known in self._files.items():
            name = f"{self.path}{suffix}"
            found = _identity(name)
            if found != known:
                raise _Replaced(f"{os.path.basename(name)} was {'deleted' if found is None else 'replaced'}"
                                " while this process had the database open: no reads or writes until it"
                                " restarts (what it would write, no other process would see, and it would"
                                " be lost when it exits)")

    def _remove_orphaned_log(self) -> None:
        """Worker thread, once the connection is closed: when the database file was deleted or
        replaced at its path, remove the ``-wal`` and ``-shm`` there that are still those the
        connection had open. They belong to the file that is gone (SQLite cannot checkpoint its
        log into a deleted file, so it leaves them), and the next connection would apply that log
        to whatever file is put at the path: a backup put back would open damaged."""
        if "" not in self._files or _identity(self.path) == self._files[""]:
            return
        for suffix in ("-wal", "-shm"):
            name = f"{self.path}{suffix}"
            if suffix in self._files and _identity(name) == self._files[suffix]:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)

    def _left(self, deadline: float) -> float:
        """Worker thread: the seconds left until ``deadline``; :class:`_TooLate` when none are."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise _TooLate(f"no answer within {self._call_timeout:g} s (the database is locked by another"
                           " connection, or this process's store calls are queued behind one that waits for it)")
        return left

    def _begin_immediate(self, conn: sqlite3.Connection, deadline: float) -> None:
        """``BEGIN IMMEDIATE``, waiting until ``deadline`` for another writer's lock.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries, so a
        writer that finds the lock taken for a moment (another scheduler process committing)
        would lose tens of ms; this tries again every fraction of a millisecond instead.
        """
        self._left(deadline)
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            pause = 0.0001
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # any SQLITE_BUSY_*
                    if not busy:
                        raise
                    if time.monotonic() >= deadline:
                        raise _TooLate(f"{error}: no answer within {self._call_timeout:g} s (the database"
                                       " is locked by another connection)") from error
                time.sleep(pause)
                pause = min(pause * 1.5, 0.002)
        finally:
            self._wait_until(conn, deadline)

    def _wait_until(self, conn: sqlite3.Connection, deadline: float) -> None:
        """Worker thread: have SQLite wait for a lock until ``deadline`` at most (its busy timeout)."""
        conn.execute(f"PRAGMA busy_timeout = {max(int((deadline - time.monotonic()) * 1000), 1)}")

    def transaction(self, work: Callable[[sqlite3.Connection], _T], deadline: float | None = None, *,
                    journal_in_memory: bool = False) -> _T:
        """Run ``work`` in a ``BEGIN IMMEDIATE`` transaction (the write lock taken first), by
        ``deadline`` (``time.monotonic()``; default: the worker's time limit from now).

        ``journal_in_memory``: keep the transaction's statement journal in memory (SQLite's
        ``temp_store``), for work whose statements each change a few rows (the group commits).
        Inside a transaction SQLite saves the original of each page a statement changes (its
        rows, their index entries, what their triggers change), so that a statement that fails
        undoes only itself; past 64 KiB that journal moves into a temporary file, written page by
        page: in a burst, most of the store's write calls. It is never read after a crash (the
        write-ahead log alone makes a commit durable) and is emptied after each statement, so in
        memory it holds one statement's pages. Without it (``initialize``, whose migrations may
        change every row of a large file in one statement) it may use temporary files, as reads
        (which may sort many rows) always do."""
        conn = self.connection()
        self.same_files()
        if journal_in_memory:
            conn.execute("PRAGMA temp_store = MEMORY")  # read by SQLite as the transaction begins
        try:
            self._begin_immediate(conn, time.monotonic() + self._call_timeout if deadline is None else deadline)
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if journal_in_memory:
                conn.execute("PRAGMA temp_store = DEFAULT")
        self._note_files()
        return result

    async def run(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` on the worker thread; a store that cannot be reached, that cannot answer
        within the time limit (a lock held elsewhere) or whose file is damaged
        (:func:`store_failed`) is :class:`StoreUnavailable`."""
        if self._closed:
            raise StoreUnavailable("the SQLite repository is closed")
        deadline = time.monotonic() + self._call_timeout

        def bounded() -> _T:
            self._left(deadline)
            self._wait_until(self.connection(), deadline)
            self.same_files()
            result = call()
            self._note_files()
            return result

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, bounded)
        except (sqlite3.DatabaseError, OSError) as error:
            if not store_failed(error):
                raise
            raise StoreUnavailable(f"SQLite store {self.path}: {error}") from error

    def _flush_writes(self) -> None:
        """Worker thread: run every queued write in one transaction, then report each outcome."""
        with self._writes_lock:
            batch, self._writes = self._writes, []
            self._flush_queued = False
        if not batch:
            return
        if self._closed and self._conn is None:  # queued after ``close``: never reopen
            self._settle([(write, StoreUnavailable("the SQLite repository is closed"), True) for write in batch])
            return
        try:
            # By the first write's deadline: those asked later may still be tried on their own.
            outcomes = self.transaction(lambda conn: [work(conn) for work, _, _, _ in batch],
                                        min(deadline for _, _, _, deadline in batch), journal_in_memory=True)
        except Exception as error:
            if len(batch) == 1:
                self._settle([(batch[0], error, True)])
                return
            # Each write in a transaction of its own, so that a bad one fails only its caller;
            # each answered at once, not after the later ones' waits for the lock.
            for write in batch:
                try:
                    self._settle([(write, self.transaction(write[0], write[3], journal_in_memory=True), False)])
                except Exception as single:
                    self._settle([(write, single, True)])
            return
        self._settle([(write, outcome, False) for write, outcome in zip(batch, outcomes, strict=True)])

    def _settle(self, settled: list[tuple[_Write, Any, bool]]) -> None:
        """Worker thread: answer each write's caller with its outcome (whether it ``failed``),
        passed through the write's ``after`` first when it did not; one callback per event loop."""
        answers: list[tuple[asyncio.Future[Any], Any, bool]] = []
        for (_, after, future, _), outcome, failed in settled:
            if after is not None and not failed:
                try:
                    outcome = after(outcome)
                except Exception as error:
                    outcome, failed = error, True
            answers.append((future, outcome, failed))

        def resolve(loop: asyncio.AbstractEventLoop) -> None:
            for future, outcome, failed in answers:
                if future.get_loop() is not loop or future.done():  # done: the caller was cancelled
                    continue
                if not failed:
                    future.set_result(outcome)
                elif store_failed(outcome):
                    error = StoreUnavailable(f"SQLite store {self.path}: {outcome}")
                    error.__cause__ = outcome
                    future.set_exception(error)
                else:
                    future.set_exception(outcome)

        for loop in {future.get_loop() for future, _, _ in answers}:
            with contextlib.suppress(RuntimeError):  # that event loop is gone
                loop.call_soon_threadsafe(resolve, loop)

    async def write(self, work: Callable[[sqlite3.Connection], Any],
                    after: Callable[[Any], _T] | None = None) -> _T:
        """Queue ``work`` for the next group commit and return its result once committed (passed
        through ``after``, on the worker thread but outside the transaction, when given)."""
        if self._closed:
            raise StoreUnavailable("the SQLite repository is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._writes_lock:
            self._writes.append((work, after, future, time.monotonic() + self._call_timeout))
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
            for _, _, future, _ in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable("the SQLite repository is closed"))

    async def close(self) -> None:
        """Commit the writes still queued, close the connection and stop the worker thread;
        later calls are :class:`StoreUnavailable`. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._remove_orphaned_log()

        try:
            # Writes queued a moment before (their group commit not yet handed to the worker
            # thread) are committed before the connection closes.
            self._executor.submit(self._flush_writes)
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=True)
