"""Texts that are only whitespace, where the API needs something said: a WhatsApp message's
`body` (Meta refuses a text message without text, so it would fail only when due) and a
`userId` (which `:cancel`, `:pause`, `:resume` and `:retry` select by, exactly). Each is a 422
naming the field, on every route that takes it, and nothing is stored. Through the container
(store=memory), in memory via httpx's ASGI transport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.app import AUTH
from tests.support.builders import SEED
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
SEND_AT = "2030-06-21T14:00:00-03:00"
TEXT = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
BLANKS = [" ", "   ", "\n", " \t\r\n ", "\u00a0\u2003"]


def fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in answer.json()["errors"]]


async def nothing_stored(client: httpx.AsyncClient) -> bool:
    return (await client.get("/v1/schedules", headers=AUTH)).json()["items"] == []


@pytest.mark.parametrize("blank", BLANKS)
async def test_a_blank_message_body_is_a_422_naming_body(client: httpx.AsyncClient, blank: str) -> None:
    seed = {**SEED, "send_at": SEND_AT}
    for request in ({**seed, "type": "text", "params": [], "body": blank}, {**seed, "body": blank}):
        answer = await client.post("/schedule-message", json=request, headers=AUTH)
        assert fields(answer) == ["body"]
        assert answer.json()["errors"][0]["message"] == "must not be blank (only whitespace)"
    for task in ({**TEXT, "body": blank},
                 {**TEXT, "type": "whatsapp.template", "templateName": "t", "body": blank}):
        answer = await client.post("/v1/schedules", json={"task": task, "schedule": "daily at 09:00"}, headers=AUTH)
        assert fields(answer) == ["task.body"]
    assert await nothing_stored(client)


async def test_a_text_message_its_params_fill_with_whitespace_only_is_a_422_naming_body(
        client: httpx.AsyncClient) -> None:
    text = {**SEED, "send_at": SEND_AT, "type": "text", "body": "{{1}}{{2}}", "params": [" ", "\n"]}
    answer = await client.post("/schedule-message", json=text, headers=AUTH)
    assert fields(answer) == ["body"]
    assert "the params fill the body with whitespace only" in answer.json()["detail"]
    task = {**TEXT, "body": " {{1}} ", "params": ["\t"]}
    answer = await client.post("/v1/schedules", json={"task": task, "schedule": "daily at 09:00"}, headers=AUTH)
    assert fields(answer) == ["task.body"]
    batch = await client.post("/v1/schedules:batch", headers=AUTH, json={"schedules": [
        {"task": task, "schedule": "daily at 09:00"}, {"task": TEXT, "schedule": "daily at 09:00"}]})
    assert [result["status"] for result in batch.json()["results"]] == [422, 201], batch.text
    assert [e["field"] for e in batch.json()["results"][0]["errors"]] == ["schedules.0.task.body"]


async def test_a_task_change_to_a_blank_body_is_a_422_and_the_task_stays(client: httpx.AsyncClient) -> None:
    made = (await client.post("/v1/schedules", json={"task": TEXT, "schedule": "daily at 09:00"},
                              headers=AUTH)).json()
    for body, params in ((" ", []), ("{{1}}", ["  "])):
        answer = await client.patch(f"/v1/schedules/{made['id']}", headers=AUTH,
                                    json={"task": {**TEXT, "body": body, "params": params}})
        assert fields(answer) == ["task.body"]
    assert (await client.get(f"/v1/schedules/{made['id']}", headers=AUTH)).json()["body"] == "Oi"


@pytest.mark.parametrize("user_id", ["", *BLANKS])
async def test_a_blank_user_id_is_a_422_naming_user_id(client: httpx.AsyncClient, user_id: str) -> None:
    answer = await client.post("/schedule-message", json={**SEED, "send_at": SEND_AT, "userId": user_id},
                               headers=AUTH)
    assert fields(answer) == ["userId"]
    answer = await client.post("/v1/schedules", headers=AUTH,
                               json={"task": TEXT, "schedule": "daily at 09:00", "userId": user_id})
    assert fields(answer) == ["userId"]
    answer = await client.post("/v1/schedules:batch", headers=AUTH, json={"schedules": [
        {"task": TEXT, "schedule": "daily at 09:00", "userId": user_id}]})
    assert fields(answer) == ["schedules.0.userId"]
    assert await nothing_stored(client)


@pytest.mark.parametrize("user_id", ["", *BLANKS])
async def test_a_bulk_change_for_a_blank_user_id_is_a_422_naming_user_id(client: httpx.AsyncClient,
                                                                         user_id: str) -> None:
    bodies: dict[str, dict[str, Any]] = {
        ":cancel": {"userId": user_id}, ":pause": {"userId": user_id}, ":resume": {"userId": user_id},
        ":retry": {"status": "dead", "userId": user_id}}
    for route, body in bodies.items():
        assert fields(await client.post(f"/v1/schedules{route}", json=body, headers=AUTH)) == ["userId"], route


async def test_a_user_id_with_text_is_taken_as_written_and_selects_its_schedules(client: httpx.AsyncClient) -> None:
    made = await client.post("/schedule-message", json={**SEED, "send_at": SEND_AT, "userId": " abc 123 "},
                             headers=AUTH)
    assert made.status_code == 201 and made.json()["userId"] == " abc 123 "
    cancelled = await client.post("/v1/schedules:cancel", json={"userId": " abc 123 "}, headers=AUTH)
    assert cancelled.json()["cancelled"] == [made.json()["id"]]


async def test_the_document_says_these_texts_must_not_be_blank(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    texts = [schemas["ScheduleMessageRequest"]["properties"]["body"],
             schemas["WhatsappTextTask"]["properties"]["body"], schemas["WhatsappTemplateTask"]["properties"]["body"]]
    texts += [schemas[name]["properties"]["userId"]["anyOf"][0]
              for name in ("ScheduleMessageRequest", "CreateScheduleRequest", "SelectRequest", "BulkRetryRequest")]
    for schema in texts:
        assert (schema["type"], schema["minLength"], schema["pattern"]) == ("string", 1, r"\S"), schema
