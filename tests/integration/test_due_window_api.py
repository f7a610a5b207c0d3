"""``GET /v1/schedules?due_after=...&due_before=...``: what is due in a window, soonest first, and
``has_more``; in memory and on SQLite (the container's stores, via httpx's ASGI transport)."""

from __future__ import annotations

from datetime import UTC

import httpx
import pytest

from tests.support.list_api import NOW, client, clock, container, create, ids, page  # noqa: F401 - fixtures

#: 16:00 to 18:00 UTC, written in São Paulo's time.
WINDOW = {"due_after": "2025-06-21T13:00:00-03:00", "due_before": "2025-06-21T15:00:00-03:00"}


async def test_a_window_lists_what_is_due_in_it_soonest_first(client: httpx.AsyncClient) -> None:
    start = await create(client, "2025-06-21T16:00:00Z")  # at due_after: in
    late = await create(client, "2025-06-21T17:30:00Z", userId="ana", labels={"kind": "reminder"})
    early = await create(client, "2025-06-21T16:30:00Z", userId="ana")
    tie = sorted([await create(client, "2025-06-21T17:00:00Z"), await create(client, "2025-06-21T17:00:00Z")])
    at_end = await create(client, "2025-06-21T18:00:00Z")  # at due_before: out
    tomorrow = await create(client, "2025-06-22T09:00:00Z")
    paused = await create(client, "2025-06-21T16:45:00Z")
    assert (await client.post(f"/v1/schedules/{paused}/pause")).status_code == 200
    cancelled = await create(client, "2025-06-21T16:15:00Z")
    assert (await client.delete(f"/v1/schedules/{cancelled}")).status_code == 200

    soonest = [start, early, paused, *tie, late]
    shown = await page(client, **WINDOW)
    assert [item["id"] for item in shown["items"]] == soonest
    assert [item["next_run_at"] for item in shown["items"]] == [
        "2025-06-21T16:00:00.000Z", "2025-06-21T16:30:00.000Z", "2025-06-21T16:45:00.000Z",
        "2025-06-21T17:00:00.000Z", "2025-06-21T17:00:00.000Z", "2025-06-21T17:30:00.000Z"]
    assert (shown["limit"], shown["offset"], shown["has_more"]) == (50, 0, False)
    # Pages of it, each saying whether another follows.
    first = await page(client, **WINDOW, limit=4)
    assert ([item["id"] for item in first["items"]], first["has_more"]) == (soonest[:4], True)
    rest = await page(client, **WINDOW, limit=4, offset=4)
    assert ([item["id"] for item in rest["items"]], rest["has_more"]) == (soonest[4:], False)
    exact = await page(client, **WINDOW, limit=6)
    assert (len(exact["items"]), exact["has_more"]) == (6, False)
    # Either side open; the bounds in any offset.
    assert await ids(client, due_before="2025-06-21T16:30:00Z") == [start]
    assert await ids(client, due_after="2025-06-21T19:30:00+02:00") == [late, at_end, tomorrow]
    # With the other filters.
    assert await ids(client, **WINDOW, status="paused") == [paused]
    assert await ids(client, **WINDOW, status="succeeded") == []  # an ended schedule has no due time
    assert await ids(client, **WINDOW, userId="ana") == [early, late]
    assert await ids(client, **WINDOW, label="kind=reminder") == [late]
    assert await ids(client, **WINDOW, type="whatsapp.text", limit=1, offset=1) == [early]
    # Without a window: newest first, as ever (all made at one instant: ties by id), has_more too.
    everything = [start, late, early, *tie, at_end, tomorrow, paused, cancelled]
    newest = await page(client, limit=2)
    assert ([item["id"] for item in newest["items"]], newest["has_more"]) == (sorted(everything, reverse=True)[:2], True)
    assert (await page(client, limit=2, offset=8))["has_more"] is False


@pytest.mark.parametrize(("params", "field", "says"), [
    (WINDOW | {"due_before": WINDOW["due_after"]}, "due_before", "must be later than due_after"),
    ({"due_after": "2025-06-21T17:00:00Z", "due_before": "2025-06-21T16:00:00Z"}, "due_before", "must be later"),
    ({"due_after": "2025-06-21T16:00:00Z", "due_before": "2025-06-21T13:00:00-03:00"}, "due_before",
     "must be later"),  # the same instant
    ({"due_after": "2025-06-21T16:00:00"}, "due_after", "needs an offset"),
    ({"due_before": "2025-06-21"}, "due_before", "needs a time of day, not a date alone"),
    ({"due_after": "tomorrow"}, "due_after", "not an ISO-8601 date-time"),
    ({"due_after": "2025-06-21T16:00:00 03:00"}, "due_after", "send it as %2B"),  # an unescaped '+'
    ({"due_before": "2025-13-01T00:00:00Z"}, "due_before", "not an ISO-8601 date-time"),
    ({"due_before": "0001-01-01T00:00:00+01:00"}, "due_before", "years 1 to 9999"),  # before year 1 in UTC
    ({"due_after": "9999-12-31T23:59:59.999999Z"}, "due_after", "years 1 to 9999"),  # its millisecond is past it
    ({"due_after": ""}, "due_after", "at least 1 character"),
    ({"due_after": "2" * 65}, "due_after", "at most 64 characters"),
])
async def test_a_window_that_is_not_one_is_a_422_naming_its_field(
        client: httpx.AsyncClient, params: dict[str, str], field: str, says: str) -> None:
    response = await client.get("/v1/schedules", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    [error] = problem["errors"]
    assert error["field"] == field and says in error["message"], problem


async def test_a_bound_given_twice_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/schedules", params=[("due_after", "2025-06-21T16:00:00Z"),
                                                          ("due_after", "2025-06-21T17:00:00Z")])
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["due_after"]


async def test_the_openapi_document_describes_the_window_and_has_more(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in spec["paths"]["/v1/schedules"]["get"]["parameters"]}
    for name, bound in (("due_after", "next_run_at >= due_after"), ("due_before", "next_run_at < due_before")):
        described = parameters[name]
        assert described["in"] == "query" and not described.get("required", False)
        assert bound in described["description"] and "offset" in described["description"], described
        assert described["schema"]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 64}, described
    assert "half-open" in parameters["due_before"]["description"]
    listing = spec["components"]["schemas"]["ScheduleList"]
    assert listing["properties"]["has_more"]["type"] == "boolean"
    assert {"items", "limit", "offset", "has_more"} <= set(listing["required"])
    assert "due_after <= next_run_at < due_before" in spec["paths"]["/v1/schedules"]["get"]["description"]
