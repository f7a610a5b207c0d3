"""The HTTP API through the container (store=memory, sender=recording), in memory via httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

import cronjob
from cronjob.domain.message import DeliveryError
from cronjob.domain.schedule import ScheduleEvent
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.web.app import request_digest
from cronjob_adapters.web.schemas import Deadline
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, TOKEN, DownStore, audit, make_container
from tests.support.builders import SEED, one_off
from tests.support.clock import FixedClock
from tests.support.rules_api import check_refused_on_every_route
from tests.support.waiting import until

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)  # 13:00 in São Paulo, an hour before the seed's send_at


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def container(clock: FixedClock) -> Container:
    return make_container(clock, api_tokens=f"{TOKEN},second-token", max_body_bytes=4096,
                          poll_interval_seconds=0.05)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_seed_payload_is_scheduled(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule-message", json=SEED, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["send_at"] == "2025-06-21T17:00:00.000Z"
    assert body["send_at_original"] == "2025-06-21T14:00:00-03:00"
    assert body["rendered_body"] == "Olá, Leandro! Seu pedido será entregue em 2 dias úteis."
    assert body["templateName"] == "notificacao_entrega" and body["language"] == "pt_BR"
    assert response.headers["location"] == f"/v1/schedules/{body['id']}"
    fetched = await client.get(f"/v1/schedules/{body['id']}", headers=AUTH)
    assert fetched.status_code == 200 and fetched.json()["id"] == body["id"]
    assert fetched.json()["attempts"] == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
async def test_requests_without_a_valid_token_are_refused(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for response in (await client.post("/schedule-message", json=SEED, headers=headers),
                     await client.get("/v1/schedules/x", headers=headers)):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_configured_token_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule-message", json=SEED,
                                 headers={"Authorization": "Bearer second-token"})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"send_at": "2025-06-21T14:00:00"}, "send_at"),
        ({"send_at": "tomorrow"}, "send_at"),
        ({"to": "55 11 9999-9999"}, "to"),
        ({"to": "abc"}, "to"),
        ({"params": ["only one"]}, "params"),
        ({"params": ["a", "b", "c"]}, "params"),
        ({"send_at": "2025-06-21T12:00:00-03:00"}, "send_at"),  # two hours in the past
        ({"templateName": None}, "templateName"),
        ({"timezone": "Mars/Olympus", "send_at": "2025-06-21T14:00:00"}, "timezone"),
        ({"timezone": "localtime", "send_at": "2025-06-21T14:00:00"}, "timezone"),
        ({"type": "video"}, "type"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
        # Numbers are numbers: a bool or a text is refused, not read as 1 or parsed.
        ({"retry": {"max_attempts": True}}, "retry.max_attempts"),
        ({"retry": {"max_attempts": "3"}}, "retry.max_attempts"),
        ({"retry": {"initial_delay_seconds": False}}, "retry.initial_delay_seconds"),
        ({"misfire_grace_seconds": "10"}, "misfire_grace_seconds"),
        ({"misfire_grace_seconds": True}, "misfire_grace_seconds"),
        ({"callback_url": "https://user:secret@hooks.example/x"}, "callback_url"),
        ({"callback_url": "https://hooks.example:0/x"}, "callback_url"),
        ({"body": None}, "body"),  # the message's own field called body
        ({"send_at": "9999-12-31T23:59:59-14:00"}, "send_at"),  # past the year 9999 in UTC
    ],
)
async def test_bad_payloads_get_a_readable_422(client: httpx.AsyncClient, change: dict[str, object], field: str) -> None:
    payload = {**SEED, **change}
    response = await client.post("/schedule-message", json=payload, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] == "Invalid request"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]
    listed = await client.get("/v1/schedules", headers=AUTH)
    assert listed.json()["items"] == []  # nothing was stored


async def test_malformed_json_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule-message", content=b"{not json",
                                 headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    # The body as a whole is at fault, not a field named after a character offset.
    assert response.json()["errors"] == [{"field": "body", "message": "not valid JSON at character 1: "
                                          "Expecting property name enclosed in double quotes"}]


async def test_a_body_that_is_not_utf8_is_a_clear_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule-message", content=b"\xff{}",
                                 headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Bad request"
    assert "UTF-8 JSON" in response.json()["detail"]


async def test_a_body_nested_too_deeply_is_a_clear_4xx_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule-message", content=b"[" * 1_500 + b"]" * 1_500,
                                 headers={**AUTH, "content-type": "application/json"})
    # Python 3.11 cannot parse it at all (400); later versions can, and it is not an object (422).
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] in ("Bad request", "Invalid request")


async def test_an_unknown_query_parameter_is_refused_not_ignored(client: httpx.AsyncClient) -> None:
    # A typo must not widen what is listed (every schedule instead of the dead ones).
    response = await client.get("/v1/schedules?stauts=dead&limit=5", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "stauts", "message": "unknown query parameter"}]
    assert (await client.get("/v1/schedules?status=dead&limit=5&type=whatsapp.text&type=webhook.delivery",
                             headers=AUTH)).status_code == 200
    # Nor is a parameter of one value taken twice (the last one only), nor a misspelt type (nothing).
    twice = await client.get("/v1/schedules?status=dead&status=missed&limit=2&limit=3", headers=AUTH)
    assert twice.status_code == 422
    assert [e["field"] for e in twice.json()["errors"]] == ["limit", "status"]
    typo = await client.get("/v1/schedules?type=whatsapp.templat", headers=AUTH)
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "type", typo.text
    # Without a token, the answer is 401 whatever the parameters.
    assert (await client.get("/v1/schedules?stauts=dead")).status_code == 401


async def test_head_is_answered_wherever_get_is(client: httpx.AsyncClient) -> None:
    for path, headers in [("/healthcheck", {}), ("/v1/schedules", AUTH), ("/v1/stats", AUTH), ("/dashboard", {})]:
        got, head = await client.get(path, headers=headers), await client.head(path, headers=headers)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == got.headers["content-length"], path
    assert (await client.head("/v1/schedules")).status_code == 401  # what GET needs, HEAD needs
    no_get = await client.head("/schedule-message", headers=AUTH)
    assert no_get.status_code == 405 and no_get.headers["allow"] == "POST"


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/v1/schedules", "GET, HEAD, POST"),
    ("PUT", "/v1/schedules/some-id", "DELETE, GET, HEAD, PATCH"),
    ("GET", "/v1/schedules/some-id/retry", "POST"),
    ("GET", "/v1/schedules/some-id/pause", "POST"),
    ("DELETE", "/v1/schedules/some-id/resume", "POST"),
    ("PUT", "/v1/schedules/some-id/run", "POST"),
    ("POST", "/", "GET, HEAD"),  # a path the document leaves out
])
async def test_a_wrong_method_names_every_allowed_one(client: httpx.AsyncClient, method: str, path: str,
                                                      allow: str) -> None:
    response = await client.request(method, path, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    payload = {**SEED, "body": "x" * 4000, "params": [], "type": "text"}
    response = await client.post("/schedule-message", json=payload, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["title"] == "Payload too large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = await client.post("/schedule-message", content=chunks(),
                                 headers={**AUTH, "content-type": "application/json"})
    assert streamed.status_code == 413


async def test_wall_time_with_a_zone_and_dst_gaps(client: httpx.AsyncClient, clock: FixedClock) -> None:
    ok = await client.post("/schedule-message", headers=AUTH,
                           json={**SEED, "send_at": "2025-06-21T14:00:00", "timezone": "America/Sao_Paulo"})
    assert ok.status_code == 201 and ok.json()["send_at"] == "2025-06-21T17:00:00.000Z"
    clock.set(datetime(2025, 3, 1, tzinfo=UTC))
    gap = await client.post("/schedule-message", headers=AUTH,
                            json={**SEED, "send_at": "2025-03-09T02:30:00", "timezone": "America/New_York"})
    assert gap.status_code == 422 and "does not exist" in gap.json()["detail"]


@pytest.mark.parametrize("path", ["/schedule-message", "/v1/schedules"])
async def test_a_body_that_is_not_sent_as_json_is_a_415(client: httpx.AsyncClient, path: str) -> None:
    body = json.dumps(SEED)
    for content_type in ("application/x-www-form-urlencoded", "text/plain; charset=utf-8"):
        response = await client.post(path, content=body, headers={**AUTH, "Content-Type": content_type})
        assert response.status_code == 415, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert content_type.split(";")[0] in response.json()["detail"]
    untyped = await client.post(path, content=body, headers=AUTH)  # no Content-Type at all
    assert untyped.status_code == 415 and "without a Content-Type" in untyped.json()["detail"]
    as_json = await client.post("/schedule-message", content=body,
                                headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert as_json.status_code == 201, as_json.text


async def test_a_send_at_with_microseconds_is_answered_as_a_read_shows_it(client: httpx.AsyncClient) -> None:
    created = await client.post("/schedule-message", json={**SEED, "send_at": "2025-06-21T17:00:00.123456Z"},
                                headers=AUTH)
    assert created.status_code == 201, created.text
    shown = (await client.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)).json()
    # Rounded up to the millisecond the stores keep: never sent before the instant asked for.
    assert created.json()["send_at"] == created.json()["next_run_at"] == "2025-06-21T17:00:00.124Z"
    assert (shown["send_at"], shown["next_run_at"]) == (created.json()["send_at"], created.json()["next_run_at"])


async def test_send_at_may_end_in_a_lowercase_z_as_rfc_3339_allows(client: httpx.AsyncClient) -> None:
    created = await client.post("/schedule-message", json={**SEED, "send_at": "2025-06-21T17:00:00z"}, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["send_at"] == "2025-06-21T17:00:00.000Z"


async def test_idempotency_key_replays_the_first_schedule(client: httpx.AsyncClient) -> None:
    headers = {**AUTH, "Idempotency-Key": "order-42"}
    first = await client.post("/schedule-message", json=SEED, headers=headers)
    second = await client.post("/schedule-message", json=SEED, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    listed = await client.get("/v1/schedules", headers=AUTH)
    assert len(listed.json()["items"]) == 1


async def test_a_non_ascii_idempotency_key_is_shown_as_written_and_still_replays(client: httpx.AsyncClient) -> None:
    headers = {**AUTH, "Idempotency-Key": "pedido-ção".encode()}  # its UTF-8 bytes, as curl sends them
    first = await client.post("/schedule-message", json=SEED, headers=headers)
    assert first.status_code == 201 and first.json()["idempotency_key"] == "pedido-ção"
    replay = await client.post("/schedule-message", json=SEED, headers=headers)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    latin = await client.post("/schedule-message", json={**SEED, "to": "5521988887777"},
                              headers={**AUTH, "Idempotency-Key": "pedido-\xe7".encode("latin-1")})
    assert latin.status_code == 201 and latin.json()["idempotency_key"] == "pedido-ç"  # no UTF-8: as it came


async def test_a_non_ascii_key_is_one_key_however_it_is_sent(client: httpx.AsyncClient) -> None:
    """The header's UTF-8 bytes (curl), its Latin-1 bytes (requests, Node) and a batch item's
    idempotency_key are the same key: a retry by any of them replays the first schedule."""
    request = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
               "schedule": "once @ 2025-06-22 10:00", "timezone": "America/Sao_Paulo"}
    first = await client.post("/v1/schedules", json=request,
                              headers={**AUTH, "Idempotency-Key": "lembrete-joão".encode()})
    assert first.status_code == 201, first.text
    latin = await client.post("/v1/schedules", json=request,
                              headers={**AUTH, "Idempotency-Key": "lembrete-joão".encode("latin-1")})
    assert latin.status_code == 200 and latin.json()["id"] == first.json()["id"]
    batch = await client.post("/v1/schedules:batch", json={"schedules": [{**request, "idempotency_key": "lembrete-joão"}]},
                              headers=AUTH)
    assert batch.status_code == 200, batch.text
    assert batch.json()["results"][0]["status"] == 200 and batch.json()["results"][0]["id"] == first.json()["id"]
    # A key stored by an earlier version as its UTF-8 bytes read one by one (pedido-Ã§Ã£o) still replays.
    other = {**request, "task": {**request["task"], "to": "5521988887777"}}
    older = await client.post("/v1/schedules:batch", json={"schedules": [
        {**other, "idempotency_key": "pedido-ção".encode().decode("latin-1")}]}, headers=AUTH)
    assert older.status_code == 200, older.text
    assert older.json()["results"][0]["status"] == 201
    retried = await client.post("/v1/schedules", json=other,
                                headers={**AUTH, "Idempotency-Key": "pedido-ção".encode()})
    assert retried.status_code == 200 and retried.json()["id"] == older.json()["results"][0]["id"]
    listed = await client.get("/v1/schedules", headers=AUTH)
    assert len(listed.json()["items"]) == 2


async def test_an_idempotency_key_replays_only_the_request_that_created_it(client: httpx.AsyncClient) -> None:
    headers = {**AUTH, "Idempotency-Key": "order-43"}
    first = await client.post("/schedule-message", json=SEED, headers=headers)
    assert first.status_code == 201
    # The same request written differently (key order, spacing, a default spelt out) is a replay.
    same = json.dumps({"language": None, **dict(reversed(list(SEED.items())))}, indent=2)
    replay = await client.post("/schedule-message", content=same,
                               headers={**headers, "Content-Type": "application/json"})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    other = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "daily at 09:00"}
    for path, body in [("/schedule-message", {**SEED, "to": "5521988887777"}),
                       ("/schedule-message", {**SEED, "params": ["Outro", "amanhã"]}),
                       ("/v1/schedules", other)]:
        refused = await client.post(path, json=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["Idempotency-Key"]
    listed = await client.get("/v1/schedules", headers=AUTH)
    assert [s["id"] for s in listed.json()["items"]] == [first.json()["id"]]
    empty = await client.post("/schedule-message", json=SEED, headers={**AUTH, "Idempotency-Key": ""})
    assert empty.status_code == 422, empty.text


def test_a_field_added_later_with_a_default_keeps_a_request_s_digest() -> None:
    """A client retrying across an upgrade that added an optional field is still replaying."""
    class Before(BaseModel):
        to: str
        params: list[str] = []

    class After(Before):
        priority: str | None = None

    sent = {"to": "5511999999999", "params": ["Ana"]}
    assert request_digest("/x", Before(**sent)) == request_digest("/x", After(**sent))
    assert request_digest("/x", Before(**sent)) != request_digest("/y", Before(**sent))
    assert request_digest("/x", Before(**sent)) != request_digest("/x", After(**sent, priority="high"))


def test_reading_send_by_as_send_at_is_read_keeps_a_request_s_digest() -> None:
    """A client retrying across the upgrade that read send_by as ISO text only is still replaying."""
    class Before(BaseModel):
        send_by: datetime | None = None  # pydantic's own reading, as before

    class After(BaseModel):
        send_by: Deadline = None

    for text in ["2025-06-22T15:00:00Z", "2025-06-22T15:00:00+00:00", "2025-06-22T15:00:00.5-03:00",
                 "2025-06-22 15:00:00z", "2025-06-22T15:00:00.123456789Z", "2025-06-22T15:00:00", None]:
        sent = json.dumps({"send_by": text})
        assert request_digest("/x", Before.model_validate_json(sent)) == request_digest(
            "/x", After.model_validate_json(sent)), text


async def test_cancel_then_conflict_after_sending(client: httpx.AsyncClient, container: Container,
                                                  clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    cancelled = await client.delete(f"/v1/schedules/{created['id']}", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.delete(f"/v1/schedules/{created['id']}", headers=AUTH)
    assert again.status_code == 200

    sent = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    clock.set(NOW + timedelta(hours=2))
    assert await container.dispatcher().dispatch_due() == 1
    await container.dispatcher().drain(5)
    conflict = await client.delete(f"/v1/schedules/{sent['id']}", headers=AUTH)
    assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/problem+json"
    missing = await client.get("/v1/schedules/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["title"] == "Not found"


async def test_a_waiting_message_is_moved_and_sent_at_its_new_time_only(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()  # 14:00 in São Paulo
    path = f"/v1/schedules/{created['id']}"
    moved = await client.patch(path, json={"send_at": "2025-06-21T15:30:00-03:00"}, headers=AUTH)
    assert moved.status_code == 200, moved.text
    shown = moved.json()
    assert shown["send_at"] == shown["next_run_at"] == "2025-06-21T18:30:00.000Z"
    assert shown["send_at_original"] == "2025-06-21T15:30:00-03:00" and shown["status"] == "scheduled"
    assert shown["schedule"] == "once @ 2025-06-21T18:30:00+00:00"
    assert (await client.get(path, headers=AUTH)).json() == shown
    events = (await client.get(f"{path}/events", headers=AUTH)).json()["items"]
    assert events[-1]["type"] == "scheduled"
    assert events[-1]["data"]["rescheduled_from"] == "2025-06-21T17:00:00.000Z"
    dispatcher, sender = container.dispatcher(), container.sender()
    clock.set(NOW + timedelta(hours=1, minutes=5))  # the old time has passed: nothing is due
    assert await dispatcher.dispatch_due() == 0
    clock.set(NOW + timedelta(hours=2, minutes=30))
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert len(sender.sent) == 1
    late = await client.patch(path, json={"send_at": "2025-06-21T19:00:00-03:00"}, headers=AUTH)
    assert late.status_code == 409 and late.headers["content-type"] == "application/problem+json"
    assert "succeeded" in late.json()["detail"]


async def test_a_move_to_the_time_a_schedule_has_already_is_answered_as_it_is(client: httpx.AsyncClient) -> None:
    # A client's retry of a PATCH whose answer it lost: no second event, webhook or occurrence.
    message = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    daily = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "daily at 09:00"})).json()

    async def events(schedule: dict[str, str]) -> list[dict[str, object]]:
        return (await client.get(f"/v1/schedules/{schedule['id']}/events", headers=AUTH)).json()["items"]

    shown = {}
    for schedule, change in [(message, {"send_at": "2025-06-21T15:30:00-03:00"}),
                             (daily, {"schedule": "every day at 10:30", "timezone": "America/Sao_Paulo"})]:
        path = f"/v1/schedules/{schedule['id']}"
        moved = await client.patch(path, json=change, headers=AUTH)
        assert moved.status_code == 200, moved.text
        before = await events(schedule)
        again = await client.patch(path, json=change, headers=AUTH)
        assert again.status_code == 200 and again.json() == moved.json()
        assert await events(schedule) == before
        shown[schedule["id"]] = moved.json()
    path = f"/v1/schedules/{daily['id']}"
    same_rule = await client.patch(path, json={"schedule": "daily at 10:30"}, headers=AUTH)  # however spelt
    assert same_rule.json() == shown[daily["id"]]
    before = await events(daily)
    elsewhere = await client.patch(path, json={"schedule": "daily at 10:30", "timezone": "Europe/Lisbon"}, headers=AUTH)
    assert elsewhere.json()["timezone"] == "Europe/Lisbon" and len(await events(daily)) == len(before) + 1
    before = await events(message)
    instant = await client.patch(f"/v1/schedules/{message['id']}", headers=AUTH,  # the same instant, another zone
                                 json={"send_at": "2025-06-21T18:30:00Z", "timezone": "Europe/Lisbon"})
    assert instant.json()["next_run_at"] == shown[message["id"]]["next_run_at"]
    assert instant.json()["timezone"] == "Europe/Lisbon" and len(await events(message)) == len(before) + 1


async def test_send_by_is_read_as_send_at_is_a_wall_time_in_the_request_s_zone(client: httpx.AsyncClient) -> None:
    wall = {"send_at": "2025-06-22T14:00:00", "send_by": "2025-06-22T15:00:00"}
    message = await client.post("/schedule-message", json={**SEED, **wall, "timezone": "Asia/Tokyo"}, headers=AUTH)
    assert message.status_code == 201, message.text
    assert message.json()["send_by"] == "2025-06-22T06:00:00.000Z"  # 15:00 in Tokyo
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    created = await client.post("/v1/schedules", headers=AUTH, json={
        "task": task, "schedule": "once @ 2025-06-22 14:00", "send_by": "2025-06-22T15:00:00",
        "timezone": "Europe/Lisbon"})
    assert created.status_code == 201, created.text
    assert created.json()["send_by"] == "2025-06-22T14:00:00.000Z"  # 15:00 in Lisbon (+01:00)
    default_zone = await client.post("/v1/schedules", headers=AUTH, json={  # the rule's: the default zone
        "task": task, "schedule": "once @ 2025-06-22 14:00", "send_by": "2025-06-22T15:00:00"})
    assert default_zone.json()["send_by"] == "2025-06-22T18:00:00.000Z"  # 15:00 in São Paulo
    refused = await client.post("/schedule-message", json={**SEED, "send_by": "2025-06-21T15:00:00"}, headers=AUTH)
    assert refused.status_code == 422, refused.text  # send_at has an offset: no zone to read send_by in
    assert refused.json()["errors"] == [{"field": "send_by", "message": "send_by needs an offset (e.g. "
                                         "2025-06-21T18:00:00-03:00) or a 'timezone' field"}]
    gap = await client.post("/schedule-message", headers=AUTH, json={
        **SEED, "send_at": "2026-03-08T01:00:00", "send_by": "2026-03-08T02:30:00", "timezone": "America/New_York"})
    assert gap.status_code == 422 and [e["field"] for e in gap.json()["errors"]] == ["send_by"], gap.text


@pytest.mark.parametrize(("send_by", "says"), [
    (1750600800, "not a number"),  # was read as Unix time (2025-06-22T14:00:00Z), which send_at refuses
    (1750600800000, "not a number"),  # and this one as milliseconds: pydantic guessed by size
    ("1750600800", "not an ISO-8601 date-time: '1750600800'"),  # a string of digits too
    (True, "date-time string"),
    ("tomorrow", "not an ISO-8601 date-time: 'tomorrow'"),
])
async def test_send_by_is_an_iso_date_time_as_send_at_is_never_unix_time(client: httpx.AsyncClient,
                                                                           send_by: object, says: str) -> None:
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    one_off = {"task": task, "schedule": "once @ 2025-06-22T12:00:00Z", "send_by": send_by}
    for answer in [await client.post("/schedule-message", json={**SEED, "send_by": send_by}, headers=AUTH),
                   await client.post("/v1/schedules", json=one_off, headers=AUTH)]:
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["errors"]
        assert error["field"] == "send_by" and says in error["message"], error
    batch = await client.post("/v1/schedules:batch", json={"schedules": [one_off]}, headers=AUTH)
    assert batch.status_code == 422, batch.text
    assert [e["field"] for e in batch.json()["errors"]] == ["schedules.0.send_by"]
    assert (await client.get("/v1/schedules", headers=AUTH)).json()["items"] == []


async def test_an_empty_timezone_is_refused_not_read_as_the_default(client: httpx.AsyncClient) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    for answer in [await client.post("/schedule-message", json={**SEED, "timezone": ""}, headers=AUTH),
                   await client.patch(f"/v1/schedules/{created['id']}", headers=AUTH,
                                      json={"send_at": "2025-06-21T15:30:00", "timezone": ""}),
                   await client.get("/v1/rules/preview", params={"schedule": "daily at 09:00", "timezone": ""},
                                    headers=AUTH)]:
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == ["timezone"], answer.json()


async def test_bad_reschedules_are_clear_errors(client: httpx.AsyncClient) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    path = f"/v1/schedules/{created['id']}"
    for body, field in [({"send_at": "tomorrow"}, "send_at"),
                        ({"send_at": "2025-06-21T15:30:00-03:00", "schedule": "once @ 2025-06-21 15:30"}, "send_at"),
                        ({}, "schedule"),
                        ({"schedule": "every day at 09:00"}, "schedule"),  # a one-off stays one
                        ({"send_at": "2025-06-21T15:30:00-03:00", "to": "5511888888888"}, "to"),
                        ({"send_at": "2020-01-01T00:00:00Z"}, "send_at")]:
        answer = await client.patch(path, json=body, headers=AUTH)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == [field], (body, answer.json())
    assert (await client.get(path, headers=AUTH)).json()["send_at"] == created["send_at"]  # unchanged
    untyped = await client.patch(path, content=b'{"send_at": "2025-06-21T15:30:00-03:00"}', headers=AUTH)
    assert untyped.status_code == 415
    missing = await client.patch("/v1/schedules/nope", json={"schedule": "once @ 2025-06-21 15:30"}, headers=AUTH)
    assert missing.status_code == 404
    assert (await client.patch(path, json={"send_at": "2025-06-21T15:30:00-03:00"})).status_code == 401


async def test_a_waiting_schedule_takes_another_task_which_its_next_run_sends(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()  # due at 17:00 UTC
    path = f"/v1/schedules/{created['id']}"
    task = {"type": "whatsapp.template", "to": "5511888888888", "body": "Oi, {{1}}: chega {{2}}.",
            "templateName": "aviso_entrega", "params": ["Ana", "amanhã"]}
    changed = await client.patch(path, json={"task": task}, headers=AUTH)
    assert changed.status_code == 200, changed.text
    shown = changed.json()
    assert shown["rendered_body"] == "Oi, Ana: chega amanhã." and shown["templateName"] == "aviso_entrega"
    assert shown["to"] == "5511888888888" and shown["params"] == ["Ana", "amanhã"]
    assert shown["next_run_at"] == created["next_run_at"] and shown["status"] == "scheduled"  # its time stays
    events = (await client.get(f"{path}/events", headers=AUTH)).json()["items"]
    assert [e["type"] for e in events] == ["scheduled", "scheduled"]
    assert events[-1]["data"] == {"next_run_at": "2025-06-21T17:00:00.000Z", "task_changed": "true",
                                  **audit(TOKEN, changed)}
    again = await client.patch(path, json={"task": task}, headers=AUTH)  # already so: as it is, no event
    assert again.status_code == 200 and again.json() == shown
    assert len((await client.get(f"{path}/events", headers=AUTH)).json()["items"]) == 2

    for body, field in [({"task": {"type": "whatsapp.text", "to": "5511888888888", "body": "Oi"}}, "task.type"),
                        ({"task": task, "timezone": "Asia/Tokyo"}, "timezone"),  # a zone goes with a new time
                        ({"task": {**task, "params": ["Ana"]}}, "task.params"),
                        ({"task": {**task, "to": "12"}}, "task.to")]:
        refused = await client.patch(path, json=body, headers=AUTH)
        assert refused.status_code == 422, (body, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == [field], (body, refused.json())
    both = await client.patch(path, headers=AUTH, json={"send_at": "2025-06-21T15:30:00-03:00",
                                                        "task": {**task, "params": ["Bia", "hoje"]}})
    assert both.status_code == 200, both.text
    assert both.json()["next_run_at"] == "2025-06-21T18:30:00.000Z" and both.json()["rendered_body"] == "Oi, Bia: chega hoje."
    events = (await client.get(f"{path}/events", headers=AUTH)).json()["items"]
    assert events[-1]["data"] == {"next_run_at": "2025-06-21T18:30:00.000Z", "task_changed": "true",
                                  "rescheduled_from": "2025-06-21T17:00:00.000Z", **audit(TOKEN, both)}

    dispatcher, sender = container.dispatcher(), container.sender()
    sender.fail_with(DeliveryError("131000", "try again", retryable=True))
    clock.set(NOW + timedelta(hours=2, minutes=30))
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    waiting = (await client.get(path, headers=AUTH)).json()
    assert waiting["status"] == "scheduled" and len(waiting["attempts"]) == 1  # to retry, under the same key
    retrying = await client.patch(path, json={"task": task}, headers=AUTH)
    assert retrying.status_code == 409, retrying.text
    assert "waiting to retry (attempt 1 failed)" in retrying.json()["detail"]
    clock.set(NOW + timedelta(hours=3))
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert [(m.to, m.template_name, m.params) for m in sender.sent] == [("5511888888888", "aviso_entrega", ("Bia", "hoje"))]
    ended = await client.patch(path, json={"task": task}, headers=AUTH)
    assert ended.status_code == 409 and "succeeded" in ended.json()["detail"]


async def test_a_recurring_schedule_waiting_to_retry_takes_another_task_when_moved_too(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    created = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": task, "schedule": "every day at 14:00", "timezone": "America/Sao_Paulo"})).json()  # 17:00 UTC
    path = f"/v1/schedules/{created['id']}"
    dispatcher, sender = container.dispatcher(), container.sender()
    sender.fail_with(DeliveryError("131000", "try again", retryable=True))
    clock.set(NOW + timedelta(hours=1))
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    alone = await client.patch(path, json={"task": {**task, "body": "Olá"}}, headers=AUTH)
    assert alone.status_code == 409 and "or move it at the same time" in alone.json()["detail"], alone.text
    moved = await client.patch(path, headers=AUTH, json={"schedule": "every day at 15:00",
                                                         "task": {**task, "body": "Olá"}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["next_run_at"] == "2025-06-21T18:00:00.000Z" and moved.json()["body"] == "Olá"
    clock.set(NOW + timedelta(hours=2))
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert [m.body for m in sender.sent] == ["Olá"]  # the new task, not the retry of the old one
    shown = (await client.get(path, headers=AUTH)).json()
    assert [(a["scheduled_for"], a["outcome"]) for a in shown["attempts"]] == [
        ("2025-06-21T17:00:00.000Z", "retrying"), ("2025-06-21T18:00:00.000Z", "succeeded")]


async def test_all_of_a_user_s_live_schedules_are_cancelled_at_once(client: httpx.AsyncClient) -> None:
    mine = [(await client.post("/schedule-message", json=SEED, headers=AUTH)).json()["id"] for _ in range(3)]
    theirs = (await client.post("/schedule-message", json={**SEED, "userId": "someone-else"}, headers=AUTH)).json()
    answer = await client.post("/v1/schedules:cancel", json={"userId": SEED["userId"]}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["userId"] == SEED["userId"] and sorted(answer.json()["cancelled"]) == sorted(mine)
    assert answer.json()["refused"] == []
    for schedule_id in mine:
        shown = (await client.get(f"/v1/schedules/{schedule_id}", headers=AUTH)).json()
        assert shown["status"] == "cancelled"
    assert (await client.get(f"/v1/schedules/{theirs['id']}", headers=AUTH)).json()["status"] == "scheduled"
    again = await client.post("/v1/schedules:cancel", json={"userId": SEED["userId"]}, headers=AUTH)
    assert again.json()["cancelled"] == []
    for body in ({}, {"userId": ""}, {"userId": "x", "status": "scheduled"}):
        refused = await client.post("/v1/schedules:cancel", json=body, headers=AUTH)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json", body
    assert (await client.post("/v1/schedules:cancel", content=b'{"userId": "x"}', headers=AUTH)).status_code == 415
    assert (await client.post("/v1/schedules:cancel", json={"userId": "x"})).status_code == 401


async def test_a_recurring_schedule_moves_to_another_rule(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "every day at 09:00", "timezone": "America/Sao_Paulo"})).json()
    moved = await client.patch(f"/v1/schedules/{created['id']}", headers=AUTH,
                               json={"schedule": "every monday at 10:00", "timezone": "Europe/Lisbon"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["schedule"] == "weekly on monday at 10:00" and moved.json()["timezone"] == "Europe/Lisbon"
    assert moved.json()["next_run_at"] == "2025-06-23T09:00:00.000Z"  # Monday 10:00 in Lisbon (+01:00)


async def test_a_paused_message_waits_until_it_is_resumed(client: httpx.AsyncClient, container: Container,
                                                         clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()  # due at 17:00 UTC
    path = f"/v1/schedules/{created['id']}"
    paused = await client.post(f"{path}/pause", headers=AUTH)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["next_run_at"] == "2025-06-21T17:00:00.000Z"
    assert (await client.post(f"{path}/pause", headers=AUTH)).json() == paused.json()  # as it was
    listed = (await client.get("/v1/schedules?status=paused", headers=AUTH)).json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    dispatcher, sender = container.dispatcher(), container.sender()
    clock.set(NOW + timedelta(hours=1, minutes=10))  # ten minutes past its time
    assert await dispatcher.dispatch_due() == 0

    resumed = await client.post(f"{path}/resume", headers=AUTH)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "scheduled" and resumed.json()["next_run_at"] == "2025-06-21T17:00:00.000Z"
    assert await dispatcher.dispatch_due() == 1  # late, within its hour of grace
    await dispatcher.drain(5)
    assert len(sender.sent) == 1
    events = [e["type"] for e in (await client.get(f"{path}/events", headers=AUTH)).json()["items"]]
    assert events == ["scheduled", "paused", "resumed", "started", "succeeded"]
    for action in ("pause", "resume"):
        ended = await client.post(f"{path}/{action}", headers=AUTH)
        assert ended.status_code == 409 and ended.headers["content-type"] == "application/problem+json"
        assert "succeeded" in ended.json()["detail"], ended.json()
        assert (await client.post(f"/v1/schedules/nope/{action}", headers=AUTH)).status_code == 404
        assert (await client.post(f"{path}/{action}")).status_code == 401


async def test_a_message_is_run_now_instead_of_at_its_time(client: httpx.AsyncClient, container: Container,
                                                          clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()  # due in an hour
    path = f"/v1/schedules/{created['id']}"
    ran = await client.post(f"{path}/run", headers=AUTH)
    assert ran.status_code == 200, ran.text
    assert ran.json()["next_run_at"] == ran.json()["send_at"] == "2025-06-21T16:00:00.000Z"  # NOW
    assert ran.json()["schedule"] == "once @ 2025-06-21T16:00:00+00:00"
    assert ran.json()["send_at_original"] == SEED["send_at"] == created["send_at_original"]  # as sent
    dispatcher, sender = container.dispatcher(), container.sender()
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert len(sender.sent) == 1
    events = (await client.get(f"{path}/events", headers=AUTH)).json()["items"]
    assert events[1]["type"] == "scheduled" and events[1]["data"]["run_now_from"] == "2025-06-21T17:00:00.000Z"
    again = await client.post(f"{path}/run", headers=AUTH)
    assert again.status_code == 409 and "succeeded" in again.json()["detail"]
    assert (await client.post("/v1/schedules/nope/run", headers=AUTH)).status_code == 404


async def test_a_run_now_after_the_scheduler_was_down_past_the_grace_runs_instead_of_ending_missed(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    """A message due an hour ago and a half (the scheduler down), past its hour of misfire grace:
    Run now was answered 200 "as it is" and the claim then ended it missed, unsent. It is due now
    and sent; one past its send_by is a 409 saying so, and stays as it was."""
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()  # due in an hour
    deadline = (await client.post("/schedule-message", headers=AUTH, json={
        **SEED, "send_by": "2025-06-21T14:10:00-03:00"})).json()
    clock.set(NOW + timedelta(hours=2, minutes=30))
    path = f"/v1/schedules/{created['id']}"
    ran = await client.post(f"{path}/run", headers=AUTH)
    assert ran.status_code == 200, ran.text
    assert ran.json()["next_run_at"] == "2025-06-21T18:30:00.000Z"  # now
    refused = await client.post(f"/v1/schedules/{deadline['id']}/run", headers=AUTH)
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert "past its send_by deadline 2025-06-21T17:10:00.000Z" in refused.json()["detail"], refused.json()
    dispatcher, sender = container.dispatcher(), container.sender()
    assert await dispatcher.dispatch_due() == 2
    await dispatcher.drain(5)
    assert len(sender.sent) == 1
    assert (await client.get(path, headers=AUTH)).json()["status"] == "succeeded"
    assert (await client.get(f"/v1/schedules/{deadline['id']}", headers=AUTH)).json()["status"] == "missed"


async def test_a_run_now_repeated_with_its_idempotency_key_runs_once(client: httpx.AsyncClient,
                                                                     container: Container, clock: FixedClock) -> None:
    created = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "daily at 09:00"})).json()
    path = f"/v1/schedules/{created['id']}"
    dispatcher, sender = container.dispatcher(), container.sender()
    key = {**AUTH, "Idempotency-Key": "run-1"}
    ran = await client.post(f"{path}/run", headers=key)
    assert ran.status_code == 200 and ran.json()["next_run_at"] == "2025-06-21T16:00:00.000Z"  # NOW
    assert (await client.post(f"{path}/run", headers=key)).json() == ran.json()  # a repeat: as it is
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert len(sender.sent) == 1
    clock.set(NOW + timedelta(minutes=1))
    after = await client.post(f"{path}/run", headers=key)  # the run ended since: still not again
    assert after.status_code == 200 and after.json()["next_run_at"] == created["next_run_at"]
    assert await dispatcher.dispatch_due() == 0 and len(sender.sent) == 1
    events = [e["type"] for e in (await client.get(f"{path}/events", headers=AUTH)).json()["items"]]
    assert events == ["scheduled", "scheduled", "started", "succeeded"]  # one run now, one run

    other = await client.post(f"{path}/run", headers={**AUTH, "Idempotency-Key": "run-2"})  # a new request
    assert other.json()["next_run_at"] == "2025-06-21T16:01:00.000Z"
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert len(sender.sent) == 2
    clock.set(NOW + timedelta(minutes=2))
    unkeyed = [await client.post(f"{path}/run", headers=AUTH) for _ in range(2)]  # due already: as it is
    assert [r.json()["next_run_at"] for r in unkeyed] == ["2025-06-21T16:02:00.000Z"] * 2
    assert (await client.post(f"{path}/run", headers={**AUTH, "Idempotency-Key": ""})).status_code == 422


async def test_pause_after_failures_is_taken_for_a_recurring_schedule_only(client: httpx.AsyncClient) -> None:
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    created = await client.post("/v1/schedules", headers=AUTH, json={
        "task": task, "schedule": "every day at 09:00", "pause_after_failures": 3})
    assert created.status_code == 201, created.text
    assert (created.json()["pause_after_failures"], created.json()["failed_in_a_row"]) == (3, 0)
    for change in ({"schedule": "once @ 2025-06-22 09:00"}, {"pause_after_failures": 0},
                   {"pause_after_failures": "3"}, {"pause_after_failures": 2.5}):
        refused = await client.post("/v1/schedules", headers=AUTH, json={
            "task": task, "schedule": "every day at 09:00", "pause_after_failures": 3, **change})
        assert refused.status_code == 422, (change, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["pause_after_failures"], refused.json()


async def test_a_run_time_limit_is_taken_and_shown(client: httpx.AsyncClient) -> None:
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    created = await client.post("/v1/schedules", headers=AUTH, json={
        "task": task, "schedule": "every day at 09:00", "run_timeout_seconds": 90})
    assert created.status_code == 201, created.text
    assert created.json()["run_timeout_seconds"] == 90.0
    shown = await client.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)
    assert shown.json()["run_timeout_seconds"] == 90.0
    default = await client.post("/v1/schedules", headers=AUTH, json={"task": task, "schedule": "daily at 10:00"})
    assert default.json()["run_timeout_seconds"] is None  # the service's limit
    for refused_value in (0, -5, 86_400.5, "90", True, [90]):
        refused = await client.post("/v1/schedules", headers=AUTH, json={
            "task": task, "schedule": "every day at 09:00", "run_timeout_seconds": refused_value})
        assert refused.status_code == 422, (refused_value, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["run_timeout_seconds"], refused.json()


async def test_a_waiting_schedules_run_time_limit_is_changed_by_patch(client: httpx.AsyncClient,
                                                                       container: Container) -> None:
    created = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "daily at 09:00"})).json()
    path = f"/v1/schedules/{created['id']}"

    async def event_data() -> list[dict[str, str]]:
        return [e["data"] for e in (await client.get(f"{path}/events", headers=AUTH)).json()["items"]]

    changed = await client.patch(path, headers=AUTH, json={"run_timeout_seconds": 30})
    assert changed.status_code == 200, changed.text
    assert changed.json()["run_timeout_seconds"] == 30.0 and changed.json()["next_run_at"] == created["next_run_at"]
    assert (await event_data())[-1] == {"run_timeout_changed": "true", "next_run_at": created["next_run_at"],
                                        **audit(TOKEN, changed)}
    again = await client.patch(path, headers=AUTH, json={"run_timeout_seconds": 30.0})  # what it has: as it is
    assert again.json() == changed.json() and len(await event_data()) == 2
    both = await client.patch(path, headers=AUTH, json={"run_timeout_seconds": 45, "labels": {"k": "v"}})
    assert (both.json()["run_timeout_seconds"], both.json()["labels"]) == (45.0, {"k": "v"})
    assert (await event_data())[-1] == {"labels_changed": "true", "run_timeout_changed": "true",
                                        "next_run_at": created["next_run_at"], **audit(TOKEN, both)}
    moved = await client.patch(path, headers=AUTH, json={"run_timeout_seconds": 60, "schedule": "daily at 10:00"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["run_timeout_seconds"] == 60.0 and (await event_data())[-1]["run_timeout_changed"] == "true"
    for refused_value in (0, 86_401, "60"):
        refused = await client.patch(path, headers=AUTH, json={"run_timeout_seconds": refused_value})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "run_timeout_seconds"
    stored = await container.repository().get(created["id"])
    assert stored is not None and stored.run_timeout == timedelta(seconds=60)  # what the dispatcher reads


async def test_a_running_schedule_shows_who_runs_it(client: httpx.AsyncClient, container: Container,
                                                   clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    assert (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()["running"] is None
    clock.set(NOW + timedelta(hours=1))
    [claimed] = await container.repository().claim_due(now=clock.now(), owner="replica-7",
                                                       lease_for=timedelta(seconds=30), limit=1)
    shown = (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()
    assert shown["status"] == "running" and shown["attempts"] == []
    assert shown["running"] == {"owner": "replica-7", "claimed_at": "2025-06-21T17:00:00.000Z",
                                "until": "2025-06-21T17:00:30.000Z", "taken_over_from": None}


async def test_due_message_is_sent_and_shows_succeeded(client: httpx.AsyncClient, container: Container,
                                                       clock: FixedClock) -> None:
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    stop = asyncio.Event()
    engine = asyncio.create_task(container.engine().run(stop))
    await asyncio.sleep(0.1)
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    assert sender.sent == []  # not due yet
    clock.set(NOW + timedelta(hours=1))
    try:
        await until(lambda: bool(sender.sent))
    finally:
        stop.set()
        await engine
    [message] = sender.sent
    assert message.template_name == "notificacao_entrega" and message.params == ("Leandro", "2 dias úteis")
    shown = (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()
    assert shown["status"] == "succeeded"
    assert shown["result"]["wamid"] == "wamid.fake.1"
    assert [a["outcome"] for a in shown["attempts"]] == ["succeeded"]


async def test_healthcheck_reports_the_store(client: httpx.AsyncClient, clock: FixedClock) -> None:
    ok = await client.get("/healthcheck")
    assert ok.status_code == 200 and ok.json()["store"] == "ok"

    down_app = make_container(clock, repository=DownStore())
    transport = httpx.ASGITransport(app=down_app.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        down = await http.get("/healthcheck")
    assert down.status_code == 503
    assert down.json() == {"status": "degraded", "alive": True, "store": "unavailable", "version": cronjob.__version__}


async def test_schedules_can_be_listed_by_task_type(client: httpx.AsyncClient, clock: FixedClock) -> None:
    seed = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    clock.advance(timedelta(seconds=1))  # newest first: created a second apart
    text = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "every day at 09:00"})).json()

    async def listed(**params: object) -> list[str]:
        answer = await client.get("/v1/schedules", params=params, headers=AUTH)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert await listed() == [text["id"], seed["id"]]
    assert await listed(type="whatsapp.text") == [text["id"]]
    assert await listed(type=["whatsapp.text", "whatsapp.template"]) == [text["id"], seed["id"]]
    assert await listed(type="email") == []
    answer = await client.get("/v1/schedules", params={"type": ""}, headers=AUTH)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"


async def test_schedules_can_be_listed_by_user(client: httpx.AsyncClient, container: Container,
                                               clock: FixedClock) -> None:
    seed = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()  # userId abc123
    clock.advance(timedelta(seconds=1))
    ana = (await client.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "every day at 09:00", "userId": "ana"})).json()
    clock.advance(timedelta(seconds=1))
    anyone = (await client.post("/schedule-message", json={**SEED, "userId": None}, headers=AUTH)).json()

    async def listed(**params: object) -> list[str]:
        answer = await client.get("/v1/schedules", params=params, headers=AUTH)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert await listed() == [anyone["id"], ana["id"], seed["id"]]
    assert await listed(userId="abc123") == [seed["id"]]
    assert await listed(userId="ana", type="whatsapp.text", status="scheduled") == [ana["id"]]
    assert await listed(userId="ana", type="whatsapp.template") == []
    assert await listed(userId="nobody") == []
    # An empty userId is refused now; one an earlier version stored is listed by it exactly: not "anyone's".
    empty = one_off(datetime(2025, 6, 21, 17, 0, tzinfo=UTC), now=NOW, user_id="")
    await container.repository().add(empty)
    assert await listed(userId="") == [empty.id]
    for bad in ({"userId": "x" * 257}, {"userId": ["ana", "abc123"]}, {"user_id": "ana"}):
        answer = await client.get("/v1/schedules", params=bad, headers=AUTH)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


async def test_openapi_describes_the_routes_and_bearer_auth(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/schedule-message", "/v1/schedules/{schedule_id}", "/healthcheck"} <= set(spec["paths"])
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    example = spec["components"]["schemas"]["ScheduleMessageRequest"]["examples"][0]
    # The seed's payload, at a time still ahead (the seed's own 2025 date is past: "Try it out"
    # in /docs would get a 422 for it).
    assert example == {**SEED, "send_at": "2030-06-21T14:00:00-03:00"}
    tried = await client.post("/schedule-message", json=example, headers=AUTH)
    assert tried.status_code == 201, tried.text
    assert tried.json()["send_at"] == "2030-06-21T17:00:00.000Z"
    # Every model under a name of its own: two classes of one name would both be renamed after
    # their modules (``cronjob_adapters__web__...``), which is what a generated client calls them.
    assert not [name for name in spec["components"]["schemas"] if "__" in name]


async def test_recurring_schedules_through_the_api(client: httpx.AsyncClient) -> None:
    body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Bom dia, {{1}}!", "params": ["Ana"]},
            "schedule": "every monday at 09:00", "timezone": "America/Sao_Paulo", "coalesce": True}
    created = await client.post("/v1/schedules", json=body, headers={**AUTH, "Idempotency-Key": "weekly-ana"})
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["type"] == "whatsapp.text" and shown["schedule"] == "weekly on monday at 09:00"
    assert shown["next_run_at"] == "2025-06-23T12:00:00.000Z"  # Monday 09:00 in São Paulo (-03:00)
    assert shown["rendered_body"] == "Bom dia, Ana!"
    assert shown["misfire"] == {"grace_seconds": None, "coalesce": True}
    again = await client.post("/v1/schedules", json=body, headers={**AUTH, "Idempotency-Key": "weekly-ana"})
    assert again.status_code == 200 and again.json()["id"] == shown["id"]

    template = {"task": {"type": "whatsapp.template", "to": "5511999999999", "body": "{{1}}",
                         "templateName": "lembrete", "params": ["x"]},
                "schedule": "once @ 2025-06-21 18:00", "misfire_grace_seconds": 600}
    one_off = await client.post("/v1/schedules", json=template, headers=AUTH)
    assert one_off.status_code == 201
    assert one_off.json()["next_run_at"] == "2025-06-21T21:00:00.000Z"
    assert one_off.json()["misfire"]["grace_seconds"] == 600


@pytest.mark.parametrize(("token", "field"), [("NaN", "misfire_grace_seconds"), ("Infinity", "retry.max_delay_seconds")])
async def test_a_number_that_is_not_finite_is_named_as_such(client: httpx.AsyncClient, token: str, field: str) -> None:
    """Python's JSON reader takes NaN and Infinity: refused as what they are, not as "too large"."""
    text = json.dumps({**SEED, "send_at": "2030-06-21T14:00:00-03:00"})[:-1]
    text += f', "misfire_grace_seconds": {token}}}' if field == "misfire_grace_seconds" else \
        f', "retry": {{"max_delay_seconds": {token}}}}}'
    response = await client.post("/schedule-message", content=text,
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "finite" in errors[field], errors


@pytest.mark.parametrize("rule", ["every 5 seconds", "every 5 seconds from 2025-06-21T14:00:00.123456-03:00"])
async def test_each_occurrence_of_an_interval_runs_once_whatever_the_clock_s_microseconds(
        tmp_path: Path, rule: str) -> None:
    """The stores keep milliseconds: an anchor (given, or the creation time) with microseconds
    once made every occurrence due again after its own run, forever, without coalescing."""
    clock = FixedClock(NOW + timedelta(microseconds=865_810))
    container = make_container(clock, data_dir=str(tmp_path), store="sqlite")
    await container.repository().initialize()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
            body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
                    "schedule": rule, "coalesce": False}
            created = await http.post("/v1/schedules", json=body, headers=AUTH)
            assert created.status_code == 201, created.text
            first = datetime.fromisoformat(created.json()["next_run_at"])
            dispatcher = container.dispatcher()
            clock.set(first + timedelta(seconds=12))  # three occurrences due, each to run once
            runs = 0
            while await dispatcher.dispatch_due():
                await dispatcher.drain(5)
                runs += 1
                assert runs <= 3, "an occurrence ran again"
            shown = (await http.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)).json()
            assert [datetime.fromisoformat(a["scheduled_for"]) for a in shown["attempts"]] == [
                first + timedelta(seconds=5 * k) for k in range(3)]
            assert datetime.fromisoformat(shown["next_run_at"]) == first + timedelta(seconds=15)
            # What the creation answered is what a read shows, to the millisecond the store keeps.
            assert shown["created_at"] == created.json()["created_at"]
            assert shown["schedule"] == created.json()["schedule"]
    finally:
        await container.repository().close()


