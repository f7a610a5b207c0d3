"""The base of the Hypothesis state machines that drive a store: an event loop of their own (a
rule is a plain method, the store's calls are awaited on it) and one store of the kind the
subclass names, opened through as many repositories as it asks for, and closed at the end."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import ClassVar, TypeVar

from hypothesis.stateful import RuleBasedStateMachine

from cronjob.ports.repository import ScheduleRepository
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser

_T = TypeVar("_T")


class StoreMachine(RuleBasedStateMachine):
    """A state machine over one store of ``store_kind`` (``memory``, ``sqlite`` or ``mongodb``)."""

    store_kind: ClassVar[str] = "memory"
    #: The MongoDB server of the ``mongodb`` kind (set from the session's ``mongodb_uri`` fixture).
    mongodb_uri: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self._tmp: Path | None = None
        self._opened: list[ScheduleRepository] = []

    def run(self, work: Awaitable[_T]) -> _T:
        """``work`` awaited on the machine's loop."""
        async def wrapped() -> _T:
            return await work

        return self.loop.run_until_complete(wrapped())

    def open_stores(self, count: int, prefix: str) -> list[ScheduleRepository]:
        """``count`` repositories over one new store, as ``count`` processes would have them: the
        shared in-memory one, one SQLite file each opens, or a client each on one MongoDB
        database of its own (named from ``prefix``)."""
        return self.run(self._open(count, prefix))

    async def _open(self, count: int, prefix: str) -> list[ScheduleRepository]:
        if self.store_kind == "memory":
            shared = InMemoryScheduleRepository()
            return [shared] * count
        made: list[ScheduleRepository]
        if self.store_kind == "mongodb":
            database = f"{prefix}_{uuid.uuid4().hex[:12]}"
            made = [MongoScheduleRepository.from_uri(self.mongodb_uri, database, ScheduleCodec(default_trigger_parser()),
                                                     server_selection_timeout_ms=2000) for _ in range(count)]
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
            made = [SqliteScheduleRepository(self._tmp / "cronjob.sqlite3", ScheduleCodec(default_trigger_parser()))
                    for _ in range(count)]
        self._opened = made
        for repository in made[:1] if self.store_kind == "mongodb" else made:
            await repository.initialize()
        return made

    async def close_stores(self) -> None:
        """Drop the MongoDB database and close every repository opened."""
        if self._opened and isinstance(self._opened[0], MongoScheduleRepository):
            await self._opened[0].drop_database()
        for repository in self._opened:
            await repository.close()

    def end(self) -> None:
        """Close the stores (see :meth:`close_stores`), the loop and the SQLite file's folder."""
        try:
            self.run(self.close_stores())
        finally:
            self.loop.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
