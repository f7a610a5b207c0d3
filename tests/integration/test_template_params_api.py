"""A template body's currency and date/time parameters through the API (``/schedule-message`` and
``POST /v1/schedules``), the container's dispatcher and the recording sender, with a hand-driven
clock: what is stored and shown, what is sent (a body Meta's spec accepts), and what is refused;
the seed's plain strings stay as they were. Also the texts Meta refuses in any template param."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cronjob.domain.template_params import CurrencyParam, DateTimeParam
from cronjob_adapters.whatsapp.payloads import message_body
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.fake_whatsapp import validate_send_body
from tests.support.memory_api import client, clock, container, sent_at  # noqa: F401 - fixtures

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)  # an hour before the seed's send_at
BRL = {"type": "currency", "fallback_value": "R$ 150,00", "code": "BRL", "amount_1000": 150000}
WHEN = {"type": "date_time", "fallback_value": "21 de junho"}
ORDER = {**SEED, "body": "Olá, {{1}}! Seu pedido de {{2}} chega em {{3}}.", "templateName": "pedido_total",
         "params": ["Leandro", BRL, WHEN]}


async def sent_when_due(container: Container, clock: FixedClock) -> list[Any]:
    return await sent_at(container, clock, datetime(2025, 6, 21, 17, 0, tzinfo=UTC))


async def test_the_seed_s_message_takes_a_currency_and_a_date_and_sends_them_as_meta_documents(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    created = await client.post("/schedule-message", json=ORDER, headers=AUTH)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["rendered_body"] == "Olá, Leandro! Seu pedido de R$ 150,00 chega em 21 de junho."
    assert view["params"] == ["Leandro", BRL, WHEN]
    assert view["payload"]["params"] == ["Leandro", BRL, WHEN]
    fetched = await client.get(f"/v1/schedules/{view['id']}", headers=AUTH)
    assert fetched.json()["params"] == ["Leandro", BRL, WHEN]

    [message] = await sent_when_due(container, clock)
    assert message.params == ("Leandro", CurrencyParam("R$ 150,00", "BRL", 150000), DateTimeParam("21 de junho"))
    body = message_body(message)
    assert body["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "Leandro"},
        {"type": "currency", "currency": {"fallback_value": "R$ 150,00", "code": "BRL", "amount_1000": 150000}},
        {"type": "date_time", "date_time": {"fallback_value": "21 de junho"}},
    ]}]
    assert validate_send_body(body) == []


async def test_a_template_task_takes_them_and_the_seed_s_strings_are_stored_and_sent_as_before(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    task = {"type": "whatsapp.template", "to": "5511999999999", "body": "Total: {{1}}", "templateName": "total",
            "params": [{**BRL, "amount_1000": -2**31}]}
    created = await client.post("/v1/schedules", json={"task": task, "schedule": "once @ 2025-06-21 14:00",
                                                       "timezone": "America/Sao_Paulo"}, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["payload"]["params"] == [{**BRL, "amount_1000": -2**31}]
    seed = await client.post("/schedule-message", json=SEED, headers=AUTH)
    assert seed.json()["params"] == SEED["params"] and seed.json()["payload"]["params"] == SEED["params"]

    total, plain = sorted(await sent_when_due(container, clock), key=lambda m: m.template_name != "total")
    assert total.params == (CurrencyParam("R$ 150,00", "BRL", -2**31),)
    assert plain.params == ("Leandro", "2 dias úteis")
    assert message_body(plain)["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "Leandro"}, {"type": "text", "text": "2 dias úteis"}]}]


@pytest.mark.parametrize(("param", "field"), [
    ({**BRL, "code": "brl"}, "params.1.code"),
    ({**BRL, "code": "REAL"}, "params.1.code"),
    ({**BRL, "amount_1000": 2**31}, "params.1.amount_1000"),
    ({**BRL, "amount_1000": 150.5}, "params.1.amount_1000"),
    ({**BRL, "amount_1000": "150000"}, "params.1.amount_1000"),
    ({**BRL, "amount_1000": True}, "params.1.amount_1000"),
    ({**BRL, "fallback_value": ""}, "params.1.fallback_value"),
    ({k: v for k, v in BRL.items() if k != "fallback_value"}, "params.1.fallback_value"),
    ({**WHEN, "code": "BRL"}, "params.1.code"),
    ({"type": "money", "fallback_value": "R$ 1"}, "params.1"),
    ({"fallback_value": "R$ 1"}, "params.1"),
    (150000, "params.1"),
])
async def test_a_param_object_that_cannot_be_sent_is_refused_naming_its_part(
        client: httpx.AsyncClient, param: Any, field: str) -> None:
    answer = await client.post("/schedule-message", json={**ORDER, "params": ["Leandro", param, WHEN]}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in answer.json()["errors"]], answer.json()


@pytest.mark.parametrize("request_body", [
    {**SEED, "type": "text", "body": "Total: {{1}}", "params": [BRL]},
    {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Total: {{1}}", "params": [BRL]},
     "schedule": "once @ 2025-06-21 14:00"},
])
async def test_a_text_message_takes_strings_only(client: httpx.AsyncClient, request_body: dict[str, Any]) -> None:
    path = "/v1/schedules" if "task" in request_body else "/schedule-message"
    answer = await client.post(path, json=request_body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert any(e["field"].endswith("params.0") for e in answer.json()["errors"]), answer.json()


async def test_openapi_describes_the_currency_and_date_time_params(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert {"CurrencyParam", "DateTimeParam"} <= set(schemas)
    assert schemas["CurrencyParam"]["properties"]["code"]["pattern"] == "^[A-Z]{3}$"
    assert "currency" in schemas["ScheduleMessageRequest"]["properties"]["params"]["description"]


@pytest.mark.parametrize(("change", "field"), [
    ({"params": ["Leandro\nSilva", "2 dias"]}, "params.0"),
    ({"params": ["Leandro", "2\r\ndias"]}, "params.1"),
    ({"params": ["Leandro", "2\tdias"]}, "params.1"),
    ({"params": ["Leandro", "2     dias"]}, "params.1"),  # five spaces in a row
    ({"params": ["", "2 dias"]}, "params.0"),
    ({"params": ["Leandro", {**WHEN, "fallback_value": "21\nde junho"}]}, "params.1.fallback_value"),
    ({"header": {"type": "text", "text": "Pedido\t123"}}, "header.text"),
])
async def test_a_template_param_meta_refuses_is_refused_when_scheduled_not_when_due(
        client: httpx.AsyncClient, change: dict[str, Any], field: str) -> None:
    answer = await client.post("/schedule-message", json={**SEED, **change}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field], answer.json()
    task = {"type": "whatsapp.template", "to": "5511999999999", "body": SEED["body"],
            "templateName": "t", "params": SEED["params"], **change}
    answer = await client.post("/v1/schedules", json={"task": task, "schedule": "once @ 2025-06-21 14:00"},
                               headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [f"task.{field}"], answer.json()


async def test_four_spaces_in_a_template_param_and_line_breaks_in_a_text_message_are_taken(
        client: httpx.AsyncClient) -> None:
    four = await client.post("/schedule-message", json={**SEED, "params": ["Leandro", "2    dias"]}, headers=AUTH)
    assert four.status_code == 201, four.text
    text = await client.post("/schedule-message", json={**SEED, "type": "text", "params": ["Leandro\nSilva", ""]},
                             headers=AUTH)
    assert text.status_code == 201, text.text
    assert text.json()["rendered_body"] == "Olá, Leandro\nSilva! Seu pedido será entregue em ."