async def test_a_rule_with_from_and_until_runs_within_them_then_ends_with_its_last_run(tmp_path: Path) -> None:
    """``every 5 seconds until <end>``, through the SQLite store (which keeps the rule as text
    and parses it back): the occurrences up to the end (inclusive) run, each once; then the
    schedule ends with its last run's outcome. A rule that ended already is a 422 saying so."""
    clock = FixedClock(NOW)
    container = make_container(clock, data_dir=str(tmp_path), store="sqlite")
    await container.repository().initialize()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
            body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
                    "schedule": "every 5 seconds until 2025-06-21 13:00:10", "timezone": "America/Sao_Paulo"}
            created = await http.post("/v1/schedules", json=body, headers=AUTH)
            assert created.status_code == 201, created.text
            shown = created.json()
            assert shown["schedule"] == "every 5 seconds from 2025-06-21T16:00:00+00:00 until 2025-06-21T16:00:10+00:00"
            assert shown["next_run_at"] == "2025-06-21T16:00:05.000Z"
            dispatcher = container.dispatcher()
            for second in (5, 10, 15, 20):
                clock.set(NOW + timedelta(seconds=second))
                await dispatcher.dispatch_due()
                await dispatcher.drain(5)
            shown = (await http.get(f"/v1/schedules/{shown['id']}", headers=AUTH)).json()
            assert [a["scheduled_for"] for a in shown["attempts"]] == [
                "2025-06-21T16:00:05.000Z", "2025-06-21T16:00:10.000Z"]
            assert shown["status"] == "succeeded" and shown["next_run_at"] is None
            assert len(container.sender().sent) == 2

            later = await http.post("/v1/schedules", headers=AUTH, json={
                **body, "schedule": "every monday at 09:00 from 2025-07-07 until 2025-07-21"})
            assert later.status_code == 201, later.text
            assert later.json()["next_run_at"] == "2025-07-07T12:00:00.000Z"  # not the 23rd, 30th of June
            assert later.json()["schedule"] == ("weekly on monday at 09:00 from 2025-07-07T03:00:00+00:00 "
                                                "until 2025-07-22T02:59:59.999000+00:00")

            ended = await http.post("/v1/schedules", json={**body, "schedule": "daily at 09:00 until 2025-06-21"},
                                    headers=AUTH)  # 09:00 passed today; the rule ends tonight
            assert ended.status_code == 422, ended.text
            assert ended.json()["errors"] == [{
                "field": "schedule", "message": "'daily at 09:00 until 2025-06-21' never fires after now: it has "
                                                "no occurrence before it ends at 2025-06-22T02:59:59.999Z"}]
            for rule, why in [("daily at 09:00 until 2025-06-20", "never fires: it ended at 2025-06-21T02:59:59.999Z"),
                              ("every 10 minutes from 2025-12-31T00:00:00Z until 2025-07-04",
                               "never fires: it starts ('from', 2025-12-31T00:00:00.000Z) after it ends ('until', "
                               "2025-07-05T02:59:59.999Z)")]:
                refused = await http.get("/v1/rules/preview", params={"schedule": rule}, headers=AUTH)
                assert refused.status_code == 422 and refused.json()["errors"][0]["message"] == f"{rule!r} {why}"
    finally:
        await container.repository().close()


