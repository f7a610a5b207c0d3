"""How the API reads a date-time a client writes (``send_at``, ``send_by``, a rule's ``once @``,
``from`` and ``until``, a list's window): a date and a time of day, or a 422 naming the field,
never a date read as its midnight or an offset read as a time of day. Through the container
(store=memory, sender=recording, a clock the test drives), in memory via httpx's ASGI transport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.app import AUTH
from tests.support.builders import SEED
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
TEXT = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}

#: Texts Python's ``datetime.fromisoformat`` reads, none of them a date and a time of day, and why
#: each is refused: a date alone (read as its midnight), a date with an offset (``-03:00`` read as
#: the time 03:00, without an offset), a date and a time with another separator than ``T`` or a space.
NOT_DATE_TIMES = [("2027-06-21", "needs a time of day, not a date alone: '2027-06-21'"),
                  ("20270621", "needs a time of day, not a date alone"),
                  ("2027-W25-1", "needs a time of day, not a date alone"),
                  ("2027-06-21-03:00", "is not an ISO-8601 date-time: '2027-06-21-03:00'"),
                  ("2027-06-21+05:45", "is not an ISO-8601 date-time"),
                  ("2027-06-21x14:00:00Z", "is not an ISO-8601 date-time")]


async def refused(answer: httpx.Response, field: str, says: str = "is not an ISO-8601 date-time") -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["field"] == field and says in error["message"], error


@pytest.mark.parametrize(("text", "says"), NOT_DATE_TIMES)
async def test_a_send_at_that_is_no_date_and_time_of_day_is_refused(client: httpx.AsyncClient, text: str,
                                                                    says: str) -> None:
    await refused(await client.post("/schedule-message", headers=AUTH,
                                    json={**SEED, "send_at": text, "timezone": "America/Sao_Paulo"}), "send_at", says)
    await refused(await client.post("/schedule-message", headers=AUTH, json={**SEED, "send_at": text}), "send_at", says)
    await refused(await client.post("/schedule-message", headers=AUTH, json={
        **SEED, "send_at": "2027-06-20T14:00:00", "timezone": "America/Sao_Paulo", "send_by": text}), "send_by", says)
    await refused(await client.post("/v1/schedules", headers=AUTH, json={
        "task": TEXT, "schedule": "once @ 2027-06-20 14:00", "send_by": text}), "send_by", says)
    assert (await client.get("/v1/schedules", headers=AUTH)).json()["items"] == []  # nothing was made
    made = await client.post("/schedule-message", headers=AUTH, json={**SEED, "send_at": "2027-06-20T14:00:00Z"})
    assert made.status_code == 201, made.text
    moved = await client.patch(f"/v1/schedules/{made.json()['id']}", headers=AUTH,
                               json={"send_at": text, "timezone": "America/Sao_Paulo"})
    await refused(moved, "send_at", says)
    shown = (await client.get(f"/v1/schedules/{made.json()['id']}", headers=AUTH)).json()
    assert shown["next_run_at"] == "2027-06-20T14:00:00.000Z"  # not moved


@pytest.mark.parametrize("rule", ["once @ 2027-06-21-03:00", "once @ 2027-06-21+05:45",
                                  "daily at 09:00 until 2027-06-21-03:00", "daily at 09:00 from 2027-06-21+03:00"])
async def test_a_rule_s_date_with_an_offset_is_refused_not_read_as_a_time_of_day(client: httpx.AsyncClient,
                                                                                 rule: str) -> None:
    preview = await client.get("/v1/rules/preview", headers=AUTH, params={"schedule": rule})
    assert preview.status_code == 422, preview.text
    [error] = preview.json()["errors"]
    assert error["field"] == "schedule" and "is not an ISO-8601 date-time" in error["message"], error
    created = await client.post("/v1/schedules", headers=AUTH, json={"task": TEXT, "schedule": rule})
    assert created.status_code == 422, created.text


async def test_a_window_bound_that_is_a_date_with_an_offset_is_refused(client: httpx.AsyncClient) -> None:
    await refused(await client.get("/v1/schedules", headers=AUTH, params={"due_after": "2027-06-21-03:00"}),
                  "due_after")
    await refused(await client.get("/v1/schedules", headers=AUTH, params={"due_before": "2027-06-21"}),
                  "due_before", "needs a time of day, not a date alone")
    await refused(await client.post("/v1/schedules:cancel", headers=AUTH,
                                    json={"userId": "abc123", "updated_before": "2027-06-21+05:45"}), "updated_before")


@pytest.mark.parametrize(("text", "timezone", "instant"), [
    ("2027-06-21T14:00:00-03:00", None, "2027-06-21T17:00:00.000Z"),
    ("2027-06-21t14:00:00z", None, "2027-06-21T14:00:00.000Z"),
    ("20270621T140000+0545", None, "2027-06-21T08:15:00.000Z"),
    ("2027-W25-1T14:00:00Z", None, "2027-06-21T14:00:00.000Z"),
    ("2027-06-21 14:00", "Asia/Kathmandu", "2027-06-21T08:15:00.000Z"),
    ("2027-06-21T00:00:00", "America/Sao_Paulo", "2027-06-21T03:00:00.000Z"),  # midnight, said so
])
async def test_a_date_and_a_time_of_day_is_read_in_every_iso_form(client: httpx.AsyncClient, text: str,
                                                                   timezone: str | None, instant: str) -> None:
    body: dict[str, Any] = {**SEED, "send_at": text, **({"timezone": timezone} if timezone else {})}
    made = await client.post("/schedule-message", headers=AUTH, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["send_at"] == instant and made.json()["send_at_original"] == text
