"""Creating and listing schedules through ``GET /v1/schedules``, for the tests of its filters and
paging: the fixtures they share (``clock`` at :data:`NOW`, a ``container`` on each store the API
lists from, the in-memory and the SQLite one, and a ``client`` with the token: import them into
the test module) and the helpers that create and list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, api_client, set_up
from tests.support.clock import FixedClock

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(params=["memory", "sqlite"])
async def container(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> AsyncIterator[Container]:
    async with set_up(clock, request.param, tmp_path) as built:
        yield built


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container, AUTH) as http:
        yield http


async def create(client: httpx.AsyncClient, at: str, **fields: Any) -> str:
    """The id of a new one-off :data:`TASK` due ``at`` (``once @ <at>``), with ``fields`` added."""
    response = await client.post("/v1/schedules", json={"task": TASK, "schedule": f"once @ {at}", **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    """The answer of ``GET /v1/schedules`` with ``params`` (it must be a 200)."""
    response = await client.get("/v1/schedules", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    """The ids of the schedules listed with ``params``, in their order."""
    return ids_of(await page(client, **params))


def ids_of(shown: dict[str, Any]) -> list[str]:
    """The ids of the items of a list's answer, in their order."""
    return [item["id"] for item in shown["items"]]
