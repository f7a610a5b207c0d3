"""Creating and listing schedules through ``GET /v1/schedules``, for the tests of its filters and
paging (a client made by :func:`tests.support.app.api_client` with the token)."""

from __future__ import annotations

from typing import Any

import httpx

TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}


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
