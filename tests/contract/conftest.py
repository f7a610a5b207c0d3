"""Store fixtures for the contract suite: every test runs against every ScheduleRepository adapter.

``store`` is a factory: each call gives a new repository *instance* on the same underlying store
(a new connection for SQLite and MongoDB), so concurrency tests exercise real contention.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from cronjob.ports.repository import ScheduleRepository
from cronjob_adapters.memory.repository import InMemoryScheduleRepository

StoreFactory = Callable[[], Awaitable[ScheduleRepository]]


@pytest.fixture(params=["memory", "sqlite", "mongodb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    made: list[ScheduleRepository] = []
    kind = request.param

    if kind == "memory":
        shared = InMemoryScheduleRepository()

        async def make() -> ScheduleRepository:
            return shared

    elif kind == "sqlite":
        from cronjob_bootstrap.triggers import default_trigger_parser
        from cronjob_adapters.codec import ScheduleCodec
        from cronjob_adapters.sqlite.repository import SqliteScheduleRepository

        path = tmp_path / "cronjob.sqlite3"

        async def make() -> ScheduleRepository:
            repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
            made.append(repo)
            return repo

    else:
        from cronjob_bootstrap.triggers import default_trigger_parser
        from cronjob_adapters.codec import ScheduleCodec
        from cronjob_adapters.mongodb.repository import MongoScheduleRepository

        uri: str = request.getfixturevalue("mongodb_uri")
        database = f"contract_{uuid.uuid4().hex[:12]}"

        async def make() -> ScheduleRepository:
            repo = MongoScheduleRepository.from_uri(uri, database, ScheduleCodec(default_trigger_parser()))
            made.append(repo)
            return repo

    first = await make()
    await first.initialize()
    yield make
    if kind == "mongodb":
        await first.drop_database()  # type: ignore[attr-defined]
    for repo in made:
        await repo.close()
