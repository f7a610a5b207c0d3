"""A WhatsApp template's header and buttons through the API (``/schedule-message`` and
``POST /v1/schedules``), the container's dispatcher and the recording sender, with a
hand-driven clock: what is stored, what is sent (a body Meta's spec accepts), and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cronjob.domain.template_parts import ButtonKind, HeaderKind, TemplateButton, TemplateHeader
from cronjob_adapters.whatsapp.payloads import message_body
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.fake_whatsapp import validate_send_body
from tests.support.memory_api import client, clock, container, sent_at  # noqa: F401 - fixtures

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)  # an hour before the seed's send_at
HEADER = {"type": "document", "link": "https://cdn.example.com/boletos/123.pdf", "filename": "boleto-123.pdf"}
BUTTONS = [{"type": "quick_reply", "index": 1, "payload": "PARAR"},
           {"type": "url", "index": 0, "text": "pedidos/123"}]


async def sent_when_due(container: Container, clock: FixedClock) -> list[Any]:
    return await sent_at(container, clock, datetime(2025, 6, 21, 17, 0, tzinfo=UTC))


async def test_the_seed_s_message_takes_a_header_and_buttons_and_sends_them(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    created = await client.post("/schedule-message", json={**SEED, "header": HEADER, "buttons": BUTTONS}, headers=AUTH)
    assert created.status_code == 201, created.text
    payload = created.json()["payload"]
    assert payload["header"] == HEADER
    assert payload["buttons"] == [BUTTONS[1], BUTTONS[0]]  # in index order

    [message] = await sent_when_due(container, clock)
    assert message.header == TemplateHeader(HeaderKind.DOCUMENT, link=HEADER["link"], filename=HEADER["filename"])
    assert message.buttons == (TemplateButton(0, ButtonKind.URL, "pedidos/123"),
                               TemplateButton(1, ButtonKind.QUICK_REPLY, "PARAR"))
    assert validate_send_body(message_body(message)) == []


async def test_a_template_task_takes_them_too_and_the_seed_without_them_is_unchanged(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    task = {"type": "whatsapp.template", "to": "5511999999999", "body": "Olá, {{1}}!", "templateName": "promo",
            "params": ["Ana"], "header": {"type": "image", "id": "1013859600285441"},
            "buttons": [{"type": "url", "index": 0, "text": "promo?c=ana"}]}
    created = await client.post("/v1/schedules", json={"task": task, "schedule": "once @ 2025-06-21 14:00",
                                                       "timezone": "America/Sao_Paulo"}, headers=AUTH)
    assert created.status_code == 201, created.text
    plain = await client.post("/schedule-message", json=SEED, headers=AUTH)
    assert "header" not in plain.json()["payload"] and "buttons" not in plain.json()["payload"]

    image, seed = sorted(await sent_when_due(container, clock), key=lambda m: m.template_name != "promo")
    assert image.header == TemplateHeader(HeaderKind.IMAGE, media_id="1013859600285441")
    assert message_body(image)["template"]["components"][0] == {
        "type": "header", "parameters": [{"type": "image", "image": {"id": "1013859600285441"}}]}
    assert seed.header is None and seed.buttons == ()
    assert [c["type"] for c in message_body(seed)["template"]["components"]] == ["body"]


@pytest.mark.parametrize(("change", "field"), [
    ({"header": {"type": "image"}}, "header"),
    ({"header": {"type": "image", "link": "https://x.example/a.jpg", "id": "1"}}, "header"),
    ({"header": {"type": "image", "link": "ftp://x.example/a.jpg"}}, "header.link"),
    ({"header": {"type": "image", "id": "1", "filename": "a.jpg"}}, "header.filename"),
    ({"header": {"type": "audio", "id": "1"}}, "header"),
    ({"header": {"type": "text", "text": "x" * 61}}, "header.text"),
    ({"buttons": [{"type": "url", "index": 0, "text": "a"}, {"type": "url", "index": 0, "text": "b"}]}, "buttons"),
    ({"buttons": [{"type": "url", "index": 10, "text": "a"}]}, "buttons.0.index"),
    ({"buttons": [{"type": "url", "index": "0", "text": "a"}]}, "buttons.0.index"),
    ({"buttons": [{"type": "quick_reply", "index": 0, "text": "a"}]}, "buttons.0.payload"),
    ({"buttons": [{"type": "url", "index": i % 10, "text": "a"} for i in range(11)]}, "buttons"),
    ({"type": "text", "header": {"type": "text", "text": "Oi"}}, "header"),  # a text message has none
    ({"type": "text", "buttons": [{"type": "url", "index": 0, "text": "a"}]}, "buttons"),
])
async def test_a_header_or_buttons_that_cannot_be_sent_are_refused_naming_the_field(
        client: httpx.AsyncClient, change: dict[str, Any], field: str) -> None:
    answer = await client.post("/schedule-message", json={**SEED, **change}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in answer.json()["errors"]], answer.json()


async def test_openapi_describes_the_header_and_the_buttons(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    seed = schemas["ScheduleMessageRequest"]["properties"]
    assert {"header", "buttons"} <= set(seed)
    assert {"TextHeader", "ImageHeader", "VideoHeader", "DocumentHeader", "UrlButton", "QuickReplyButton"} <= set(schemas)
    assert schemas["DocumentHeader"]["properties"]["filename"]