@pytest.mark.parametrize(
    ("extra", "grace"),
    [
        ({}, 3600.0),  # the service's default (CRONJOB_MISFIRE_GRACE_SECONDS)
        ({"coalesce": False}, 3600.0),  # coalesce means nothing to a one-off: the default stays
        ({"misfire_grace_seconds": 0}, None),  # README: 0 means always run
        ({"misfire_grace_seconds": 0, "coalesce": False}, None),
        ({"misfire_grace_seconds": 90}, 90.0),
        ({"misfire_grace_seconds": 1e-9}, 1e-6),  # tiny, not "no limit" (what 0 means)
    ],
)
async def test_a_one_off_s_misfire_grace_is_the_default_unless_it_names_one(
        client: httpx.AsyncClient, extra: dict[str, object], grace: float | None) -> None:
    body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
            "schedule": "once @ 2025-06-21 18:00", **extra}
    created = await client.post("/v1/schedules", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["misfire"]["grace_seconds"] == grace
    message = await client.post("/schedule-message", json={**SEED, **extra}, headers=AUTH)
    if "coalesce" in extra:  # not a field of a message
        assert message.status_code == 422, message.text
    else:
        assert message.status_code == 201, message.text
        assert message.json()["misfire"]["grace_seconds"] == grace


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "every 0 minutes"}, "schedule"),
        ({"schedule": "sometimes"}, "schedule"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),  # the host's zone: another instant on another replica
        ({"timezone": ""}, "timezone"),  # not the default zone, silently
        ({"task": {"type": "fax", "to": "5511999999999", "body": "x"}}, "task"),
        ({"task": {"type": "whatsapp.template", "to": "5511999999999", "body": "{{1}}", "params": ["a"]}},
         "task.templateName"),  # where it is in the request: no union tag (the task type) in the path
        ({"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "{{1}} {{2}}", "params": ["a"]}},
         "task.params"),  # where it is in the request: beside the schedule's own fields sits task
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "expected_status": [200, True]}},
         "task.expected_status.1"),  # not pydantic's name for a union member
        ({"send_by": "2025-06-21T18:00:00"}, "send_by"),
        ({"send_by": "2030-06-21T18:00:00Z"}, "send_by"),  # a deadline is for one-offs (this is daily)
        ({"coalesce": "no"}, "coalesce"),
        ({"coalesce": 0}, "coalesce"),
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "timeout_seconds": "5"}},
         "task.timeout_seconds"),
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "follow_redirects": 1}},
         "task.follow_redirects"),
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "body": "x"}},
         "task"),  # "a GET request cannot have a body": about the task as a whole
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "method": "POST", "body": 1}},
         "task.body"),  # neither text nor an object nor an array: no member names in the path
        # Beyond what MongoDB keeps (signed 64 bits): refused on every store, not a 500 on one.
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "method": "POST",
                   "body": {"n": 2**63}}},
         "task.body.n"),
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "method": "PUT",
                   "body": {"ids": [1, -(2**63) - 1]}}}, "task.body.ids.1"),
        ({"task": {"type": "http.request", "url": "https://api.example.com/x", "method": "PUT",
                   "body": [{"\x00k": 1}]}}, "task.body.0.'\\x00k'"),  # MongoDB's keys are C strings
    ],
)
async def test_bad_schedules_get_a_readable_422(client: httpx.AsyncClient, change: dict[str, object],
                                                field: str) -> None:
    body = {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
            "schedule": "daily at 09:00", **change}
    response = await client.post("/v1/schedules", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert not any(e["field"].startswith(("task.http.", "task.whatsapp.")) or "[" in e["field"]
                   or e["message"].startswith("Value error") for e in response.json()["errors"])


#: What the days of a monthly rule take, as its 422s say.
MONTH_DAYS = "a comma list of days of the month, each 1 to 31 (or 1st, 2nd, 3rd ... 31st) or last"


@pytest.mark.parametrize(("rule", "message"), [
    ("cron 0 0 31 2 *", "cron expression '0 0 31 2 *' never fires: none of its months (2) has a day 31"),
    ("0 0 30 2 *", "cron expression '0 0 30 2 *' never fires: none of its months (2) has a day 30"),
    ("cron 0 0 31 4,6,9,11 *", "cron expression '0 0 31 4,6,9,11 *' never fires: none of its months (4,6,9,11) "
                               "has a day 31"),
    ("cron 0 0 32 * *", "invalid cron expression '0 0 32 * *': bad day-of-month field '32' (it takes 1-31, L or LW; "
                        "lists, ranges and steps of them)"),
    # Monthly rules: what the days take, and a day the rule's window lacks.
    ("monthly on 32", f"the day '32' is outside 1 to 31: a monthly rule takes {MONTH_DAYS} "
                      "(the last day of every month is 'last')"),
    ("monthly on", f"a monthly rule needs its days after 'on': {MONTH_DAYS}"),
    ("monthly on 1,15,1st at 09:00",
     f"the day '1st' is named twice in '1,15,1st' (as '1' first): a monthly rule takes {MONTH_DAYS}, each once"),
    ("every month on the 1st",
     f"'the 1st' is not a day of the month in the days 'the 1st': a monthly rule takes {MONTH_DAYS}"),
    ("monthly on 3th", "'3th' is not an ordinal: write 3 or 3rd"),
    ("monthly at 09:00", f"'monthly at 09:00': a monthly rule is 'monthly' (the 1st at 00:00) or 'monthly on "
                          f"<days> [at HH:MM[:SS]]', its days {MONTH_DAYS} (a month is no fixed length of elapsed "
                          "time: there is no 'every <n> months')"),
    ("monthly on 31 from 2025-09-01 until 2025-09-30",  # September has no 31st
     "'monthly on 31 from 2025-09-01 until 2025-09-30' never fires after now: it has no occurrence before it ends "
     "at 2025-10-01T02:59:59.999Z"),
])
async def test_a_rule_that_never_fires_or_names_no_day_of_the_month_is_named_so_on_every_route(
        client: httpx.AsyncClient, rule: str, message: str) -> None:
    """cronsim's "Bad day-of-month" said a well-formed `0 0 31 2 *` was malformed; a monthly rule's
    days are refused by what is wrong with them (no day 31 in September: it never runs)."""
    await check_refused_on_every_route(client, rule, message)


async def test_every_rule_the_api_shows_it_takes_back(client: httpx.AsyncClient) -> None:
    # Kept with its bounds written out as instants, a rule grows (here from 212 to 244 characters).
    minutes = ",".join(str(m) for m in range(59))
    rule = f"cron {minutes} 9 * * * from 2031-01-01 until 2031-12-31"
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "x"}
    created = await client.post("/v1/schedules", json={"task": task, "schedule": rule}, headers=AUTH)
    assert created.status_code == 201, created.text
    kept = created.json()["schedule"]
    assert len(kept) > len(rule) and kept.endswith("until 2032-01-01T02:59:59.999000+00:00")
    preview = await client.get("/v1/rules/preview", params={"schedule": kept}, headers=AUTH)
    assert preview.status_code == 200, preview.text
    assert preview.json()["schedule"] == kept
    moved = await client.patch(f"/v1/schedules/{created.json()['id']}", json={"schedule": kept}, headers=AUTH)
    assert moved.status_code == 200, moved.text

    longer = rule.replace(" 9 * * *", f" {','.join(str(h) for h in range(24))} * * *")  # 272, kept as 304
    assert (len(rule), len(kept), len(longer)) == (212, 244, 272)
    for answer in [await client.post("/v1/schedules", json={"task": task, "schedule": longer}, headers=AUTH),
                   await client.get("/v1/rules/preview", params={"schedule": longer}, headers=AUTH)]:
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"] == [{"field": "schedule", "message": answer.json()["errors"][0]["message"]}]
        assert "characters, more than the 300 a rule may have" in answer.json()["detail"]


