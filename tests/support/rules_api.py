"""Helpers of the rule tests over the API (``test_monthly_api``, ``test_rocketry_forms_api``,
``test_except_dates_api``, ``test_api``): a preview, a creation, the local times shown, a rule's
422 on every route, a move and its respelling, and a schedule run on SQLite by the container's
dispatcher at the instants a test sets the clock to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, api_client, set_up
from tests.support.clock import FixedClock

TEXT = {"type": "whatsapp.text", "to": "5511999999999", "body": "Relatório do mês"}


async def preview(client: httpx.AsyncClient, schedule: str, timezone: str, count: int) -> dict[str, Any]:
    answer = await client.get("/v1/rules/preview", headers=AUTH,
                              params={"schedule": schedule, "timezone": timezone, "count": count})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def create(client: httpx.AsyncClient, schedule: str, timezone: str = "America/Sao_Paulo") -> dict[str, Any]:
    created = await client.post("/v1/schedules", headers=AUTH,
                                json={"task": TEXT, "schedule": schedule, "timezone": timezone})
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def check_refused_on_every_route(client: httpx.AsyncClient, rule: str, message: str) -> None:
    """``rule`` is a 422 naming ``schedule`` with ``message`` when a schedule is created on it, one
    is changed to it (``PATCH``), it is previewed, and as an item of a batch."""
    made = await create(client, "daily at 09:00")
    answers = {
        "schedule": await client.post("/v1/schedules", json={"task": TEXT, "schedule": rule}, headers=AUTH),
        "patch": await client.patch(f"/v1/schedules/{made['id']}", json={"schedule": rule}, headers=AUTH),
        "preview": await client.get("/v1/rules/preview", params={"schedule": rule}, headers=AUTH),
    }
    for route, answer in answers.items():
        assert answer.status_code == 422, (route, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"] == [{"field": "schedule", "message": message}], route
    batch = await client.post("/v1/schedules:batch", json={"schedules": [{"task": TEXT, "schedule": rule}]},
                              headers=AUTH)
    assert batch.json()["results"][0]["errors"] == [{"field": "schedules.0.schedule", "message": message}]


async def check_moved_then_respelt(client: httpx.AsyncClient, schedule_id: str, rule: str, respelt: str,
                                   shown: str, next_run_at: str) -> None:
    """``PATCH`` moves the schedule to ``rule``, which it shows as ``shown``, next due at
    ``next_run_at``; the same rule spelt otherwise (``respelt``) then changes nothing (its
    ``updated_at`` stays)."""
    moved = await client.patch(f"/v1/schedules/{schedule_id}", headers=AUTH, json={"schedule": rule})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["schedule"], moved.json()["next_run_at"]) == (shown, next_run_at)
    again = await client.patch(f"/v1/schedules/{schedule_id}", headers=AUTH, json={"schedule": respelt})
    assert again.status_code == 200 and again.json()["updated_at"] == moved.json()["updated_at"]


def local(shown: dict[str, Any]) -> list[str]:
    return [run["local"] for run in shown["runs"]]


@dataclass
class RunOnSqlite:
    """A schedule created through the API on SQLite (``created``), run by the container's
    dispatcher: :meth:`run_at` sets the clock and claims and runs what is due then."""

    http: httpx.AsyncClient
    built: Container
    clock: FixedClock
    created: dict[str, Any]
    sender: RecordingMessageSender

    async def run_at(self, moment: datetime) -> int:
        """How many were claimed (and run to their end) at ``moment``."""
        self.clock.set(moment)
        dispatcher = self.built.dispatcher()
        claimed = await dispatcher.dispatch_due()
        await dispatcher.drain(5)
        return claimed

    async def stored(self) -> dict[str, Any]:
        """The schedule as the API shows it now."""
        return (await self.http.get(f"/v1/schedules/{self.created['id']}", headers=AUTH)).json()  # type: ignore[no-any-return]


@asynccontextmanager
async def run_on_sqlite(tmp_path: Path, now: datetime, rule: str) -> AsyncIterator[RunOnSqlite]:
    """``rule`` created at ``now`` (São Paulo) on a SQLite store under ``tmp_path``, kept there as
    its canonical text and parsed back at each read."""
    clock = FixedClock(now)
    async with set_up(clock, "sqlite", tmp_path) as built, api_client(built, AUTH) as http:
        created = await create(http, rule)
        sender = built.sender()
        assert isinstance(sender, RecordingMessageSender)
        yield RunOnSqlite(http, built, clock, created, sender)
