"""``GET /v1/schedules?updated_after=...&updated_before=...``: what last changed in a window, in
the list's own order, and ``has_more``; in memory and on SQLite (the container's stores, via
httpx's ASGI transport, with a hand-driven clock). The redrive by such a window,
``POST /v1/schedules:retry``, is in ``test_bulk_api.py``."""

from __future__ import annotations

from datetime import UTC, timedelta

import httpx
import pytest

from tests.support.clock import FixedClock
from tests.support.list_api import NOW, client, clock, container, create, ids, page  # noqa: F401 - fixtures

#: 16:00 to 17:00 UTC, written in São Paulo's time.
WINDOW = {"updated_after": "2025-06-21T13:00:00-03:00", "updated_before": "2025-06-21T14:00:00-03:00"}


async def test_a_window_lists_what_last_changed_in_it_newest_first(client: httpx.AsyncClient,
                                                                   clock: FixedClock) -> None:
    clock.set(NOW - timedelta(hours=1))
    made_earlier = await create(client, "2025-06-22T09:00:00Z", userId="ana")  # changed in the window
    untouched = await create(client, "2025-06-21T16:30:00Z")
    clock.set(NOW)
    at_start = await create(client, "2025-06-21T18:30:00Z", userId="ana", labels={"kind": "reminder"})
    clock.set(NOW + timedelta(minutes=20))
    assert (await client.post(f"/v1/schedules/{made_earlier}/pause")).status_code == 200
    inside = await create(client, "2025-06-21T18:00:00Z", labels={"kind": "reminder"})
    clock.set(NOW + timedelta(minutes=40))
    cancelled = await create(client, "2025-06-21T19:00:00Z")
    assert (await client.delete(f"/v1/schedules/{cancelled}")).status_code == 200
    clock.set(NOW + timedelta(hours=1))
    at_end = await create(client, "2025-06-21T18:15:00Z")

    newest = [cancelled, inside, at_start, made_earlier]  # newest made first, as without a window
    shown = await page(client, **WINDOW)
    assert [item["id"] for item in shown["items"]] == newest
    first = await page(client, **WINDOW, limit=3)
    assert ([item["id"] for item in first["items"]], first["has_more"]) == (newest[:3], True)
    rest = await page(client, **WINDOW, limit=3, offset=3)
    assert ([item["id"] for item in rest["items"]], rest["has_more"]) == (newest[3:], False)
    # Either side open; the bounds in any offset.
    assert await ids(client, updated_before="2025-06-21T16:00:00Z") == [untouched]
    assert await ids(client, updated_after="2025-06-21T18:30:00+02:00") == [at_end, cancelled]
    # With the other filters, a due-time window too (soonest due first).
    assert await ids(client, **WINDOW, status="cancelled") == [cancelled]
    assert await ids(client, **WINDOW, status="paused") == [made_earlier]
    assert await ids(client, **WINDOW, userId="ana") == [at_start, made_earlier]
    assert await ids(client, **WINDOW, label="kind=reminder") == [inside, at_start]
    due = {"due_after": "2025-06-21T16:00:00Z", "due_before": "2025-06-21T19:00:00Z"}
    assert await ids(client, **WINDOW, **due) == [inside, at_start]
    assert await ids(client, **due) == [untouched, inside, at_end, at_start]
    assert await ids(client, **WINDOW, type="whatsapp.text", limit=1, offset=2) == [at_start]


@pytest.mark.parametrize(("params", "field", "says"), [
    (WINDOW | {"updated_before": WINDOW["updated_after"]}, "updated_before", "must be later than updated_after"),
    ({"updated_after": "2025-06-21T17:00:00Z", "updated_before": "2025-06-21T16:00:00Z"}, "updated_before",
     "updated_after <= updated_at < updated_before"),
    ({"updated_after": "2025-06-21T16:00:00"}, "updated_after", "needs an offset"),
    ({"updated_before": "2025-06-21"}, "updated_before", "needs a time of day, not a date alone"),
    ({"updated_after": "yesterday"}, "updated_after", "not an ISO-8601 date-time"),
    ({"updated_after": "2025-06-21T16:00:00 03:00"}, "updated_after", "send it as %2B"),  # an unescaped '+'
    ({"updated_before": "0001-01-01T00:00:00+01:00"}, "updated_before", "years 1 to 9999"),
    ({"updated_after": "9999-12-31T23:59:59.999999Z"}, "updated_after", "years 1 to 9999"),
    ({"updated_after": ""}, "updated_after", "at least 1 character"),
    ({"updated_before": "2" * 65}, "updated_before", "at most 64 characters"),
])
async def test_a_window_that_is_not_one_is_a_422_naming_its_field(
        client: httpx.AsyncClient, params: dict[str, str], field: str, says: str) -> None:
    response = await client.get("/v1/schedules", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == field and says in error["message"], response.json()


async def test_a_bound_given_twice_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/schedules", params=[("updated_before", "2025-06-21T16:00:00Z"),
                                                          ("updated_before", "2025-06-21T17:00:00Z")])
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["updated_before"]


async def test_the_openapi_document_describes_the_window_on_the_list_and_the_redrive(
        client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in spec["paths"]["/v1/schedules"]["get"]["parameters"]}
    schemas = spec["components"]["schemas"]
    [retry] = [schema for name, schema in schemas.items() if name == "BulkRetryRequest"]
    for name, bound in (("updated_after", "updated_at >= updated_after"),
                        ("updated_before", "updated_at < updated_before")):
        described = parameters[name]
        assert described["in"] == "query" and not described.get("required", False)
        assert bound in described["description"] and "offset" in described["description"], described
        assert described["schema"]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 64}, described
        field = retry["properties"][name]
        assert bound in field["description"] and "offset" in field["description"], field
        assert field["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 64}, field
        assert name not in retry.get("required", [])
    assert "half-open" in parameters["updated_before"]["description"]
    assert "half-open" in retry["properties"]["updated_before"]["description"]
    assert "updated_after <= updated_at < updated_before" in spec["paths"]["/v1/schedules"]["get"]["description"]
    assert "updated_after <= updated_at < updated_before" in spec["paths"]["/v1/schedules:retry"]["post"]["description"]
    assert any("updated_after" in example for example in retry["examples"])
    view = schemas["BulkRetryView"]["properties"]
    assert {"updated_after", "updated_before"} <= set(view)