@pytest.mark.parametrize(("rule", "says"), [
    ("once @ 9999-12-31T23:59:59.9999Z", "the date-time after 'once @' is out of range"),  # rounded up
    ("once @ 0001-01-01T00:00:00+01:00", "the date-time after 'once @' is out of range"),  # in UTC
    ("every 10 minutes from 9999-12-31T23:59:59.9999Z", "the anchor after 'from' is out of range"),
    ("daily at 10:00 from 0001-01-01T00:00:00+01:00", "the start after 'from' is out of range"),
    ("daily at 10:00 from 9999-12-31T23:59:59.9999Z", "the start after 'from' is out of range"),
    ("daily at 10:00 until 9999-12-31T23:00:00-05:00", "the end after 'until' is out of range"),
])
async def test_a_rule_past_the_calendar_is_a_422_naming_schedule(client: httpx.AsyncClient, rule: str,
                                                                 says: str) -> None:
    # The triggers refuse such an instant by the name of their own part, which the requests have
    # not: the 422 named "at", "anchor", "from" or "until".
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    created = await client.post("/v1/schedules", json={"task": task, "schedule": "once @ 2030-01-01T00:00:00Z"},
                                headers=AUTH)
    for answer in [await client.post("/v1/schedules", json={"task": task, "schedule": rule}, headers=AUTH),
                   await client.get("/v1/rules/preview", params={"schedule": rule}, headers=AUTH),
                   await client.patch(f"/v1/schedules/{created.json()['id']}", json={"schedule": rule},
                                      headers=AUTH)]:
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"] == [{"field": "schedule", "message": answer.json()["errors"][0]["message"]}]
        assert says in answer.json()["detail"] and "9999 in UTC" in answer.json()["detail"], answer.json()


