"""``POST /v1/schedules:cancel``, ``:pause`` and ``:resume`` narrowed beyond a user and labels, as
the list narrows: by task type, due-time window and last-change window, through the container's
API on the in-memory and the SQLite store, with a hand-driven clock. Each acts on what
``GET /v1/schedules`` lists with the same filters, and on nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob_bootstrap.container import Container
from tests.support.app import set_up
from tests.support.clock import FixedClock
from tests.support.list_api import NOW, client, clock, create, ids  # noqa: F401 (fixtures)

PATHS = ["/v1/schedules:cancel", "/v1/schedules:pause", "/v1/schedules:resume"]
EMAIL = {"type": "email", "to": ["ana@example.com"], "subject": "Lembrete", "text": "Oi"}
#: Tomorrow in São Paulo (NOW is 13:00 there).
TOMORROW = {"due_after": "2025-06-22T00:00:00-03:00", "due_before": "2025-06-23T00:00:00-03:00"}
NO_ECHO = {"type": None, "due_after": None, "due_before": None, "updated_after": None, "updated_before": None}


@pytest.fixture(params=["memory", "sqlite"])
async def container(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> AsyncIterator[Container]:
    # An SMTP server is named so that e-mails can be scheduled; none is sent here.
    async with set_up(clock, request.param, tmp_path, smtp_host="127.0.0.1",
                      smtp_from="cronjob@example.com") as built:
        yield built


async def statuses(client: httpx.AsyncClient, schedule_ids: list[str]) -> list[str]:
    return [(await client.get(f"/v1/schedules/{i}")).json()["status"] for i in schedule_ids]


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_every_reminder_of_a_user_due_tomorrow_is_cancelled(client: httpx.AsyncClient) -> None:
    today = await create(client, "2025-06-21T20:00:00-03:00", userId="ana")
    tomorrow = [await create(client, at, userId="ana")
                for at in ("2025-06-22T00:00:00-03:00", "2025-06-22T09:00:00-03:00", "2025-06-22T23:59:59-03:00")]
    after = await create(client, "2025-06-23T00:00:00-03:00", userId="ana")
    theirs = await create(client, "2025-06-22T09:00:00-03:00", userId="bia")
    listed = await ids(client, userId="ana", **TOMORROW)
    assert listed == tomorrow

    cancelled = await post(client, "/v1/schedules:cancel", {"userId": "ana", **TOMORROW})

    assert cancelled == {**NO_ECHO, "userId": "ana", "labels": None, "due_after": "2025-06-22T03:00:00.000Z",
                         "due_before": "2025-06-23T03:00:00.000Z", "cancelled": cancelled["cancelled"],
                         "refused": [], "more": False}
    assert sorted(cancelled["cancelled"]) == sorted(listed)
    assert await statuses(client, [today, *tomorrow, after, theirs]) == [
        "scheduled", "cancelled", "cancelled", "cancelled", "scheduled", "scheduled"]


async def test_a_user_s_whatsapp_templates_are_paused_and_resumed_but_not_their_e_mails(
        client: httpx.AsyncClient) -> None:
    at = "2025-06-22T09:00:00-03:00"
    template = {"type": "whatsapp.template", "to": "5511999999999", "body": "Oi, {{1}}", "templateName": "lembrete",
                "params": ["Ana"]}
    templates = [await create(client, at, userId="ana", task=template) for _ in range(2)]
    text = await create(client, at, userId="ana")
    email = await create(client, at, userId="ana", task=EMAIL)
    assert sorted(await ids(client, userId="ana", type=["whatsapp.template", "whatsapp.text"])) \
        == sorted([*templates, text])
    whatsapp = {"userId": "ana", "type": ["whatsapp.template", "whatsapp.text"]}

    paused = await post(client, "/v1/schedules:pause", whatsapp)

    assert sorted(paused["paused"]) == sorted([*templates, text]) and paused["type"] == whatsapp["type"]
    assert await statuses(client, [*templates, text, email]) == ["paused"] * 3 + ["scheduled"]
    only_templates = await post(client, "/v1/schedules:resume", {"userId": "ana", "type": ["whatsapp.template"]})
    assert sorted(only_templates["resumed"]) == sorted(templates) and only_templates["type"] == ["whatsapp.template"]
    assert await statuses(client, [*templates, text, email]) == ["scheduled", "scheduled", "paused", "scheduled"]


async def test_what_a_campaign_made_during_a_bad_deploy_is_cancelled(client: httpx.AsyncClient,
                                                                     clock: FixedClock) -> None:
    campaign = {"labels": {"campaign": "y"}}
    at = "2025-06-22T09:00:00-03:00"
    made: dict[str, list[str]] = {}
    for when, minutes in (("before", 0), ("during", 30), ("at its end", 60), ("after", 90)):
        clock.set(NOW + timedelta(minutes=minutes))
        made[when] = [await create(client, at, **campaign), await create(client, at, labels={"campaign": "z"})]
    # The bad deploy: 13:30 to 14:00 in São Paulo (16:30 to 17:00 UTC), half-open.
    deploy = {"updated_after": "2025-06-21T13:30:00-03:00", "updated_before": "2025-06-21T14:00:00-03:00"}
    listed = await ids(client, label="campaign=y", **deploy)
    assert listed == [made["during"][0]]

    cancelled = await post(client, "/v1/schedules:cancel", {**campaign, **deploy})

    assert cancelled == {**NO_ECHO, "userId": None, "labels": {"campaign": "y"},
                         "updated_after": "2025-06-21T16:30:00.000Z", "updated_before": "2025-06-21T17:00:00.000Z",
                         "cancelled": listed, "refused": [], "more": False}
    assert await statuses(client, [i for ids_ in made.values() for i in ids_]) == [
        "scheduled", "scheduled", "cancelled", "scheduled", "scheduled", "scheduled", "scheduled", "scheduled"]


async def test_a_held_campaign_is_resumed_by_due_window_and_by_when_it_was_paused(
        client: httpx.AsyncClient, clock: FixedClock) -> None:
    campaign = {"labels": {"campaign": "x"}}
    earliest = await create(client, "2025-06-21T16:30:00-03:00", **campaign)
    early = [await create(client, "2025-06-21T18:00:00-03:00", **campaign) for _ in range(2)]
    late = await create(client, "2025-06-22T18:00:00-03:00", **campaign)
    clock.set(NOW + timedelta(minutes=5))
    paused = await post(client, "/v1/schedules:pause", {**campaign, "due_before": "2025-06-22T00:00:00Z"})
    assert sorted(paused["paused"]) == sorted([earliest, *early])
    assert paused["due_before"] == "2025-06-22T00:00:00.000Z" and paused["due_after"] is None
    clock.set(NOW + timedelta(minutes=10))
    assert (await post(client, "/v1/schedules:pause", campaign))["paused"] == [late]

    held_first = {"updated_before": "2025-06-21T16:10:00Z", "due_after": "2025-06-21T20:00:00Z"}
    assert sorted(await ids(client, label="campaign=x", status="paused", **held_first)) == sorted(early)
    resumed = await post(client, "/v1/schedules:resume", {**campaign, **held_first})

    assert sorted(resumed["resumed"]) == sorted(early)  # paused before 16:10 UTC, due after 20:00 UTC
    assert await statuses(client, [earliest, *early, late]) == ["paused", "scheduled", "scheduled", "paused"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("body", "field"), [
    ({"userId": "ana", "type": []}, "type"),
    ({"userId": "ana", "type": "whatsapp.text"}, "type"),
    ({"userId": "ana", "type": ["no.such.type"]}, "type"),
    ({"userId": "ana", "type": [""]}, "type"),
    ({"userId": "ana", "due_after": "2025-06-22T00:00:00"}, "due_after"),  # no offset: which zone's?
    ({"userId": "ana", "due_before": "tomorrow"}, "due_before"),
    ({"userId": "ana", "due_after": 1750521600}, "due_after"),
    ({"userId": "ana", "due_after": ""}, "due_after"),
    ({"userId": "ana", "due_before": "9999-12-31T23:59:59.999999Z"}, "due_before"),  # past the calendar
    ({"userId": "ana", "due_after": "2025-06-22T03:00:00Z", "due_before": "2025-06-22T00:00:00-03:00"},
     "due_before"),  # the same instant: an empty window
    ({"userId": "ana", "due_after": "2025-06-23T00:00:00Z", "due_before": "2025-06-22T00:00:00Z"}, "due_before"),
    ({"userId": "ana", "updated_after": "2025-06-21T16:00:00"}, "updated_after"),
    ({"userId": "ana", "updated_after": "2025-06-21T17:00:00Z", "updated_before": "2025-06-21T16:00:00Z"},
     "updated_before"),
    ({"userId": "ana", "dueAfter": "2025-06-22T00:00:00Z"}, "dueAfter"),  # snake_case, as the list's
    ({"type": ["whatsapp.text"]}, "userId"),  # they only narrow: never every schedule of a type
    (TOMORROW | {"updated_after": "2025-06-21T16:00:00Z"}, "userId"),
    ({"labels": {}, "type": ["whatsapp.text"]}, "labels"),
])
async def test_a_narrowing_that_is_not_one_is_a_422_naming_its_field_and_changes_nothing(
        client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str) -> None:
    schedule = await create(client, "2025-06-22T09:00:00-03:00", userId="ana")
    refused = await client.post(path, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"].split(".")[0] for e in refused.json()["errors"]] == [field]
    assert await statuses(client, [schedule]) == ["scheduled"]


async def test_the_openapi_document_describes_the_narrowing(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    bounds = {"due_after": "next_run_at >= due_after", "due_before": "next_run_at < due_before",
              "updated_after": "updated_at >= updated_after", "updated_before": "updated_at < updated_before"}
    for request in ("SelectRequest",):
        properties = schemas[request]["properties"]
        assert "task types" in properties["type"]["description"]
        for name, bound in bounds.items():
            assert bound in properties[name]["description"] and "offset" in properties[name]["description"]
            assert properties[name]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 64}
        assert schemas[request]["not"]  # userId, labels or both: test_openapi_document.py tries it
    for path in PATHS:
        operation = spec["paths"][path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert schema == "SelectRequest"
        assert "due_after <= next_run_at < due_before" in operation["description"], path
        assert "updated_after <= updated_at < updated_before" in operation["description"], path
        assert "`type`" in operation["description"], path
        view = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert set(bounds) | {"type", "userId", "labels", "refused"} <= set(schemas[view]["properties"]), view
