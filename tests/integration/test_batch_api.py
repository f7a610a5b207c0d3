"""POST /v1/schedules:batch (a campaign in one request), through the container's API (memory
store, recording sender) and its dispatcher, with a hand-driven clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob.domain.schedule import Schedule
from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, api_client, make_container, set_up
from tests.support.clock import FixedClock

NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
PATH = "/v1/schedules:batch"


def item(to: str = "5511999999999", body: str = "Oi", schedule: str = "once @ 2026-03-28 10:00",
         timezone: str = "America/Sao_Paulo", **fields: Any) -> dict[str, Any]:
    return {"task": {"type": "whatsapp.text", "to": to, "body": body}, "schedule": schedule,
            "timezone": timezone, **fields}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def container(clock: FixedClock) -> Container:
    return make_container(clock, max_body_bytes=4096, max_batch_body_bytes=256 * 1024)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container) as http:
        yield http


async def batch(client: httpx.AsyncClient, items: list[dict[str, Any]], status: int = 200) -> dict[str, Any]:
    answer = await client.post(PATH, json={"schedules": items}, headers=AUTH)
    assert answer.status_code == status, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def stored(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/v1/schedules", params={"limit": 500, **params}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


async def test_a_campaign_is_created_in_one_request_and_each_is_sent_when_due(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    numbers = [f"55119{i:08d}" for i in range(120)]  # 120 items: more than run at once
    answer = await batch(client, [item(to=n, body=f"Oi {i}", userId="u1", labels={"campaign": "c1"})
                                  for i, n in enumerate(numbers)])
    assert (answer["created"], answer["replayed"], answer["refused"]) == (120, 0, 0)
    assert [r["index"] for r in answer["results"]] == list(range(120))
    assert {r["status"] for r in answer["results"]} == {201}
    assert {r["next_run_at"] for r in answer["results"]} == {"2026-03-28T13:00:00.000Z"}
    ids = [r["id"] for r in answer["results"]]
    assert len(set(ids)) == 120
    for index in (0, 57, 119):  # each result is its own item's schedule, in the batch's order
        one = (await client.get(f"/v1/schedules/{ids[index]}", headers=AUTH)).json()
        assert (one["to"], one["body"], one["userId"], one["labels"]) == (numbers[index], f"Oi {index}", "u1",
                                                                           {"campaign": "c1"})
    clock.set(datetime(2026, 3, 28, 13, tzinfo=UTC))
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():  # 100 at a time (max_in_flight)
        await dispatcher.drain(5)
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    assert sorted(m.to for m in sender.sent) == sorted(numbers)


async def test_an_item_the_service_refuses_is_answered_alone_and_the_others_are_created(
        client: httpx.AsyncClient) -> None:
    answer = await batch(client, [item(), item(schedule="daily at 25:00"), item(timezone="Mars/Olympus"),
                                  item(schedule="once @ 2020-01-01 10:00"), item(body="last")])
    assert (answer["created"], answer["refused"]) == (2, 3)
    assert [r["status"] for r in answer["results"]] == [201, 422, 422, 422, 201]
    refused = {r["index"]: r["errors"] for r in answer["results"] if r["status"] == 422}
    assert [e["field"] for e in refused[1]] == ["schedules.1.schedule"]
    assert "25:00" in refused[1][0]["message"]
    assert [e["field"] for e in refused[2]] == ["schedules.2.timezone"]
    assert [e["field"] for e in refused[3]] == ["schedules.3.schedule"]
    assert "id" not in answer["results"][1] and "errors" not in answer["results"][0]
    assert sorted(s["body"] for s in await stored(client)) == ["Oi", "last"]


async def test_a_body_that_does_not_fit_the_document_creates_nothing_and_names_each_wrong_field(
        client: httpx.AsyncClient) -> None:
    answer = await client.post(PATH, json={"schedules": [item(), item(to="abc"), item(colour="red")]}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["schedules.1.task.to", "schedules.2.colour"]
    assert "errors_total" not in answer.json() and answer.json()["detail"].startswith("schedules.1.task.to: ")
    assert await stored(client) == []
    for body in ({"schedules": []}, {"schedules": [item()] * 1001}, {}, {"schedules": [item()], "more": 1}):
        refused = await client.post(PATH, json=body, headers=AUTH)
        assert refused.status_code == 422, refused.text  # 1,001 items are ~130 KB: within the batch limit
    assert await stored(client) == []


async def test_a_body_with_more_than_100_errors_lists_the_first_100_in_item_order_and_counts_them_all(
        client: httpx.AsyncClient) -> None:
    bad = [item(to=f"{i}") for i in range(1000)]  # each a phone number too short
    answer = await client.post(PATH, json={"schedules": bad}, headers=AUTH)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    refused = answer.json()
    assert [e["field"] for e in refused["errors"]] == [f"schedules.{i}.task.to" for i in range(100)]
    assert refused["errors_total"] == 1000
    first = refused["errors"][0]
    assert refused["detail"].startswith(f"1,000 errors, of which only the first 100 are listed: "
                                        f"{first['field']}: {first['message']}; ")
    assert len(answer.content) < 40_000  # every error listed was about 240 KB
    assert await stored(client) == []
    for count, listed, total in ((100, 100, None), (101, 100, 101)):  # the cap's edge
        edge = (await client.post(PATH, json={"schedules": bad[:count]}, headers=AUTH)).json()
        assert (len(edge["errors"]), edge.get("errors_total")) == (listed, total), count
        assert edge["detail"].startswith("schedules.0.task.to: ") == (total is None), edge["detail"][:80]


async def test_a_batch_sent_again_with_idempotency_keys_creates_nothing_twice(client: httpx.AsyncClient) -> None:
    items = [item(to=f"55119{i:08d}", idempotency_key=f"camp-1-{i}") for i in range(5)]
    first = await batch(client, items)
    again = await batch(client, [*items, item(to="5511900000099", idempotency_key="camp-1-new")])
    assert (again["created"], again["replayed"]) == (1, 5)
    assert [r["status"] for r in again["results"]] == [200] * 5 + [201]
    assert [r["id"] for r in again["results"][:5]] == [r["id"] for r in first["results"]]
    assert len(await stored(client)) == 6
    # The key is the Idempotency-Key of POST /v1/schedules: the one request, made singly, is a replay.
    single = await client.post("/v1/schedules", json=items[0] | {"idempotency_key": None},
                               headers=AUTH | {"Idempotency-Key": "camp-1-0"})
    assert single.status_code == 422  # the single request has no such field
    single = await client.post("/v1/schedules", json={k: v for k, v in items[0].items() if k != "idempotency_key"},
                               headers=AUTH | {"Idempotency-Key": "camp-1-0"})
    assert single.status_code == 200 and single.json()["id"] == first["results"][0]["id"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_batch_sent_again_answers_each_item_as_the_first_time_and_new_ones_beside_them(
        clock: FixedClock, tmp_path: Path, store: str) -> None:
    first_items = [
        item(to="5511900000001", idempotency_key="c-a"),
        item(to="5511900000002", idempotency_key="c-b"),
        item(to="5511900000003"),                                    # no key: created each time
        item(to="5511900000004", idempotency_key="c-d"),
        item(to="5511900000004", idempotency_key="c-d"),             # the item before it again
        item(to="5511900000005", schedule="daily at 25:00", idempotency_key="c-e"),  # refused
        item(to="5511900000006", body="v1", idempotency_key="c-f"),
    ]
    async with set_up(clock, store, tmp_path) as container, api_client(container) as http:
        first = await batch(http, first_items)
        assert [r["status"] for r in first["results"]] == [201, 201, 201, 201, 200, 422, 201]
        again = await batch(http, first_items)
        assert (again["created"], again["replayed"], again["refused"]) == (1, 5, 1)
        for before, now in zip(first["results"], again["results"], strict=True):
            if now["index"] == 2:  # the item without a key: a new schedule
                assert (now["status"], now["id"] != before["id"]) == (201, True)
            else:  # every other answered as the first time, 201 as 200 (a replay)
                assert now == before | ({"status": 200} if before["status"] == 201 else {}), now
        mixed = await batch(http, [
            item(to="5511900000006", body="v2", idempotency_key="c-f"),  # c-f's key, another request
            item(to="5511900000007", idempotency_key="c-g"),              # new
            item(to="5511900000002", idempotency_key="c-b"),              # a replay
            item(to="5511900000007", idempotency_key="c-g"),              # the new one again
        ])
        assert [r["status"] for r in mixed["results"]] == [422, 201, 200, 200]
        assert [e["field"] for e in mixed["results"][0]["errors"]] == ["schedules.0.idempotency_key"]
        assert mixed["results"][2]["id"] == first["results"][1]["id"]
        assert mixed["results"][3]["id"] == mixed["results"][1]["id"]
        listed = await stored(http)
        assert sorted(s["to"][-1] for s in listed) == sorted("1233467")  # 3 twice (no key), 5 never
        assert [s["body"] for s in listed if s["to"].endswith("6")] == ["v1"]
        clock.set(datetime(2026, 3, 29, 12, tzinfo=UTC))  # a day after they were due: too late to create
        late = await batch(http, first_items)
        assert [r["status"] for r in late["results"]] == [200, 200, 422, 200, 200, 422, 200]  # replayed, unchecked
        assert [r.get("id") for r in late["results"]] == [r.get("id") for r in first["results"][:2]] + [None] + [
            r.get("id") for r in first["results"][3:]]


async def test_an_idempotency_key_header_without_keys_on_the_items_is_refused(client: httpx.AsyncClient) -> None:
    """A client that sends a batch with an Idempotency-Key header, as it does with every POST,
    expects to send it again safely: the header alone would create every item twice."""
    header = AUTH | {"Idempotency-Key": "campaign-9"}
    items = [item(to=f"55119{i:08d}") for i in range(12)]
    items[3]["idempotency_key"] = "camp-9-3"
    for _ in range(2):  # the client's retry
        refused = await client.post(PATH, json={"schedules": items}, headers=header)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["Idempotency-Key"]
        message = refused.json()["errors"][0]["message"]
        assert "11 of 12 items have no idempotency_key (schedules 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, ...)" in message
    assert await stored(client) == []  # nothing created, not even the keyed item
    # With a key on every item the batch is safe to send again, and the header is taken as it is.
    keyed = [item(to=f"55119{i:08d}", idempotency_key=f"camp-9-{i}") for i in range(3)]
    first = (await client.post(PATH, json={"schedules": keyed}, headers=header)).json()
    again = (await client.post(PATH, json={"schedules": keyed}, headers=header)).json()
    assert (first["created"], again["created"], again["replayed"]) == (3, 0, 3)
    assert len(await stored(client)) == 3


async def test_a_key_used_for_another_request_is_refused_on_its_item(client: httpx.AsyncClient) -> None:
    await batch(client, [item(idempotency_key="k1")])
    answer = await batch(client, [item(body="changed", idempotency_key="k1"), item(body="fine")])
    assert [r["status"] for r in answer["results"]] == [422, 201]
    assert [e["field"] for e in answer["results"][0]["errors"]] == ["schedules.0.idempotency_key"]
    # Twice in one batch: the same request is created once, another under that key is refused.
    answer = await batch(client, [item(body="twice", idempotency_key="k2"), item(body="twice", idempotency_key="k2"),
                                  item(body="not the same", idempotency_key="k2")])
    assert sorted(r["status"] for r in answer["results"]) == [200, 201, 422]
    assert answer["results"][0]["id"] == answer["results"][1]["id"]
    assert sorted(s["body"] for s in await stored(client)) == ["Oi", "fine", "twice"]


async def test_a_batch_has_a_body_limit_of_its_own(client: httpx.AsyncClient) -> None:
    items = [item(to=f"55119{i:08d}") for i in range(100)]  # ~13 KiB: over the 4 KiB of one request
    assert len(json.dumps({"schedules": items})) > 4096
    assert (await batch(client, items))["created"] == 100
    one = await client.post("/v1/schedules", json=item(body="x" * 4096), headers=AUTH)
    assert one.status_code == 413  # the limit of every other route stands
    huge = await client.post(PATH, json={"schedules": [item(body="x" * 4000)] * 70}, headers=AUTH)  # ~290 KB
    assert huge.status_code == 413
    assert huge.json()["detail"] == f"request body exceeds {256 * 1024} bytes"


class AddsFailAfter(InMemoryScheduleRepository):
    """The in-memory store, unreachable for writes once ``left`` schedules were added."""

    def __init__(self, left: int) -> None:
        super().__init__()
        self.left = left

    async def add(self, schedule: Schedule) -> None:
        if self.left <= 0:
            raise StoreUnavailable("connection refused")
        self.left -= 1
        await super().add(schedule)


async def test_a_store_lost_midway_is_a_503_and_the_batch_sent_again_creates_the_rest_once(
        clock: FixedClock) -> None:
    store = AddsFailAfter(3)
    container = make_container(clock, repository=store)
    items = [item(to=f"55119{i:08d}", idempotency_key=f"k{i}") for i in range(40)]
    async with api_client(container) as http:
        lost = await http.post(PATH, json={"schedules": items}, headers=AUTH)
        assert lost.status_code == 503
        assert lost.headers["content-type"] == "application/problem+json"
        assert len(await stored(http)) == 3
        store.left = 1000
        again = await batch(http, items)
        assert (again["created"], again["replayed"]) == (37, 3)
        assert sorted(s["to"] for s in await stored(http)) == sorted(i["task"]["to"] for i in items)


async def test_openapi_describes_the_batch_and_its_items(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][PATH]["post"]
    assert "idempotency_key" in operation["description"]
    body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    schedules = document["components"]["schemas"][body_ref]["properties"]["schedules"]
    assert (schedules["minItems"], schedules["maxItems"]) == (1, 1000)
    item_schema = document["components"]["schemas"][schedules["items"]["$ref"].rsplit("/", 1)[-1]]
    assert {"task", "schedule", "timezone", "idempotency_key"} <= set(item_schema["properties"])
    result_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(document["components"]["schemas"][result_ref]["properties"]) == {
        "created", "replayed", "refused", "results"}