@pytest.mark.parametrize("number", [b"1e400", b"-Infinity", b"NaN"])
async def test_a_number_that_is_not_json_is_refused_at_its_place(client: httpx.AsyncClient, number: bytes) -> None:
    body = (b'{"task": {"type": "http.request", "url": "https://api.example.com/x", "method": "PUT", '
            b'"body": {"x": [1, ' + number + b']}}, "schedule": "daily at 09:00"}')
    refused = await client.post("/v1/schedules", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "task.body.x.1", "message": "infinite and NaN numbers are not JSON"}]


#: A lone surrogate, JSON's unpaired escape: valid JSON, but no Unicode text any store encodes.
LONE = rb"\ud800"


@pytest.mark.parametrize(("task", "field", "says"), [
    # A routine's args are checked by the routine's own model: its field is a string, the surrogate none.
    (b'{"type": "python", "routine": "cronjob.daily_report", "args": {"webhook_url": "https://a.example/' + LONE + b'"}}',
     "task.args.webhook_url", "unicode"),
    (b'{"type": "http.request", "url": "https://a.example/x", "method": "PUT", "body": {"x": [1, "' + LONE + b'"]}}',
     "task.body.x.1", "a lone surrogate"),
    (b'{"type": "http.request", "url": "https://a.example/x", "method": "PUT", "body": {"x": {"' + LONE + b'": 1}}}',
     "task.body.x.'\\ud800'", "a lone surrogate"),
    (b'{"type": "http.request", "url": "https://a.example/x", "method": "PUT", "body": "' + LONE + b'"}',
     "task.body", "a lone surrogate"),
])
async def test_a_lone_surrogate_in_a_task_is_refused_at_its_place(
        client: httpx.AsyncClient, task: bytes, field: str, says: str) -> None:
    # Was a 500 for the routine (hashing the request for its Idempotency-Key failed to encode it)
    # and for a batch of it, and a 422 naming only "task" with the encoder's words for the body.
    headers = {**AUTH, "Content-Type": "application/json"}
    one = b'{"task": ' + task + b', "schedule": "daily at 09:00"}'
    for refused in [await client.post("/v1/schedules", content=one, headers=headers),
                    await client.post("/v1/schedules", content=one, headers={**headers, "Idempotency-Key": "k1"})]:
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == field and says in error["message"], error
    batch = await client.post("/v1/schedules:batch", content=b'{"schedules": [' + one + b"]}", headers=headers)
    if field.startswith("task.body"):  # the payload's model is part of the batch's document: refused whole
        assert batch.status_code == 422, batch.text
        assert [e["field"] for e in batch.json()["errors"]] == [f"schedules.0.{field}"]
    else:  # a routine's args are checked when the item is created
        assert batch.status_code == 200, batch.text
        [item] = batch.json()["results"]
        assert item["status"] == 422 and [e["field"] for e in item["errors"]] == [f"schedules.0.{field}"], item
    assert (await client.get("/v1/schedules", headers=AUTH)).json()["items"] == []


