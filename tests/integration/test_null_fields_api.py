"""Explicit nulls in request bodies, through the container's API (memory and SQLite): refused by
``PATCH /v1/schedules/{id}``, where no field's null means anything (a 422 naming the field, never a
200 that dropped it), but for ``run_timeout_seconds``, whose null takes the schedule's own run time
limit away; read as the field left out by ``POST /v1/schedules`` and its batch, where each
optional field's null means its documented default."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from cronjob_bootstrap.container import Container
from tests.support.app import TOKEN, audit
from tests.support.list_api import TASK, client, clock, container  # noqa: F401 - fixtures

ONE_OFF = {"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z", "labels": {"order": "1"}}
#: The PATCH fields, in the order of the body's schema (the order its errors are listed in).
PATCH_FIELDS = ("send_at", "schedule", "timezone", "labels", "run_timeout_seconds", "task")
#: Those whose null is refused, each with what its refusal says to do instead.
HINTS = {
    "send_at": "leave it out to keep the schedule's time",
    "schedule": "leave it out to keep the schedule's rule",
    "timezone": "leave it out to read the new time in the schedule's own zone",
    "labels": "leave it out to keep the labels; {} clears them",
    "task": "leave it out to keep the schedule's task",
}
#: Every optional field of ``POST /v1/schedules`` whose null is its default, as null.
CREATE_NULLS = {"timezone": None, "userId": None, "retry": None, "misfire_grace_seconds": None, "send_by": None,
                "callback_url": None, "pause_after_failures": None, "labels": None, "run_timeout_seconds": None}


async def events(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    return (await client.get(f"{path}/events")).json()["items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("body", "field"), [
    ({"task": None}, "task"),
    ({"task": None, "labels": {"order": "2"}}, "task"),
    ({"send_at": None, "labels": {"order": "2"}}, "send_at"),
    ({"schedule": None, "labels": {"order": "2"}}, "schedule"),
    ({"timezone": None, "send_at": "2025-06-21T15:30:00"}, "timezone"),  # would be read in the schedule's zone
    ({"labels": None, "send_at": "2025-06-21T18:30:00Z"}, "labels"),  # neither keeps nor clears them
    ({"labels": None, "run_timeout_seconds": None}, "labels"),
])
async def test_a_null_in_a_patch_is_a_422_naming_the_field_and_changes_nothing(
        client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    created = (await client.post("/v1/schedules", json=ONE_OFF)).json()
    path = f"/v1/schedules/{created['id']}"
    refused = await client.patch(path, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [{"field": field, "message": f"must not be null ({HINTS[field]})"}]
    assert (await client.get(path)).json() == created
    assert len(await events(client, path)) == 1
    if rest := {name: value for name, value in body.items() if value is not None}:
        assert (await client.patch(path, json=rest)).status_code == 200  # the null alone was refused


async def test_every_null_of_a_patch_is_named(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/schedules", json=ONE_OFF)).json()
    refused = await client.patch(f"/v1/schedules/{created['id']}", json=dict.fromkeys(PATCH_FIELDS))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": name, "message": f"must not be null ({HINTS[name]})"}
                                        for name in PATCH_FIELDS if name in HINTS]


async def test_a_null_run_time_limit_in_a_patch_takes_the_schedule_s_own_limit_away(
        client: httpx.AsyncClient, container: Container) -> None:
    """Its task handler's limit (a routine's) or the service's applies again: before, a schedule
    given a limit of its own could only be given another."""
    created = (await client.post("/v1/schedules", json={**ONE_OFF, "run_timeout_seconds": 30})).json()
    path = f"/v1/schedules/{created['id']}"
    reset = await client.patch(path, json={"run_timeout_seconds": None})
    assert reset.status_code == 200, reset.text
    assert (reset.json()["run_timeout_seconds"], reset.json()["next_run_at"]) == (None, created["next_run_at"])
    assert [e["data"] for e in await events(client, path)][-1] == {"run_timeout_changed": "true",
                                                                   "next_run_at": created["next_run_at"],
                                                                   **audit(TOKEN, reset)}
    stored = await container.repository().get(created["id"])
    assert stored is not None and stored.run_timeout is None
    assert container.dispatcher().run_timeout(stored) == timedelta(hours=1)  # the service's (the default)
    again = await client.patch(path, json={"run_timeout_seconds": None})  # none of its own already: as it is
    assert again.json() == reset.json() and len(await events(client, path)) == 2
    both = await client.patch(path, json={"run_timeout_seconds": 45})
    assert both.json()["run_timeout_seconds"] == 45.0
    with_labels = await client.patch(path, json={"run_timeout_seconds": None, "labels": {"order": "2"}})
    assert (with_labels.json()["run_timeout_seconds"], with_labels.json()["labels"]) == (None, {"order": "2"})
    assert [e["data"] for e in await events(client, path)][-1] == {
        "labels_changed": "true", "run_timeout_changed": "true", "next_run_at": created["next_run_at"],
        **audit(TOKEN, with_labels)}


def _made(view: dict[str, Any]) -> dict[str, Any]:
    """What a schedule was made as: its view without what differs between two of them."""
    return {name: value for name, value in view.items() if name not in {"id", "created_at", "updated_at"}}


async def test_a_null_in_a_create_is_the_field_left_out(client: httpx.AsyncClient) -> None:
    bare = {"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z"}
    left_out = await client.post("/v1/schedules", json=bare)
    nulls = await client.post("/v1/schedules", json={**bare, **CREATE_NULLS})
    assert left_out.status_code == nulls.status_code == 201, nulls.text
    shown = nulls.json()
    assert _made(shown) == _made(left_out.json())
    assert (shown["timezone"], shown["retry"], shown["send_by"], shown["labels"]) == ("America/Sao_Paulo", None,
                                                                                     None, {})
    assert (shown["misfire"]["grace_seconds"], shown["pause_after_failures"]) == (3600, None)  # the defaults
    # The same request for its Idempotency-Key: made with nulls, sent again without them, it is a replay.
    keyed = await client.post("/v1/schedules", json={**bare, **CREATE_NULLS}, headers={"Idempotency-Key": "k"})
    replay = await client.post("/v1/schedules", json=bare, headers={"Idempotency-Key": "k"})
    assert (keyed.status_code, replay.status_code) == (201, 200) and replay.json()["id"] == keyed.json()["id"]


async def test_a_null_in_a_batch_item_is_the_field_left_out(client: httpx.AsyncClient) -> None:
    bare = {"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z"}
    answer = await client.post("/v1/schedules:batch", json={"schedules": [
        bare, {**bare, **CREATE_NULLS, "idempotency_key": None}]})
    assert answer.status_code == 200, answer.text
    assert [result["status"] for result in answer.json()["results"]] == [201, 201]
    views = [(await client.get(f"/v1/schedules/{result['id']}")).json() for result in answer.json()["results"]]
    assert _made(views[1]) == _made(views[0])


async def test_the_openapi_document_says_which_nulls_are_refused_and_what_the_others_mean(
        client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    patch = schemas["RescheduleRequest"]["properties"]
    assert tuple(patch) == PATCH_FIELDS
    for name in HINTS:
        assert "anyOf" not in patch[name] and patch[name].get("type") != "null", (name, patch[name])
        assert "null is refused" in patch[name]["description"], name
    assert {"type": "null"} in patch["run_timeout_seconds"]["anyOf"]
    assert "null: no limit of its own" in patch["run_timeout_seconds"]["description"]
    assert (patch["send_at"]["type"], patch["labels"]["type"]) == ("string", "object")
    assert patch["task"]["discriminator"]["propertyName"] == "type" and len(patch["task"]["oneOf"]) > 1
    create = schemas["CreateScheduleRequest"]["properties"]
    for name in CREATE_NULLS:
        assert {"type": "null"} in create[name]["anyOf"], name
    for name in ("timezone", "retry", "misfire_grace_seconds", "send_by", "pause_after_failures", "labels",
                 "run_timeout_seconds"):
        assert "null or left out" in create[name]["description"].lower(), name
