"""Labels through the HTTP API: created with a schedule, shown, listed by, changed, and cancelled
by; in memory and on SQLite (the container's stores, via httpx's ASGI transport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from cronjob_bootstrap.container import Container
from tests.support.app import TOKEN, audit
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.list_api import NOW, TASK, client, clock, container  # noqa: F401 - fixtures


async def create(client: httpx.AsyncClient, labels: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    body = {"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z", **fields}
    if labels is not None:
        body["labels"] = labels
    response = await client.post("/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def listed(client: httpx.AsyncClient, *labels: str, **params: Any) -> list[str]:
    response = await client.get("/v1/schedules", params=[*(("label", text) for text in labels), *params.items()])
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_labels_are_shown_wherever_the_schedule_is(client: httpx.AsyncClient) -> None:
    created = await create(client, {"order": "123", "x.io/kind": "", "k": "v" * 256})
    assert created["labels"] == {"order": "123", "x.io/kind": "", "k": "v" * 256}
    assert (await client.get(f"/v1/schedules/{created['id']}")).json()["labels"] == created["labels"]
    assert (await client.get("/v1/schedules")).json()["items"][0]["labels"] == created["labels"]
    bare = await create(client)
    assert bare["labels"] == {}
    seed = await client.post("/schedule-message", json=SEED)
    assert seed.status_code == 201 and seed.json()["labels"] == {}


@pytest.mark.parametrize(("labels", "field", "message"), [
    ({"order": 123}, "labels.order", "valid string"),
    ({"order": None}, "labels.order", "valid string"),
    ({"order": ["1"]}, "labels.order", "valid string"),
    ({"order": "a\u0000b"}, "labels.order", "pattern"),
    ({"order": "a\u0085b"}, "labels.order", "pattern"),
    ({"order": "v" * 257}, "labels.order", "at most 256"),
    ({"bad key": "1"}, "labels.bad key", "pattern"),
    ({"-order": "1"}, "labels.-order", "pattern"),
    ({"k" * 64: "1"}, "labels." + "k" * 64, "at most 63"),
    ({"": "1"}, "labels.", "at least 1"),
    ({f"k{i}": "" for i in range(17)}, "labels", "at most 16"),
    (["order=123"], "labels", "valid dictionary"),
])
async def test_bad_labels_are_a_422_naming_the_field(client: httpx.AsyncClient, labels: Any, field: str,
                                                    message: str) -> None:
    response = await client.post("/v1/schedules", json={"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z",
                                                        "labels": labels})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == field and message in error["message"], error
    assert await listed(client) == []


async def test_the_seed_route_keeps_its_payload_and_takes_no_labels(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule-message", json={**SEED, "labels": {"order": "123"}})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "labels", "message": "unknown field"}]


async def test_labels_are_part_of_what_makes_a_request_the_same_for_its_idempotency_key(
        client: httpx.AsyncClient) -> None:
    body = {"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z", "labels": {"order": "1", "kind": "a"}}
    first = await client.post("/v1/schedules", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201
    reordered = await client.post("/v1/schedules", json={**body, "labels": {"kind": "a", "order": "1"}},
                                  headers={"Idempotency-Key": "k1"})
    assert reordered.status_code == 200 and reordered.json()["id"] == first.json()["id"]
    other = await client.post("/v1/schedules", json={**body, "labels": {"order": "2", "kind": "a"}},
                              headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
    bare = {"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z"}
    assert (await client.post("/v1/schedules", json=bare, headers={"Idempotency-Key": "k2"})).status_code == 201
    empty = await client.post("/v1/schedules", json={**bare, "labels": {}}, headers={"Idempotency-Key": "k2"})
    assert empty.status_code == 200  # no labels and {} are the same request
    null = await client.post("/v1/schedules", json={**bare, "labels": None}, headers={"Idempotency-Key": "k2"})
    assert null.status_code == 200 and null.json()["id"] == empty.json()["id"]  # and null, as for other fields
    labelled = await client.post("/v1/schedules", json={**bare, "labels": {"a": "1"}}, headers={"Idempotency-Key": "k2"})
    assert labelled.status_code == 422 and labelled.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_null_labels_are_no_labels(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/schedules", json={"task": TASK, "schedule": "once @ 2025-06-21T17:00:00Z",
                                                        "labels": None})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["labels"] == {}
    assert (await client.get(f"/v1/schedules/{created['id']}")).json()["labels"] == {}


async def test_list_by_labels_all_of_them_with_the_other_filters_and_pages(
        client: httpx.AsyncClient, clock: FixedClock) -> None:
    made: list[dict[str, Any]] = []
    for labels, user in (({"order": "123", "kind": "reminder"}, "ana"), ({"order": "123", "kind": "reminder"}, "ana"),
                         ({"order": "123", "kind": "receipt"}, "ana"), ({"order": "123", "kind": "reminder"}, "bia"),
                         ({"order": "1234", "kind": "reminder"}, "ana")):
        made.append(await create(client, labels, userId=user))
        clock.advance(timedelta(milliseconds=5))
    ids = [m["id"] for m in made]
    assert await listed(client, "order=123") == ids[3::-1]  # newest first
    assert await listed(client, "order=123", "kind=reminder") == [ids[3], ids[1], ids[0]]
    assert await listed(client, "kind=reminder", "order=123", userId="ana") == [ids[1], ids[0]]
    assert await listed(client, "order=123", "kind=reminder", limit=1, offset=1) == [ids[1]]
    assert await listed(client, "order=123", status="cancelled") == []
    assert await listed(client, "order=123", type="email") == []
    assert await listed(client, "order=12") == [] and await listed(client, "kind=") == []
    assert (await client.delete(f"/v1/schedules/{ids[0]}")).status_code == 200
    assert await listed(client, "order=123", "kind=reminder", status="cancelled") == [ids[0]]


@pytest.mark.parametrize("selectors", [["order"], ["=123"], ["bad key=1"], ["order=a\nb"], ["o=1", "o=2"],
                                       ["o=1", "o=1"], [f"k{i}=v" for i in range(17)], [""], ["k"],
                                       ["k=" + "v" * 257]])
async def test_a_malformed_label_selector_is_a_422(client: httpx.AsyncClient, selectors: list[str]) -> None:
    response = await client.get("/v1/schedules", params=[("label", text) for text in selectors])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} <= {"label", "label.0"}, response.text
    if len(selectors) == 1 and "=" not in selectors[0]:  # as readable as any other: no length rule first
        assert response.json()["errors"] == [{"field": "label",
                                              "message": f"a label selector is key=value, not {selectors[0]!r}"}]


async def test_patch_labels_alone_replaces_them_without_moving_the_schedule(client: httpx.AsyncClient) -> None:
    created = await create(client, {"order": "123", "kind": "reminder"})
    path = f"/v1/schedules/{created['id']}"
    changed = await client.patch(path, json={"labels": {"order": "124"}})
    assert changed.status_code == 200, changed.text
    shown = changed.json()
    assert shown["labels"] == {"order": "124"}
    assert (shown["next_run_at"], shown["send_at"], shown["status"], shown["body"]) == (
        created["next_run_at"], created["send_at"], "scheduled", "Oi")
    log = (await client.get(f"{path}/events")).json()["items"]
    assert [e["type"] for e in log] == ["scheduled", "scheduled"]
    assert log[-1]["data"] == {"labels_changed": "true", "next_run_at": created["next_run_at"], **audit(TOKEN, changed)}
    assert await listed(client, "order=123") == [] and await listed(client, "order=124") == [created["id"]]
    same = await client.patch(path, json={"labels": {"order": "124"}})
    assert same.status_code == 200 and same.json()["updated_at"] == shown["updated_at"]  # nothing to change
    cleared = await client.patch(path, json={"labels": {}})
    assert cleared.status_code == 200 and cleared.json()["labels"] == {}
    assert await listed(client, "order=124") == []
    with_task = await client.patch(path, json={"labels": {"a": "1"}, "task": {**TASK, "body": "Olá"},
                                               "schedule": "once @ 2025-06-21T18:00:00Z"})
    assert with_task.status_code == 200, with_task.text
    assert (with_task.json()["labels"], with_task.json()["body"], with_task.json()["next_run_at"]) == (
        {"a": "1"}, "Olá", "2025-06-21T18:00:00.000Z")
    last = (await client.get(f"{path}/events")).json()["items"][-1]["data"]
    assert last["labels_changed"] == last["task_changed"] == "true" and "rescheduled_from" in last
    for bad, field in (({"labels": {"a": 1}}, "labels.a"), ({"labels": {"a": "1"}, "timezone": "UTC"}, "timezone"),
                       ({"labels": None}, "labels")):
        refused = await client.patch(path, json=bad)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text


async def test_patch_labels_is_a_409_while_it_runs_and_once_it_ended(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    created = await create(client, {"order": "1"}, schedule="every 1 hour")
    path = f"/v1/schedules/{created['id']}"
    clock.set(datetime.fromisoformat(created["next_run_at"]))
    claimed = await container.repository().claim_due(now=clock.now(), owner="r", lease_for=timedelta(seconds=30),
                                                     limit=10)
    assert [c.id for c in claimed] == [created["id"]]
    running = await client.patch(path, json={"labels": {"order": "2"}})
    assert running.status_code == 409 and "its run is in progress" in running.json()["detail"]
    assert (await client.delete(path)).status_code == 200
    ended = await client.patch(path, json={"labels": {"order": "2"}})
    assert ended.status_code == 409 and "cancelled" in ended.json()["detail"]
    assert (await client.get(path)).json()["labels"] == {"order": "1"}


async def test_cancel_by_labels_by_user_and_labels_and_never_by_nothing(client: httpx.AsyncClient) -> None:
    reminders = [await create(client, {"order": "123", "kind": "reminder"}, userId=user) for user in ("a", "a", "b")]
    receipt = await create(client, {"order": "123", "kind": "receipt"}, userId="a")
    both = await client.post("/v1/schedules:cancel", json={"userId": "b", "labels": {"order": "123"}})
    assert both.status_code == 200, both.text
    assert both.json() == {"userId": "b", "labels": {"order": "123"}, "type": None, "due_after": None,
                           "due_before": None, "updated_after": None, "updated_before": None,
                           "cancelled": [reminders[2]["id"]], "refused": [], "more": False}
    by_labels = await client.post("/v1/schedules:cancel", json={"labels": {"order": "123", "kind": "reminder"}})
    assert by_labels.status_code == 200 and by_labels.json()["userId"] is None
    assert sorted(by_labels.json()["cancelled"]) == sorted(r["id"] for r in reminders[:2])
    assert (await client.get(f"/v1/schedules/{receipt['id']}")).json()["status"] == "scheduled"
    for body, field in (({}, "userId"), ({"labels": {}}, "labels"), ({"userId": None, "labels": None}, "userId"),
                        ({"labels": {"bad key": "1"}}, "labels.bad key"), ({"labels": {"a": 1}}, "labels.a")):
        refused = await client.post("/v1/schedules:cancel", json=body)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json", body
        assert refused.json()["errors"][0]["field"] == field, refused.text
    assert (await client.get(f"/v1/schedules/{receipt['id']}")).json()["status"] == "scheduled"


async def test_the_openapi_document_describes_labels(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for name in ("CreateScheduleRequest", "RescheduleRequest", "SelectRequest"):
        labels = schemas[name]["properties"]["labels"]
        text = str(labels)
        assert "maxProperties" in text and "[A-Za-z0-9]" in text, (name, labels)
        [described] = [option for option in labels.get("anyOf", [labels]) if option.get("type") == "object"]
        document = Draft202012Validator(described)  # what the document lets through, the API takes
        for refused in ({"-a": "v"}, {"a b": "v"}, {"é": "x"}, {"": "v"}, {"k" * 64: "v"}, {"a": 1}, {"a": "\x07"}):
            assert not document.is_valid(refused), (name, refused)
        assert document.is_valid({"order": "123", "a/b.c_d-e": ""})
    assert "labels" in schemas["ScheduleView"]["properties"]
    listing = spec["paths"]["/v1/schedules"]["get"]["parameters"]
    [label] = [p for p in listing if p["name"] == "label"]
    assert label["schema"]["anyOf"][0]["type"] == "array" and "key=value" in label["description"]
