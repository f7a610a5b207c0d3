"""``GET /v1/schedules?cursor=...``: keyset paging by the ``next_cursor`` of the page before, newest
first and in a due-time window; cursors that are not one, or of the other order, or with an offset;
in memory and on SQLite (the container's stores, via httpx's ASGI transport)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest

from tests.support.clock import FixedClock
from tests.support.list_api import NOW, client, clock, container, create, ids_of, page  # noqa: F401 - fixtures

#: 16:00 to 18:00 UTC, written in São Paulo's time.
WINDOW = {"due_after": "2025-06-21T13:00:00-03:00", "due_before": "2025-06-21T15:00:00-03:00"}


async def walk(client: httpx.AsyncClient, **params: Any) -> list[list[str]]:
    """The ids of every page, each asked for with the ``next_cursor`` of the one before, until a
    page says no more follow (with no cursor); at most 50 pages."""
    pages: list[list[str]] = []
    cursor: dict[str, str] = {}
    while len(pages) < 50:
        shown = await page(client, **params, **cursor)
        pages.append(ids_of(shown))
        assert (shown["next_cursor"] is not None) == shown["has_more"], shown
        if not shown["has_more"]:
            break
        cursor = {"cursor": shown["next_cursor"]}
    return pages


def cursor_text(fields: Any) -> str:
    """A cursor as the API writes one, of any ``fields`` (to make up cursors it never gave)."""
    body = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode()


async def test_walking_by_cursor_lists_every_schedule_once_newest_first_whatever_is_made_meanwhile(
        client: httpx.AsyncClient, clock: FixedClock) -> None:
    made = []
    for i in range(23):  # three or four made at each instant: ties by id
        made.append(await create(client, "2025-06-22T09:00:00Z", labels={"batch": str(i % 2)}))
        if i % 4 == 3:
            clock.advance(timedelta(seconds=1))
    clock.advance(timedelta(seconds=1))
    newest = ids_of(await page(client, limit=500))
    assert sorted(newest) == sorted(made) and newest[0] in made[20:] and newest[-1] in made[:4]

    pages = await walk(client, limit=4)
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 3]
    assert [i for p in pages for i in p] == newest
    # With a filter, through the label index.
    assert [i for p in await walk(client, limit=3, label="batch=1") for i in p] == [
        i for i in newest if made.index(i) % 2 == 1]

    # A walk that sees schedules made, changed and cancelled meanwhile lists the rest as it was.
    first = await page(client, limit=5)
    assert ids_of(first) == newest[:5]
    fresh = await create(client, "2025-06-22T09:00:00Z")  # the newest now: before the cursor
    assert (await client.post(f"/v1/schedules/{newest[6]}/pause")).status_code == 200
    assert (await client.delete(f"/v1/schedules/{newest[2]}")).status_code == 200
    second = await page(client, limit=5, cursor=first["next_cursor"])
    assert ids_of(second) == newest[5:10] and fresh not in ids_of(second)
    # ...where an offset shifts: the page from 5 now starts with the last one already shown.
    assert ids_of(await page(client, limit=5, offset=5)) == newest[4:9]


async def test_walking_a_due_window_by_cursor_lists_it_soonest_first_ties_by_id(
        client: httpx.AsyncClient) -> None:
    due = {}
    for minute in (50, 10, 30, 10, 30, 30, 0, 119, 45, 10, 5):
        at = NOW + timedelta(minutes=minute)
        due[await create(client, at.isoformat())] = at
    after_window = await create(client, "2025-06-21T18:00:00Z")  # at due_before: out
    soonest = sorted(due, key=lambda i: (due[i], i))
    assert ids_of(await page(client, **WINDOW, limit=500)) == soonest

    for limit in (1, 3, 4, 11):
        pages = await walk(client, **WINDOW, limit=limit)
        assert [i for p in pages for i in p] == soonest, limit
        assert all(len(p) == limit for p in pages[:-1]), pages
    assert [i for p in await walk(client, due_after=WINDOW["due_after"], limit=5) for i in p] == [
        *soonest, after_window]
    # A schedule moved ahead of the cursor meanwhile is not listed again.
    first = await page(client, **WINDOW, limit=4)
    moved = soonest[5]
    response = await client.patch(f"/v1/schedules/{moved}", json={"send_at": "2025-06-21T16:00:00.001Z"})
    assert response.status_code == 200, response.text
    rest = await page(client, **WINDOW, limit=500, cursor=first["next_cursor"])
    assert ids_of(rest) == [i for i in soonest[4:] if i != moved] and rest["next_cursor"] is None


@pytest.mark.parametrize(("cursor", "says"), [
    ("", "at least 1 character"),
    ("a" * 1025, "at most 1024 characters"),
    ("eyJvIjoiY3JlYXRlZCJ9+", "should match pattern"),  # not URL-safe base64
    ("abcde", "not one this API gave"),  # no base64 at all (cut short)
    (base64.urlsafe_b64encode(b"\xff\xfe not text").decode().rstrip("="), "not one this API gave"),
    (cursor_text("created"), "not one this API gave"),
    (cursor_text(["created", "2025-06-21T16:00:00.000Z", "x"]), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00.000Z"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00.000Z", "id": "x", "more": 1}), "not one this API gave"),
    (cursor_text({"o": "oldest", "t": "2025-06-21T16:00:00.000Z", "id": "x"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00Z", "id": "x"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00.000", "id": "x"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T13:00:00.000-03:00", "id": "x"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "yesterday", "id": "x"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": 1750521600000, "id": "x"}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00.000Z", "id": ""}), "not one this API gave"),
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00.000Z", "id": 7}), "not one this API gave"),
    # A lone surrogate, escaped in the JSON: no text a store can look up (SQLite's read was a 500).
    (cursor_text({"o": "created", "t": "2025-06-21T16:00:00.000Z", "id": "\ud800"}), "not one this API gave"),
    (cursor_text({"o": "due", "t": "2025-06-21T16:00:00.000Z", "id": "a\udfff"}), "not one this API gave"),
    (cursor_text({"o": "due", "t": "2025-06-21T16:00:00.000Z", "id": "x"}), "with a due-time window"),
])
async def test_a_cursor_that_is_not_one_or_of_another_order_is_a_422_naming_it(
        client: httpx.AsyncClient, cursor: str, says: str) -> None:
    await create(client, "2025-06-22T09:00:00Z")
    response = await client.get("/v1/schedules", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "cursor" and says in error["message"], response.json()


async def test_a_cursor_is_bound_to_its_order_and_refused_with_an_offset(client: httpx.AsyncClient) -> None:
    for minute in (10, 20, 30):
        await create(client, (NOW + timedelta(minutes=minute)).isoformat())
    by_due = (await page(client, **WINDOW, limit=1))["next_cursor"]
    newest = (await page(client, limit=1))["next_cursor"]
    assert by_due is not None and newest is not None

    for params, field, says in (
        ({"cursor": by_due}, "cursor", "with a due-time window"),  # made in a window, used without one
        ({"cursor": newest, **WINDOW}, "cursor", "without a due-time window"),  # and the reverse
        ({"cursor": newest, "offset": 1}, "offset", "with one, leave offset out"),
        ({"cursor": by_due, "offset": 2, **WINDOW}, "offset", "with one, leave offset out"),
    ):
        response = await client.get("/v1/schedules", params=params)
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert error["field"] == field and says in error["message"], (params, response.json())
    # A tampered cursor (one character changed) is refused too, never a server error.
    tampered = newest[:5] + ("A" if newest[5] != "A" else "B") + newest[6:]
    assert (await client.get("/v1/schedules", params={"cursor": tampered})).status_code == 422
    # The cursor of a window pages any window (the filters are the client's to keep), and offset=0 is no offset.
    assert len(ids_of(await page(client, cursor=by_due, due_after="2025-06-21T16:25:00Z", offset=0))) == 1
    assert len(ids_of(await page(client, cursor=newest, offset=0))) == 2


async def test_the_openapi_document_describes_cursor_and_next_cursor(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/schedules"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    cursor = parameters["cursor"]
    assert cursor["in"] == "query" and not cursor.get("required", False)
    assert "next_cursor" in cursor["description"] and "offset" in cursor["description"], cursor
    assert cursor["schema"]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 1024,
                                           "pattern": "^[A-Za-z0-9_-]+$"}, cursor
    assert "cursor" in parameters["offset"]["description"]
    assert "next_cursor" in operation["description"]
    listing = spec["components"]["schemas"]["ScheduleList"]
    next_cursor = listing["properties"]["next_cursor"]
    assert next_cursor["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert "has_more" in next_cursor["description"] and "next_cursor" in listing["required"]
