"""WhatsApp's status webhooks through the real app (container: store=memory, sender=recording),
over httpx's ASGI transport: the verification handshake, signatures, and statuses on schedules."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest

from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, make_container
from tests.support.builders import SEED
from tests.support.clock import FixedClock

APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "verify-me-please"
WEBHOOK = "/v1/whatsapp/webhook"
NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
SENT_AT = int((NOW + timedelta(hours=1)).timestamp())


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def container(clock: FixedClock) -> Container:
    return make_container(clock, whatsapp_app_secret=APP_SECRET, whatsapp_verify_token=VERIFY_TOKEN)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def status_item(wamid: str, status: str, timestamp: int, **extra: Any) -> dict[str, Any]:
    """One ``statuses[]`` item as Meta sends it (with fields we do not read)."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(timestamp),
                            "recipient_id": "5511999999999"}
    if status != "failed":
        item["conversation"] = {"id": "conv-1", "origin": {"type": "utility"}}
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    item.update(extra)
    return item


def notification(*statuses: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "statuses": list(statuses),
                },
            }],
        }],
    }


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "content-type": "application/json"}


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await client.post(WEBHOOK, content=body, headers=signed(body))


async def sent_schedule(client: httpx.AsyncClient, container: Container, clock: FixedClock) -> dict[str, Any]:
    """A schedule created through the API and dispatched (the recording sender answers wamid.fake.1)."""
    created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
    clock.set(NOW + timedelta(hours=1))
    assert await container.dispatcher().dispatch_due() == 1
    await container.dispatcher().drain(5)
    shown = (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()
    assert shown["status"] == "succeeded" and shown["result"]["wamid"] == "wamid.fake.1"
    assert shown["delivery"] == {}
    clock.set(NOW + timedelta(hours=1, minutes=1))
    return shown


async def view(client: httpx.AsyncClient, schedule_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    shown = (await client.get(f"/v1/schedules/{schedule_id}", headers=AUTH)).json()
    events = (await client.get(f"/v1/schedules/{schedule_id}/events", headers=AUTH)).json()["items"]
    return shown, events


# -- the handshake ---------------------------------------------------------------------------------


async def test_the_handshake_echoes_the_challenge_without_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get(WEBHOOK, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                 "hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
])
async def test_the_handshake_is_refused_unless_everything_matches(client: httpx.AsyncClient,
                                                                  params: dict[str, str]) -> None:
    response = await client.get(WEBHOOK, params=params)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 403


# -- statuses ----------------------------------------------------------------------------------------


async def test_delivered_then_read_show_on_the_schedule_and_its_events(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await sent_schedule(client, container, clock)
    response = await post(client, notification(status_item("wamid.fake.1", "delivered", SENT_AT + 2)))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "applied": 1, "parked": 0}
    schedule, events = await view(client, shown["id"])
    assert schedule["delivery"] == {
        "status": "delivered",
        "delivered_at": "2025-06-21T17:00:02.000Z",
    }
    assert schedule["status"] == "succeeded"

    response = await post(client, notification(status_item("wamid.fake.1", "read", SENT_AT + 60)))
    assert response.status_code == 200 and response.json()["applied"] == 1
    schedule, events = await view(client, shown["id"])
    assert schedule["delivery"]["status"] == "read"
    assert schedule["delivery"]["read_at"] == "2025-06-21T17:01:00.000Z"
    delivery_events = [e for e in events if e["type"].startswith("delivery.")]
    assert [e["type"] for e in delivery_events] == ["delivery.delivered", "delivery.read"]
    assert delivery_events[-1]["data"]["at"] == "2025-06-21T17:01:00.000Z"
    assert delivery_events[-1]["attempt_id"] == schedule["attempts"][-1]["attempt_id"]

    # An out-of-order "sent" that arrives after "read" fills in its time; the status stays "read".
    response = await post(client, notification(status_item("wamid.fake.1", "sent", SENT_AT + 1)))
    assert response.status_code == 200 and response.json() == {"received": 1, "applied": 1, "parked": 0}
    schedule, events = await view(client, shown["id"])
    assert schedule["delivery"]["status"] == "read"
    assert schedule["delivery"]["sent_at"] == "2025-06-21T17:00:01.000Z"
    # The same again is a duplicate: acknowledged, nothing changes.
    response = await post(client, notification(status_item("wamid.fake.1", "sent", SENT_AT + 1)))
    assert response.status_code == 200 and response.json() == {"received": 1, "applied": 0, "parked": 0}
    assert await view(client, shown["id"]) == (schedule, events)


async def test_several_statuses_in_one_notification_are_applied_in_time_order(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await sent_schedule(client, container, clock)
    response = await post(client, notification(
        status_item("wamid.fake.1", "read", SENT_AT + 9),
        status_item("wamid.fake.1", "sent", SENT_AT + 1),
        status_item("wamid.fake.1", "delivered", SENT_AT + 2),
    ))
    assert response.json() == {"received": 3, "applied": 3, "parked": 0}
    schedule, _ = await view(client, shown["id"])
    assert schedule["delivery"]["status"] == "read"
    assert {"sent_at", "delivered_at", "read_at"} <= schedule["delivery"].keys()


async def test_a_failure_is_recorded_with_metas_error(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await sent_schedule(client, container, clock)
    await post(client, notification(status_item("wamid.fake.1", "sent", SENT_AT + 1)))
    failed = status_item("wamid.fake.1", "failed", SENT_AT + 5, errors=[{
        "code": 131049,
        "title": "This message was not delivered to maintain healthy ecosystem engagement.",
        "message": "This message was not delivered to maintain healthy ecosystem engagement.",
        "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }])
    response = await post(client, notification(failed))
    assert response.status_code == 200 and response.json()["applied"] == 1
    schedule, events = await view(client, shown["id"])
    delivery = schedule["delivery"]
    assert delivery["status"] == "failed" and delivery["error_code"] == "131049"
    assert delivery["error_message"].startswith("This message was not delivered")
    assert "the message failed to be delivered" in delivery["error_message"]
    assert delivery["sent_at"] == "2025-06-21T17:00:01.000Z"
    assert events[-1]["type"] == "delivery.failed" and events[-1]["data"]["code"] == "131049"
    assert schedule["status"] == "succeeded"  # the send itself succeeded; Meta could not deliver it


# -- what is refused or ignored -----------------------------------------------------------------------


async def test_a_wrong_or_missing_signature_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await sent_schedule(client, container, clock)
    before = await view(client, shown["id"])
    body = json.dumps(notification(status_item("wamid.fake.1", "read", SENT_AT + 5))).encode()
    other = json.dumps(notification(status_item("wamid.fake.1", "delivered", SENT_AT + 5))).encode()
    bad_headers = [
        {"content-type": "application/json"},
        signed(body, secret="not-the-app-secret"),
        signed(other),  # a valid signature of another body
        {**signed(body), "X-Hub-Signature-256": signed(body)["X-Hub-Signature-256"].replace("sha256=", "sha1=")},
        {**signed(body), "X-Hub-Signature-256": "sha256="},
    ]
    for headers in bad_headers:
        response = await client.post(WEBHOOK, content=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
    # The signature is checked before the body is parsed.
    response = await client.post(WEBHOOK, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert await view(client, shown["id"]) == before


async def test_a_signed_update_for_an_unknown_message_is_acknowledged_and_parked(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await sent_schedule(client, container, clock)
    before = await view(client, shown["id"])
    response = await post(client, notification(status_item("wamid.someone-else", "read", SENT_AT + 5)))
    assert response.status_code == 200 and response.json() == {"received": 1, "applied": 0, "parked": 1}
    assert await view(client, shown["id"]) == before


async def test_other_fields_and_unknown_statuses_are_acknowledged(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await sent_schedule(client, container, clock)
    payload = notification(status_item("wamid.fake.1", "delivered", SENT_AT + 2),
                           status_item("wamid.fake.1", "deleted", SENT_AT + 3))
    payload["entry"][0]["changes"].append({
        "field": "message_template_status_update",
        "value": {"event": "APPROVED", "message_template_id": 1, "statuses": "not a list"},
    })
    payload["entry"].append({"id": "2", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "messages": [{"from": "5511999999999", "type": "text"}]}}]})
    response = await post(client, payload)
    assert response.status_code == 200 and response.json() == {"received": 2, "applied": 1, "parked": 0}
    schedule, _ = await view(client, shown["id"])
    assert schedule["delivery"]["status"] == "delivered"


async def test_malformed_json_is_a_400_and_a_wrong_shape_a_422(client: httpx.AsyncClient) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": ['
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Bad request"
    # What Python's JSON reader refuses without a JSONDecodeError: a 400 too, never a 500.
    big_number = b'{"object": ' + b"9" * 5000 + b"}"
    response = await client.post(WEBHOOK, content=big_number, headers=signed(big_number))
    assert response.status_code == 400, response.text
    deep = b"[" * 30_000 + b"]" * 30_000  # Python 3.11 cannot read it (400); later ones can (422)
    response = await client.post(WEBHOOK, content=deep, headers=signed(deep))
    assert response.status_code in (400, 422), response.text

    payload = notification(status_item("wamid.fake.1", "read", SENT_AT))
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = "yesterday"
    response = await post(client, payload)
    assert response.status_code == 422
    assert any("timestamp" in error["field"] for error in response.json()["errors"])


async def test_the_routes_are_absent_unless_both_settings_are_configured(
        clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    for settings in ({}, {"whatsapp_app_secret": APP_SECRET}, {"whatsapp_verify_token": VERIFY_TOKEN}):
        caplog.clear()
        app = make_container(clock, **settings).app()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            response = await http.get(WEBHOOK, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                       "hub.challenge": "1"})
            assert response.status_code == 404, settings
        # Half the settings is a mistake worth a line at start-up; none is a choice.
        warned = [r.getMessage() for r in caplog.records if "status webhook" in r.getMessage()]
        assert len(warned) == (1 if settings else 0), (settings, warned)
        assert APP_SECRET not in " ".join(warned) and VERIFY_TOKEN not in " ".join(warned)


def test_the_documented_body_takes_meta_s_notifications(container: Container) -> None:
    """The OpenAPI document describes what the route takes: a notification as Meta sends it (a
    ``messages`` change beside another field's, timestamps as text) is valid by its schema, and
    one that the route refuses is not."""
    document = container.app().openapi()
    content = document["paths"][WEBHOOK]["post"]["requestBody"]["content"]["application/json"]
    validator = jsonschema.Draft202012Validator({**content["schema"], "components": document["components"]})
    real = notification(status_item("wamid.A", "sent", SENT_AT), status_item("wamid.B", "failed", SENT_AT,
                        errors=[{"code": 131026, "title": "Message undeliverable"}]))
    real["entry"][0]["changes"].append({"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}})
    numeric = notification(status_item("wamid.C", "read", SENT_AT) | {"timestamp": SENT_AT})
    assert [str(e.message) for e in validator.iter_errors(real)] == []
    assert validator.is_valid(numeric)
    assert not validator.is_valid(notification(status_item("wamid.D", "sent", SENT_AT) | {"timestamp": "yesterday"}))


@pytest.mark.parametrize(("item", "field"), [({"timestamp": True}, "timestamp"), ({"timestamp": 1.7e9}, "timestamp"),
                                           ({"timestamp": " 1700000000"}, "timestamp"),
                                           ({"errors": [{"code": False}]}, "errors.0.code")])
async def test_values_the_document_refuses_are_refused(client: httpx.AsyncClient, item: dict[str, Any],
                                                       field: str) -> None:
    """Not read leniently beyond the document (a bool or a float as Unix seconds or a code)."""
    response = await post(client, notification(status_item("wamid.E", "failed", SENT_AT) | item))
    assert response.status_code == 422, response.text
    named = {error["field"] for error in response.json()["errors"]}
    assert f"entry.0.changes.0.value.statuses.0.{field}" in named, named  # its place in the body: no union tag


async def test_the_answer_is_documented(container: Container) -> None:
    document = container.app().openapi()
    answer = document["paths"][WEBHOOK]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    receipt = document["components"]["schemas"][answer["$ref"].rsplit("/", 1)[-1]]
    assert set(receipt["properties"]) == {"received", "applied", "parked"}


async def test_a_status_that_arrives_before_its_send_is_recorded_is_applied_once_it_is(clock: FixedClock) -> None:
    # A wait of two hours, so that the status can come in an hour before the send (in real life:
    # the moment before the run writes its outcome).
    container = make_container(clock, whatsapp_app_secret=APP_SECRET, whatsapp_verify_token=VERIFY_TOKEN,
                               whatsapp_status_wait_seconds=7200)
    dispatcher = container.dispatcher()

    async def dispatch() -> int:
        claimed = await dispatcher.dispatch_due()
        await dispatcher.drain(5)
        return claimed

    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        created = (await client.post("/schedule-message", json=SEED, headers=AUTH)).json()
        # Meta's "sent" for the message the send will return (the recording sender: wamid.fake.1).
        response = await post(client, notification(status_item("wamid.fake.1", "sent", SENT_AT)))
        assert response.json() == {"received": 1, "applied": 0, "parked": 1}
        clock.advance(timedelta(seconds=2))
        assert await dispatch() == 1  # the parked status looks: no such message yet; it waits
        clock.set(NOW + timedelta(hours=1))
        assert await dispatch() == 2  # it looks again while the message's run holds the lease: waits
        shown, _ = await view(client, created["id"])
        assert shown["status"] == "succeeded" and shown["delivery"] == {}
        clock.advance(timedelta(seconds=31))
        assert await dispatch() == 1  # and finds it recorded
        shown, events = await view(client, created["id"])
        assert shown["delivery"]["status"] == "sent"
        assert shown["delivery"]["sent_at"] == "2025-06-21T17:00:00.000Z"
        assert [e["type"] for e in events if e["type"].startswith("delivery.")] == ["delivery.sent"]
        # The service's own job: left out of the list unless asked for; shows what it did.
        listed = (await client.get("/v1/schedules", headers=AUTH)).json()["items"]
        assert [item["id"] for item in listed] == [created["id"]]
        [job] = (await client.get("/v1/schedules", params={"type": "whatsapp.status"}, headers=AUTH)).json()["items"]
        assert job["status"] == "succeeded" and job["result"]["outcome"] == "recorded"
        assert len(job["attempts"]) == 1  # its waits spent no attempts
    counted = {outcome: container.metrics().registry.get_sample_value(
        "cronjob_whatsapp_statuses_total", {"outcome": outcome}) for outcome in ("parked", "recorded")}
    assert counted == {"parked": 1.0, "recorded": 1.0}
