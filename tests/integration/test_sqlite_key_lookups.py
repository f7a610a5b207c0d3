"""SQLite: a batch sent again looks its idempotency keys up in a few queries (one per
``KEYS_PER_QUERY`` keys), not one query per item, each within the smallest limit of bound
variables SQLite is built with (999: SQLite before 3.32, and builds that keep that limit).
Real app over HTTP, real SQLite file; the statements are seen through SQLite's own trace."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cronjob.services.batch_create import MAX_BATCH
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from tests.support.app import AUTH, api_client, set_up
from tests.support.clock import FixedClock

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá"}


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """A client of the app on SQLite whose connection takes at most 999 bound variables per
    statement, and the statements it runs (from when the client is made)."""
    async with set_up(FixedClock(NOW), "sqlite", tmp_path) as container:
        repo = container.repository()
        assert isinstance(repo, SqliteScheduleRepository)
        statements: list[str] = []

        def trace() -> None:  # on the store's worker thread, on its one connection
            conn = repo._db.connection()
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            conn.set_trace_callback(statements.append)

        await repo._db.run(trace)
        async with api_client(container, AUTH) as client:
            yield client, statements


async def test_a_full_batch_sent_again_is_answered_from_two_key_queries(
        traced: tuple[httpx.AsyncClient, list[str]]) -> None:
    client, statements = traced
    items = [{"task": TASK | {"to": f"55119{i:08d}"}, "schedule": "once @ 2025-06-22 14:00",
              "idempotency_key": f"camp-{i}"} for i in range(MAX_BATCH)]
    first = await client.post("/v1/schedules:batch", json={"schedules": items})
    assert first.status_code == 200, first.text
    assert first.json()["created"] == MAX_BATCH
    statements.clear()
    again = await client.post("/v1/schedules:batch", json={"schedules": items})
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["replayed"]) == (0, MAX_BATCH)
    assert [r["id"] for r in again.json()["results"]] == [r["id"] for r in first.json()["results"]]
    key_queries = [s for s in statements if "idempotency_key" in s]
    assert len(key_queries) == 2, key_queries[:3]
    assert all("idempotency_key IN (" in s for s in key_queries)