@pytest.mark.parametrize("levels", [65, 300, 900])
async def test_a_task_nested_too_deep_for_a_store_is_a_422_not_a_500(client: httpx.AsyncClient, levels: int) -> None:
    # Past ~255 levels the task's own serializer failed (a 500 on POST, PATCH and batch); past
    # ~100 MongoDB refuses the document. Up to 64 levels are taken.
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    def http(depth: int) -> str:
        return f'{{"type": "http.request", "url": "https://a.example/x", "method": "PUT", "body": {nested(depth)}}}'

    headers = {**AUTH, "Content-Type": "application/json"}
    taken = await client.post("/v1/schedules", content=f'{{"task": {http(64)}, "schedule": "daily at 09:00"}}',
                              headers=headers)
    assert taken.status_code == 201, taken.text
    deep_path = ".".join(["0"] * 64)  # the first array nested too deep
    routine = f'{{"type": "python", "routine": "cronjob.purge_runs", "args": {{"x": {nested(levels)}}}}}'
    for task, field, says in [(http(levels), f"task.body.{deep_path}", "nested more than 64 levels"),
                              (routine, f"task.args.x.{deep_path[2:]}", "nested more than 64 levels")]:
        one = f'{{"task": {task}, "schedule": "daily at 09:00"}}'
        for refused in [await client.post("/v1/schedules", content=one, headers=headers),
                        await client.patch(f"/v1/schedules/{taken.json()['id']}", content=f'{{"task": {task}}}',
                                           headers=headers)]:
            assert refused.status_code == 422, refused.text
            [error] = refused.json()["errors"]
            assert error == {"field": field, "message": error["message"]} and says in error["message"], error
        batch = await client.post("/v1/schedules:batch", content=f'{{"schedules": [{one}]}}', headers=headers)
        assert batch.status_code == 422, batch.text
        assert [e["field"] for e in batch.json()["errors"]] == [f"schedules.0.{field}"]
    assert [s["id"] for s in (await client.get("/v1/schedules", headers=AUTH)).json()["items"]] == [taken.json()["id"]]


