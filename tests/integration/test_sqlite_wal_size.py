"""The SQLite store's write-ahead log does not keep the disk it grew to.

SQLite reuses its WAL from the start once a checkpoint copied all of it back into the database,
but never shrinks the file by itself: a reader holding one snapshot while writes go on (a backup,
a long report) lets it grow past every checkpoint, and it then stayed at that size for as long
as the process had the database open. The store cuts it back (``journal_size_limit``) when it is
reused. Small bounds here, so that a few megabytes show what gigabytes would in production.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import one_off

LIMIT = 512 * 1024


async def _add(repository: SqliteScheduleRepository, count: int) -> None:
    for _ in range(count):
        await repository.add(one_off())


async def test_the_log_grown_behind_a_long_reader_is_cut_back_once_it_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "cronjob.sqlite3"
    repository = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()),
                                          checkpoint_pages=50, wal_size_limit_bytes=LIMIT)
    await repository.initialize()
    wal = Path(f"{path}-wal")
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM schedules").fetchone()  # holds its snapshot
        await _add(repository, 1500)
        grown = wal.stat().st_size
        assert grown > 4 * LIMIT  # no checkpoint could reuse the log behind the reader
        reader.execute("COMMIT")
        # The next commits' checkpoints copy the whole log back; the write after that reuses it.
        await _add(repository, 60)
        assert wal.stat().st_size <= LIMIT, (grown, wal.stat().st_size)
    finally:
        reader.close()
        await repository.close()
    again = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    await again.initialize()
    try:
        assert len(await again.list(limit=2000)) == 1560  # nothing written was lost by the cut
    finally:
        await again.close()
