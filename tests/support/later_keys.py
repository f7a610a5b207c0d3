"""Every write of a schedule that the API and the scheduler make, each followed by a check that the
stored document still holds the keys a later version added: one scenario for the stores that
keep documents (``test_mongodb_later_keys``, ``test_sqlite_later_keys``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.clock import FixedClock

TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "bom dia"}
EXPIRED = DeliveryError("190", "Error validating access token: Session has expired", retryable=False)

#: Marks the schedules of these ids as a later version writes them (its keys added).
WrittenLater = Callable[[str, str], Awaitable[None]]
#: The stored document of a schedule, asserted to hold the later version's keys still.
Kept = Callable[[str], Awaitable[dict[str, Any]]]


async def _run_due(container: Container) -> None:
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        pass
    await dispatcher.drain(5)


async def _create(http: httpx.AsyncClient, schedule: str, labels: dict[str, str]) -> str:
    made = await http.post("/v1/schedules", json={"task": TASK, "schedule": schedule, "timezone": "UTC",
                                                  "labels": labels})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def every_write_keeps_the_later_keys(container: Container, http: httpx.AsyncClient, clock: FixedClock,
                                           written_later: WrittenLater, kept: Kept) -> None:
    """From ``clock``'s time (a whole hour): through the API, a change, bulk pause and resume, a
    retry and bulk cancel; through the scheduler, claims and outcomes (a death, a success, a
    recurring run), each checked with ``kept``, on a recurring schedule and a one-off that
    ``written_later`` marked as a later version's once created."""
    now: datetime = clock.now()
    recurring = await _create(http, "every 10 minutes", {"campaign": "bf"})
    one_off_id = await _create(http, f"once @ {(now + timedelta(minutes=5)).isoformat()}", {"campaign": "bf"})
    await written_later(recurring, one_off_id)

    changed = await http.patch(f"/v1/schedules/{recurring}", json={"labels": {"campaign": "bf", "n": "1"}})
    assert changed.status_code == 200, changed.text
    assert (await kept(recurring))["labels"] == {"campaign": "bf", "n": "1"}
    listed = await http.get("/v1/schedules", params={"label": "n=1"})  # through the store's label index
    assert [item["id"] for item in listed.json()["items"]] == [recurring], listed.text
    paused = await http.post("/v1/schedules:pause", json={"labels": {"campaign": "bf"}})
    assert sorted(paused.json()["paused"]) == sorted([recurring, one_off_id]), paused.text
    assert {(await kept(i))["status"] for i in (recurring, one_off_id)} == {"paused"}
    resumed = await http.post("/v1/schedules:resume", json={"labels": {"campaign": "bf"}})
    assert sorted(resumed.json()["resumed"]) == sorted([recurring, one_off_id]), resumed.text
    assert {(await kept(i))["status"] for i in (recurring, one_off_id)} == {"scheduled"}

    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(EXPIRED)
    clock.set(now + timedelta(minutes=5))  # the one-off is due: claimed, it dies
    await _run_due(container)
    assert (await kept(one_off_id))["status"] == "dead"
    retried = await http.post(f"/v1/schedules/{one_off_id}/retry")
    assert retried.status_code == 200, retried.text
    assert (await kept(one_off_id))["status"] == "scheduled"

    clock.set(now + timedelta(minutes=10))  # both due: claimed, sent, recorded
    await _run_due(container)
    assert len(sender.sent) == 2
    assert (await kept(one_off_id))["status"] == "succeeded"
    ran = await kept(recurring)
    assert ran["status"] == "scheduled" and [a["outcome"] for a in ran["attempts"]] == ["succeeded"]

    cancelled = await http.post("/v1/schedules:cancel", json={"labels": {"campaign": "bf"}})
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] == [recurring], cancelled.text
    assert (await kept(recurring))["status"] == "cancelled"
    shown = await http.get(f"/v1/schedules/{recurring}")
    assert shown.status_code == 200 and shown.json()["status"] == "cancelled", shown.text