async def test_a_task_change_is_checked_as_creating_one_is(client: httpx.AsyncClient) -> None:
    task = {"type": "http.request", "url": "https://api.example.com/x", "method": "POST", "body": {"n": 2**63 - 1}}
    created = await client.post("/v1/schedules", json={"task": task, "schedule": "daily at 09:00"}, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["payload"]["body"] == {"n": 2**63 - 1}
    path = f"/v1/schedules/{created.json()['id']}"
    refused = await client.patch(path, json={"task": {**task, "body": {"n": [2**64]}}}, headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["task.body.n.0"]
    assert "64 bits" in refused.json()["detail"]
    assert (await client.get(path, headers=AUTH)).json()["payload"]["body"] == {"n": 2**63 - 1}  # unchanged


async def test_a_dead_message_can_be_retried_and_its_events_are_logged(client: httpx.AsyncClient,
                                                                      container: Container,
                                                                      clock: FixedClock) -> None:
    from cronjob.domain.message import DeliveryError

    created = (await client.post("/schedule-message", json={**SEED, "callback_url": "https://hooks.example/x"},
                                 headers=AUTH)).json()
    assert created["callback_url"] == "https://hooks.example/x"
    too_early = await client.post(f"/v1/schedules/{created['id']}/retry", headers=AUTH)
    assert too_early.status_code == 409
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(DeliveryError("132001", "template does not exist", retryable=False))
    clock.set(NOW + timedelta(hours=1))
    dispatcher = container.dispatcher()
    await dispatcher.dispatch_due()
    await dispatcher.drain(5)
    dead = (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()
    assert dead["status"] == "dead" and dead["last_error"]["code"] == "132001"

    clock.set(NOW + timedelta(hours=2))
    retried = await client.post(f"/v1/schedules/{created['id']}/retry", headers=AUTH)
    assert retried.status_code == 200 and retried.json()["status"] == "scheduled"
    assert retried.json()["next_run_at"] == "2025-06-21T18:00:00.000Z"
    await dispatcher.dispatch_due()
    await dispatcher.drain(5)
    done = (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()
    assert done["status"] == "succeeded" and len(sender.sent) == 1
    assert [a["outcome"] for a in done["attempts"]] == ["failed", "succeeded"]
    events = (await client.get(f"/v1/schedules/{created['id']}/events", headers=AUTH)).json()["items"]
    assert [e["type"] for e in events] == ["scheduled", "started", "failed", "dead", "scheduled", "started",
                                           "succeeded"]
    assert events[3]["data"]["code"] == "132001" and events[4]["data"]["retried_from"] == "dead"
    assert len({e["id"] for e in events}) == len(events)


async def test_stats_count_every_status_and_each_task_type(clock: FixedClock) -> None:
    repository = InMemoryScheduleRepository()
    container = make_container(clock, repository=repository)
    for task_type in ("whatsapp.text", "whatsapp.text", "whatsapp.template", "webhook.delivery"):
        await repository.add(one_off(NOW + timedelta(hours=1), now=NOW, task_type=task_type))
    cancelled = one_off(NOW + timedelta(hours=1), now=NOW)
    cancelled.cancel(now=NOW)
    await repository.add(cancelled)
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/v1/stats", headers=AUTH)
        refused = await http.get("/v1/stats")
    assert response.status_code == 200, response.text
    body = response.json()
    assert abs(datetime.fromisoformat(body.pop("as_of")) - datetime.now(UTC)) < timedelta(seconds=60)
    assert body == {
        # Every status, zeros included; the service's own webhook.delivery jobs are left out here,
        # as GET /v1/schedules leaves them out...
        "total": 4,
        "by_status": {"scheduled": 3, "running": 0, "paused": 0, "succeeded": 0, "dead": 0, "unknown": 0, "missed": 0,
                      "cancelled": 1},
        # ...and shown per type.
        "by_type": {"webhook.delivery": {"scheduled": 1}, "whatsapp.template": {"scheduled": 1},
                    "whatsapp.text": {"cancelled": 1, "scheduled": 2}},
    }
    assert refused.status_code == 401


async def test_instants_stored_by_earlier_versions_are_shown_in_the_one_format(
        client: httpx.AsyncClient, container: Container) -> None:
    """Before instant_text, the domain wrote ``isoformat()`` text (``+00:00``, micro- or no
    fraction) into delivery statuses and event data: the API shows those in today's format,
    and leaves the values that are no instants (and a task's own result) as they are."""
    schedule = one_off(datetime(2025, 6, 21, 17, 0, tzinfo=UTC), now=NOW)
    schedule.delivery = {"status": "failed", "sent_at": "2025-06-21T17:00:01+00:00",
                         "failed_at": "2025-06-21T14:00:09.123456-03:00", "error_code": "131049",
                         "error_message": "not delivered at 2025-06-21T17:00:09+00:00"}
    old = {"scheduled": {"next_run_at": "2025-06-21T17:00:00+00:00", "rescheduled_from": ""},
           "started": {"owner": "replica-7", "occurrence": "2025-06-21T17:00:00.124000+00:00"},
           "retrying": {"retry_at": "2025-06-21T17:00:05.5+00:00", "reason": "retry 2 of 5"},
           "succeeded": {"before": "2025-05-22T17:00:00+00:00", "wamid": "wamid.1"},
           "delivery.failed": {"at": "2025-06-21T17:00:09+00:00", "code": "131049"}}
    schedule.events = [ScheduleEvent(id=f"e{n}", type=type, at=NOW, data=data)
                       for n, (type, data) in enumerate(old.items())]
    await container.repository().add(schedule)

    shown = (await client.get(f"/v1/schedules/{schedule.id}", headers=AUTH)).json()
    assert shown["delivery"] == {"status": "failed", "sent_at": "2025-06-21T17:00:01.000Z",
                                 "failed_at": "2025-06-21T17:00:09.123Z", "error_code": "131049",
                                 "error_message": "not delivered at 2025-06-21T17:00:09+00:00"}
    events = (await client.get(f"/v1/schedules/{schedule.id}/events", headers=AUTH)).json()["items"]
    assert {e["type"]: e["data"] for e in events} == {
        "scheduled": {"next_run_at": "2025-06-21T17:00:00.000Z", "rescheduled_from": ""},
        "started": {"owner": "replica-7", "occurrence": "2025-06-21T17:00:00.124Z"},
        "retrying": {"retry_at": "2025-06-21T17:00:05.500Z", "reason": "retry 2 of 5"},
        "succeeded": {"before": "2025-05-22T17:00:00+00:00", "wamid": "wamid.1"},  # the task's own text
        "delivery.failed": {"at": "2025-06-21T17:00:09.000Z", "code": "131049"}}
    assert {e["at"] for e in events} == {"2025-06-21T16:00:00.000Z"}
