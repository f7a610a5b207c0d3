"""The bulk actions, through the container's API (memory store, recording sender) and its
dispatcher, with a hand-driven clock: POST /v1/schedules:retry (the redrive of the dead letters),
:pause and :resume (a campaign held, then let go)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, make_container
from tests.support.builders import SEED
from tests.support.clock import FixedClock

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)  # an hour before the seed's send_at
TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Promo!"}
EXPIRED = DeliveryError("190", "Error validating access token: Session has expired", retryable=False)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def container(clock: FixedClock) -> Container:
    return make_container(clock, max_body_bytes=4096)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def run_due(container: Container) -> None:
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        pass
    await dispatcher.drain(5)


async def shown(client: httpx.AsyncClient, schedule_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/schedules/{schedule_id}", headers=AUTH)
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


async def test_messages_killed_by_an_expired_token_are_redriven_once_it_is_renewed(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    mine = [(await client.post("/schedule-message", json=SEED, headers=AUTH)).json()["id"] for _ in range(3)]
    theirs = (await client.post("/schedule-message", json={**SEED, "userId": "other"}, headers=AUTH)).json()["id"]
    later = (await client.post("/schedule-message", json={**SEED, "send_at": "2025-06-22T14:00:00-03:00"},
                               headers=AUTH)).json()["id"]
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(*[EXPIRED] * 4)
    clock.set(NOW + timedelta(hours=1))
    await run_due(container)
    assert {(await shown(client, i))["status"] for i in [*mine, theirs]} == {"dead"}
    assert sender.sent == []

    clock.set(NOW + timedelta(hours=2))  # the token is renewed
    mine_only = await client.post("/v1/schedules:retry", json={"status": "dead", "userId": SEED["userId"]},
                                  headers=AUTH)
    assert mine_only.status_code == 200, mine_only.text
    assert mine_only.json() == {"status": "dead", "type": None, "userId": SEED["userId"], "labels": None,
                                "updated_after": None, "updated_before": None,
                                "retried": mine_only.json()["retried"], "refused": [], "more": False, "next_cursor": None}
    assert sorted(mine_only.json()["retried"]) == sorted(mine)
    everyone = await client.post("/v1/schedules:retry", json={"status": "dead"}, headers=AUTH)
    assert everyone.json()["retried"] == [theirs]
    for schedule_id in [*mine, theirs]:
        retried = await shown(client, schedule_id)
        assert retried["status"] == "scheduled" and retried["next_run_at"] == "2025-06-21T18:00:00.000Z"
    assert (await shown(client, later))["status"] == "scheduled"

    await run_due(container)
    assert len(sender.sent) == 4
    for schedule_id in [*mine, theirs]:
        done = await shown(client, schedule_id)
        assert done["status"] == "succeeded" and [a["outcome"] for a in done["attempts"]] == ["failed", "succeeded"]
    events = (await client.get(f"/v1/schedules/{theirs}/events", headers=AUTH)).json()["items"]
    assert [e["type"] for e in events][-4:] == ["dead", "scheduled", "started", "succeeded"]
    assert events[-3]["data"]["retried_from"] == "dead"
    nothing_left = await client.post("/v1/schedules:retry", json={"status": "dead"}, headers=AUTH)
    assert nothing_left.json()["retried"] == [] and nothing_left.json()["refused"] == []


async def test_the_type_selects_and_the_service_s_own_jobs_only_when_named(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    message = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()["id"]
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(EXPIRED)
    clock.set(NOW + timedelta(hours=1))
    await run_due(container)
    other_type = await client.post("/v1/schedules:retry", json={"status": "dead", "type": ["whatsapp.text"]},
                                   headers=AUTH)
    assert other_type.status_code == 200 and other_type.json()["retried"] == []
    own = await client.post("/v1/schedules:retry", json={"status": "dead", "type": ["webhook.delivery"]},
                            headers=AUTH)
    assert own.status_code == 200 and own.json()["retried"] == [] and own.json()["type"] == ["webhook.delivery"]
    template = await client.post("/v1/schedules:retry",
                                 json={"status": "dead", "type": ["whatsapp.template", "whatsapp.text"]},
                                 headers=AUTH)
    assert template.json()["retried"] == [message]


async def test_a_redrive_retries_only_the_messages_that_died_during_the_outage(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    async def due_at(at: str) -> str:
        made = await client.post("/v1/schedules", headers=AUTH, json={"task": TASK, "schedule": f"once @ {at}"})
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    before, during, after = [await due_at(at) for at in
                             ("2025-06-21T16:30:00Z", "2025-06-21T17:00:00Z", "2025-06-21T18:00:00Z")]
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(*[EXPIRED] * 3)
    for hour, minute in ((16, 30), (17, 0), (18, 0)):  # each dies when it is due
        clock.set(datetime(2025, 6, 21, hour, minute, tzinfo=UTC))
        await run_due(container)
    assert [(await shown(client, i))["status"] for i in (before, during, after)] == ["dead"] * 3
    # The outage: 13:45 to 14:30 in São Paulo (16:45 to 17:30 UTC).
    outage = {"updated_after": "2025-06-21T13:45:00-03:00", "updated_before": "2025-06-21T14:30:00-03:00"}
    listed = await client.get("/v1/schedules", params={"status": "dead", **outage}, headers=AUTH)
    assert [item["id"] for item in listed.json()["items"]] == [during]

    clock.set(datetime(2025, 6, 21, 19, 0, tzinfo=UTC))
    redriven = await client.post("/v1/schedules:retry", json={"status": "dead", **outage}, headers=AUTH)
    assert redriven.status_code == 200, redriven.text
    assert redriven.json() == {"status": "dead", "type": None, "userId": None, "labels": None,
                               "updated_after": "2025-06-21T16:45:00.000Z",
                               "updated_before": "2025-06-21T17:30:00.000Z", "retried": [during], "refused": [],
                               "more": False, "next_cursor": None}
    assert [(await shown(client, i))["status"] for i in (before, during, after)] == ["dead", "scheduled", "dead"]
    await run_due(container)
    assert (await shown(client, during))["status"] == "succeeded" and len(sender.sent) == 1
    # Retried, it changed now: out of the outage's window; either side may stay open.
    again = await client.post("/v1/schedules:retry", json={"status": "dead", **outage}, headers=AUTH)
    assert again.json()["retried"] == []
    since = await client.post("/v1/schedules:retry", headers=AUTH,
                              json={"status": "dead", "updated_after": "2025-06-21T17:30:00Z"})
    assert since.json()["retried"] == [after] and since.json()["updated_before"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({}, "status"),
    ({"status": "scheduled"}, "status"),
    ({"status": "succeeded"}, "status"),
    ({"status": "dead", "type": []}, "type"),
    ({"status": "dead", "type": "whatsapp.template"}, "type"),
    ({"status": "dead", "type": ["no.such.type"]}, "type"),
    ({"status": "dead", "labels": {"bad key": "1"}}, "labels"),
    ({"status": "dead", "userId": 5}, "userId"),
    ({"status": "dead", "everything": True}, "everything"),
    ({"status": "dead", "updatedAfter": "2025-06-21T16:00:00Z"}, "updatedAfter"),  # snake_case, as due_after
    ({"status": "dead", "updated_after": "2025-06-21T16:00:00"}, "updated_after"),  # no offset: which zone's?
    ({"status": "dead", "updated_before": "yesterday"}, "updated_before"),
    ({"status": "dead", "updated_after": 1750521600}, "updated_after"),
    ({"status": "dead", "updated_after": ""}, "updated_after"),
    ({"status": "dead", "updated_after": "2" * 65}, "updated_after"),
    ({"status": "dead", "updated_before": "9999-12-31T23:59:59.999999Z"}, "updated_before"),  # past the calendar
    ({"status": "dead", "updated_after": "2025-06-21T17:00:00Z", "updated_before": "2025-06-21T14:00:00-03:00"},
     "updated_before"),  # the same instant: an empty window
    ({"status": "dead", "updated_after": "2025-06-21T17:00:00Z", "updated_before": "2025-06-21T16:00:00Z"},
     "updated_before"),
])
async def test_bad_retry_requests_are_422s_naming_the_field(client: httpx.AsyncClient, body: dict[str, Any],
                                                            field: str) -> None:
    refused = await client.post("/v1/schedules:retry", json=body, headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"].split(".")[0] for e in refused.json()["errors"]] == [field]


async def test_retry_needs_a_token_and_a_json_body(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/schedules:retry", json={"status": "dead"})).status_code == 401
    assert (await client.post("/v1/schedules:retry", content=b'{"status": "dead"}', headers=AUTH)).status_code == 415


async def create(client: httpx.AsyncClient, labels: dict[str, str]) -> str:
    answer = await client.post("/v1/schedules", headers=AUTH, json={
        "task": TASK, "schedule": "once @ 2025-06-21T16:30:00Z", "timezone": "UTC", "labels": labels})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def statuses(client: httpx.AsyncClient, ids: list[str]) -> list[Any]:
    return [(await client.get(f"/v1/schedules/{i}", headers=AUTH)).json()["status"] for i in ids]


async def test_a_campaign_is_held_past_its_time_and_sent_once_resumed(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    campaign = [await create(client, {"campaign": "bf"}) for _ in range(3)]
    other = await create(client, {"campaign": "xmas"})

    paused = await client.post("/v1/schedules:pause", json={"labels": {"campaign": "bf"}}, headers=AUTH)
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"userId": None, "labels": {"campaign": "bf"}, "type": None, "due_after": None,
                             "due_before": None, "updated_after": None, "updated_before": None,
                             "paused": paused.json()["paused"], "refused": [], "more": False}
    assert sorted(paused.json()["paused"]) == sorted(campaign)
    clock.set(NOW + timedelta(minutes=31))  # past their time: only the other one goes out
    await run_due(container)
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    assert len(sender.sent) == 1 and await statuses(client, [other]) == ["succeeded"]
    assert await statuses(client, campaign) == ["paused"] * 3

    resumed = await client.post("/v1/schedules:resume", json={"labels": {"campaign": "bf"}}, headers=AUTH)
    assert resumed.status_code == 200 and sorted(resumed.json()["resumed"]) == sorted(campaign)
    assert resumed.json()["refused"] == [] and "paused" not in resumed.json()
    await run_due(container)  # a minute late, within the misfire grace: sent now
    assert len(sender.sent) == 4 and await statuses(client, campaign) == ["succeeded"] * 3
    events = (await client.get(f"/v1/schedules/{campaign[0]}/events", headers=AUTH)).json()["items"]
    assert [e["type"] for e in events] == ["scheduled", "paused", "resumed", "started", "succeeded"]
    nothing = await client.post("/v1/schedules:resume", json={"labels": {"campaign": "bf"}}, headers=AUTH)
    assert nothing.json()["resumed"] == []


@pytest.mark.parametrize("path", ["/v1/schedules:pause", "/v1/schedules:resume"])
@pytest.mark.parametrize(("body", "field"), [
    ({}, "userId"), ({"labels": {}}, "labels"), ({"userId": ""}, "userId"),
    ({"labels": {"bad key": "1"}}, "labels"), ({"userId": "u1", "status": "dead"}, "status"),
])
async def test_bad_pause_and_resume_requests_are_422s_naming_the_field(
        client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str) -> None:
    refused = await client.post(path, json=body, headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert field in {e["field"].split(".")[0] for e in refused.json()["errors"]}


@pytest.mark.parametrize("path", ["/v1/schedules:pause", "/v1/schedules:resume"])
async def test_pause_and_resume_need_a_token_and_a_json_body(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.post(path, json={"userId": "u1"})).status_code == 401
    assert (await client.post(path, content=b'{"userId": "u1"}', headers=AUTH)).status_code == 415
