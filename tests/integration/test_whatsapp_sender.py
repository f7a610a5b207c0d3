"""WhatsAppCloudSender against a real local HTTP server that plays Meta (tests.support.fake_whatsapp):
bodies checked against Meta's OpenAPI schema, each error class classified, timeouts never re-sent."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob.domain.message import (
    DeliveryError,
    DeliveryOutcomeUnknown,
    MessageKind,
    OutboundMessage,
    SendReceipt,
)
from cronjob.domain.schedule import ScheduleStatus
from cronjob.domain.template_params import CurrencyParam, DateTimeParam
from cronjob.domain.template_parts import ButtonKind, HeaderKind, TemplateButton, TemplateHeader
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import WHATSAPP_TEXT, ScheduleMessageCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.whatsapp.payloads import message_body
from cronjob_adapters.whatsapp.sender import WhatsAppCloudSender
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.clock import FixedClock
from tests.support.fake_whatsapp import FakeWhatsApp, graph_error, validate, validate_send_body
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "EAAG-secret-token-do-not-log-0123456789"
PHONE_ID = "106540352242922"
TO = "5511999999999"
BODY = "Olá, Leandro! Seu pedido será entregue em 2 dias úteis."

TEMPLATE = OutboundMessage(
    to=TO, kind=MessageKind.TEMPLATE, body=BODY, idempotency_key="s1:2030-01-15T12:00:00Z",
    template_name="notificacao_entrega", language="pt_BR", params=("Leandro", "2 dias úteis"),
)
TEXT = OutboundMessage(to=TO, kind=MessageKind.TEXT, body=BODY, idempotency_key="s2:2030-01-15T12:00:00Z")


@pytest.fixture
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(token=TOKEN, phone_number_id=PHONE_ID) as server:
        yield server


@pytest.fixture
async def sender(fake: FakeWhatsApp) -> AsyncIterator[WhatsAppCloudSender]:
    # 10 s: the limit is also the connect timeout, and no test of this sender is about a timeout
    # (those make their own); at 2 s a loaded clean-clone run once timed out connecting to the fake.
    client = WhatsAppCloudSender(fake.url, TOKEN, PHONE_ID, timeout_seconds=10.0)
    yield client
    await client.close()


async def refused(sender: WhatsAppCloudSender, message: OutboundMessage = TEXT) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await sender.send(message)
    return caught.value


# -- what goes out -----------------------------------------------------------------------------


async def test_a_template_message_is_sent_as_meta_documents_it(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    receipt = await sender.send(TEMPLATE)

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/v23.0/{PHONE_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "template",
        "template": {
            "name": "notificacao_entrega",
            "language": {"policy": "deterministic", "code": "pt_BR"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Leandro"}, {"type": "text", "text": "2 dias úteis"},
            ]}],
        },
    }
    assert validate_send_body(request.body) == []
    assert fake.schema_errors == []
    assert receipt == SendReceipt(message_id=request.wamid or "", provider="whatsapp", raw_status="accepted")
    assert receipt.message_id.startswith("wamid.")


async def test_a_text_message_is_sent_as_meta_documents_it(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    receipt = await sender.send(TEXT)

    [request] = fake.requests
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"preview_url": False, "body": BODY},
    }
    assert fake.schema_errors == []
    assert receipt.message_id == request.wamid
    assert receipt.raw_status is None


async def test_a_template_without_params_has_no_components(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    message = OutboundMessage(to=TO, kind=MessageKind.TEMPLATE, body="Olá", idempotency_key="k",
                              template_name="hello_world", language="en_US")
    await sender.send(message)

    [request] = fake.requests
    assert "components" not in request.body["template"]
    assert fake.schema_errors == []


@pytest.mark.parametrize(("header", "parameter"), [
    (TemplateHeader(HeaderKind.IMAGE, link="https://cdn.example.com/promo.jpg"),
     {"type": "image", "image": {"link": "https://cdn.example.com/promo.jpg"}}),
    (TemplateHeader(HeaderKind.VIDEO, media_id="1013859600285441"), {"type": "video", "video": {"id": "1013859600285441"}}),
    (TemplateHeader(HeaderKind.DOCUMENT, link="https://cdn.example.com/boleto.pdf", filename="boleto.pdf"),
     {"type": "document", "document": {"link": "https://cdn.example.com/boleto.pdf", "filename": "boleto.pdf"}}),
    (TemplateHeader(HeaderKind.TEXT, text="Pedido 123"), {"type": "text", "text": "Pedido 123"}),
])
async def test_a_template_s_header_and_buttons_are_sent_as_meta_documents_them(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, header: TemplateHeader, parameter: dict[str, Any]
) -> None:
    message = replace(TEMPLATE, header=header, buttons=(
        TemplateButton(0, ButtonKind.URL, "pedidos/123?utm=whatsapp"), TemplateButton(2, ButtonKind.QUICK_REPLY, "SAIR")))
    await sender.send(message)

    [request] = fake.requests
    assert request.body["template"]["components"] == [
        {"type": "header", "parameters": [parameter]},
        {"type": "body", "parameters": [{"type": "text", "text": "Leandro"}, {"type": "text", "text": "2 dias úteis"}]},
        {"type": "button", "sub_type": "url", "index": "0",
         "parameters": [{"type": "text", "text": "pedidos/123?utm=whatsapp"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "2", "parameters": [{"type": "payload", "payload": "SAIR"}]},
    ]
    assert fake.schema_errors == []


async def test_currency_and_date_time_body_parameters_are_sent_as_meta_documents_them(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    message = replace(TEMPLATE, params=("Leandro", CurrencyParam("R$ 1.234,50", "BRL", 1234500),
                                         DateTimeParam("21 de junho de 2030")))
    await sender.send(message)

    [request] = fake.requests
    assert request.status == 200
    assert request.body["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "Leandro"},
        {"type": "currency", "currency": {"fallback_value": "R$ 1.234,50", "code": "BRL", "amount_1000": 1234500}},
        {"type": "date_time", "date_time": {"fallback_value": "21 de junho de 2030"}},
    ]}]
    assert fake.schema_errors == []
    currency = request.body["template"]["components"][0]["parameters"][1]
    del currency["currency"]["amount_1000"]  # the spec's check sees what Meta requires of each
    assert validate_send_body(request.body) != []


def test_the_schema_check_refuses_a_button_index_beyond_nine_and_both_a_link_and_an_id() -> None:
    # The spec's own index pattern is read as its description says (0-9): see checkable_schemas.
    body = message_body(replace(TEMPLATE, buttons=(TemplateButton(9, ButtonKind.QUICK_REPLY, "X"),)))
    assert validate_send_body(body) == []
    body["template"]["components"][-1]["index"] = "10"
    assert validate_send_body(body) != []
    body = message_body(replace(TEMPLATE, header=TemplateHeader(HeaderKind.IMAGE, link="https://x.example/a.jpg")))
    body["template"]["components"][0]["parameters"][0]["image"]["id"] = "123"
    assert validate_send_body(body) != []


DRIFTS: dict[str, tuple[str, Any]] = {
    "no recipient_type": ("recipient_type", None),
    "language as a bare string": ("template.language", "pt_BR"),
    "language without policy": ("template.language", {"code": "pt_BR"}),
    "parameter with value, not text": ("template.components", [
        {"type": "body", "parameters": [{"type": "text", "value": "Leandro"}]}]),
    "unknown component type": ("template.components", [{"type": "footer", "parameters": []}]),
    "unknown message type": ("type", "tmpl"),
}


def drifted(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    *parents, leaf = dotted.split(".")
    node = body
    for key in parents:
        node = node[key]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return body


@pytest.mark.parametrize("drift", DRIFTS)
async def test_the_schema_check_catches_a_body_that_drifts_from_meta_spec(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, drift: str
) -> None:
    await sender.send(TEMPLATE)
    good = fake.requests[0].body
    bad = drifted(good, *DRIFTS[drift])

    assert validate_send_body(bad) != []
    async with httpx.AsyncClient() as client:  # the fake rejects it like Meta, and records why
        answer = await client.post(f"{fake.url}/v23.0/{PHONE_ID}/messages", json=bad,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 100
    assert fake.schema_errors != []


@pytest.mark.parametrize("drift", [
    {"text": {"body": 42}},
    {"text": {"body": BODY, "preview": False}},
    {"biz_opaque": "x"},
])
async def test_the_schema_check_catches_a_text_body_that_drifts(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, drift: dict[str, Any]
) -> None:
    await sender.send(TEXT)
    assert validate_send_body({**fake.requests[0].body, **drift}) != []


def test_the_fake_answers_in_meta_shapes(fake: FakeWhatsApp) -> None:
    with httpx.Client() as client:
        ok = client.post(f"{fake.url}/v23.0/{PHONE_ID}/messages", headers={"Authorization": f"Bearer {TOKEN}"},
                         json={"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO,
                               "type": "text", "text": {"body": "x"}})
    assert validate("MessageResponsePayload", ok.json()) == []
    assert validate("GraphAPIError", graph_error(131056, "pair rate limit", details="d", subcode=2494055)) == []


# -- what comes back ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable", "scope"),
    [
        (400, 4, True, "app"),
        (400, 80007, True, "business_account"),
        (400, 130429, True, "phone_number"),
        (400, 131056, True, "recipient"),
        (500, 131000, True, None),
        (503, 2, True, None),
        (400, 131026, False, None),
        (400, 131047, False, None),
        (404, 132001, False, None),
        (400, 132000, False, None),
        (400, 100, False, None),
        (400, 131051, False, None),
        (400, 999999, False, None),  # an unknown code on a 4xx: not worth a retry
    ],
)
async def test_graph_errors_are_classified_by_meta_code(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, status: int, code: int, retryable: bool, scope: str | None
) -> None:
    body = graph_error(code, f"(#{code}) something", subcode=2494055, details=f"details of {code}")
    fake.fail_next(status, body)

    error = await refused(sender)

    assert (error.code, error.retryable, error.http_status) == (str(code), retryable, status)
    assert error.message == f"(#{code}) something"
    expected = {"fbtrace_id": body["error"]["fbtrace_id"], "error_subcode": "2494055",
                "type": "OAuthException", "details": f"details of {code}"}
    if scope:
        expected["scope"] = scope
    assert error.details == expected
    assert error.retry_after_seconds is None


async def test_a_wrong_token_is_a_permanent_190(fake: FakeWhatsApp) -> None:
    sender = WhatsAppCloudSender(fake.url, "EAAG-expired", PHONE_ID)
    try:
        error = await refused(sender)
    finally:
        await sender.close()
    assert (error.code, error.retryable, error.http_status) == ("190", False, 401)
    assert error.details["type"] == "OAuthException"


async def test_a_wrong_phone_number_id_is_a_permanent_100(fake: FakeWhatsApp) -> None:
    sender = WhatsAppCloudSender(fake.url, TOKEN, "999")
    try:
        error = await refused(sender)
    finally:
        await sender.close()
    assert (error.code, error.retryable, error.details["error_subcode"]) == ("100", False, "33")


async def test_a_500_without_a_body_is_retryable(fake: FakeWhatsApp, sender: WhatsAppCloudSender) -> None:
    fake.fail_next(500)
    error = await refused(sender)
    assert (error.code, error.retryable, error.http_status, error.details) == ("http_500", True, 500, {})


async def test_a_429_honours_retry_after(fake: FakeWhatsApp, sender: WhatsAppCloudSender) -> None:
    fake.fail_next(429, headers={"Retry-After": "7"})
    error = await refused(sender)
    assert (error.code, error.retryable, error.retry_after_seconds) == ("http_429", True, 7.0)


async def test_a_graph_rate_limit_honours_retry_after(fake: FakeWhatsApp, sender: WhatsAppCloudSender) -> None:
    fake.fail_next(400, graph_error(130429, "(#130429) Rate limit hit"), headers={"Retry-After": "2"})
    error = await refused(sender)
    assert (error.code, error.retryable, error.retry_after_seconds) == ("130429", True, 2.0)


@pytest.mark.parametrize(("status", "retryable"), [(502, True), (403, False)])
async def test_a_non_json_error_body_is_named_by_its_status(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, status: int, retryable: bool
) -> None:
    fake.fail_next(status, "<html><body>Bad Gateway</body></html>")
    error = await refused(sender)
    assert (error.code, error.retryable, error.http_status) == (f"http_{status}", retryable, status)


async def test_the_scripted_failures_run_out(fake: FakeWhatsApp, sender: WhatsAppCloudSender) -> None:
    fake.fail_next(400, graph_error(131056, "pair rate limit hit"), times=2)
    for _ in range(2):
        assert (await refused(sender)).code == "131056"
    assert (await sender.send(TEXT)).message_id.startswith("wamid.")


@pytest.mark.parametrize("answer", [{"messaging_product": "whatsapp", "messages": []}, "OK"])
async def test_a_2xx_without_a_wamid_is_an_unknown_outcome(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, answer: Any
) -> None:
    fake.fail_next(200, answer)
    with pytest.raises(DeliveryOutcomeUnknown, match="invalid_response"):
        await sender.send(TEXT)


async def test_an_unexpressible_message_is_refused_without_a_request(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    message = OutboundMessage(to=TO, kind=MessageKind.TEMPLATE, body="x", idempotency_key="k")
    error = await refused(sender, message)
    assert (error.code, error.retryable) == ("invalid_message", False)
    assert fake.requests == []


# -- when the network fails --------------------------------------------------------------------


async def test_a_read_timeout_is_an_unknown_outcome_not_a_failure(fake: FakeWhatsApp) -> None:
    # 1 s, not less: the limit is also the connect timeout, which a loaded machine once exceeded
    # at 0.3 s (a connect timeout is "not sent", and this test is about the read).
    sender = WhatsAppCloudSender(fake.url, TOKEN, PHONE_ID, timeout_seconds=1.0)
    fake.delay_next(5)
    try:
        with pytest.raises(DeliveryOutcomeUnknown):
            await sender.send(TEMPLATE)
    finally:
        await sender.close()
    assert len(fake.requests) == 1  # Meta had it: a blind re-send would deliver twice


async def test_a_hang_up_after_the_request_is_an_unknown_outcome(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    fake.drop_next()
    with pytest.raises(DeliveryOutcomeUnknown):
        await sender.send(TEXT)
    assert len(fake.requests) == 1


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = WhatsAppCloudSender(f"http://127.0.0.1:{port}", TOKEN, PHONE_ID, timeout_seconds=2.0)
    try:
        error = await refused(sender)
    finally:
        await sender.close()
    assert (error.code, error.retryable, error.http_status) == ("connect_error", True, None)


async def test_a_server_gone_between_sends_is_a_retryable_connect_error(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    await sender.send(TEXT)  # leaves a keep-alive connection in the pool
    fake.stop()
    error = await refused(sender)
    assert (error.code, error.retryable) == ("connect_error", True)


async def test_concurrent_sends_each_get_their_own_wamid(fake: FakeWhatsApp) -> None:
    # Half of them wait for one of the pool's 100 connections: on a loaded machine longer than the
    # other tests' 2 s (a PoolTimeout once, on a 2-core machine running two suites).
    sender = WhatsAppCloudSender(fake.url, TOKEN, PHONE_ID, timeout_seconds=30.0)
    try:
        receipts = await asyncio.gather(*(sender.send(TEMPLATE if i % 2 else TEXT) for i in range(200)))
    finally:
        await sender.close()
    assert len({r.message_id for r in receipts}) == 200
    assert {r.wamid for r in fake.wait_for(200)} == {r.message_id for r in receipts}
    assert fake.schema_errors == []


# -- secrets -----------------------------------------------------------------------------------


async def test_the_token_and_body_never_reach_logs_or_repr(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sender.send(TEMPLATE)
    fake.fail_next(400, graph_error(131056, "pair rate limit hit"))
    await refused(sender)
    fake.delay_next(5)
    quick = WhatsAppCloudSender(fake.url, TOKEN, PHONE_ID, timeout_seconds=0.2)
    with pytest.raises(DeliveryOutcomeUnknown):
        await quick.send(TEXT)
    await quick.close()

    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert any(r.name.startswith("cronjob_adapters.whatsapp") for r in caplog.records)
    for secret in (TOKEN, BODY, "Leandro", TO):
        assert secret not in logged
    assert TOKEN not in repr(sender) and TOKEN not in str(sender)
    assert PHONE_ID in repr(sender)


async def test_a_token_meta_quotes_in_its_error_is_not_kept(
    fake: FakeWhatsApp, sender: WhatsAppCloudSender
) -> None:
    """Graph quotes an access token it cannot read (``Malformed access token <token>``, code
    190); the error's texts are shown wherever the schedule is (its last error, its events, the
    status webhooks to a callback_url), so the token is replaced there."""
    fake.fail_next(400, graph_error(190, f"Malformed access token {TOKEN}", details=f"token: {TOKEN}."))

    error = await refused(sender)

    assert (error.code, error.retryable) == ("190", False)
    assert error.message == "Malformed access token ***"
    assert error.details["details"] == "token: ***."
    assert TOKEN not in repr(error.details)


# -- the fake as a process (for multi-process end-to-end tests) ---------------------------------


async def test_the_fake_runs_as_a_process_and_records_to_a_file(tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_whatsapp", "--port", "0", "--token", TOKEN,
         "--phone-number-id", PHONE_ID, "--record", str(record)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        sender = WhatsAppCloudSender(url, TOKEN, PHONE_ID)
        try:
            receipts = [await sender.send(TEMPLATE), await sender.send(TEXT)]
        finally:
            await sender.close()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["wamid"] for line in lines] == [r.message_id for r in receipts]
    assert [line["body"]["type"] for line in lines] == ["template", "text"]
    assert all(line["received_at"].endswith("+00:00") for line in lines)


# -- a shutdown while a send is in flight --------------------------------------------------------


async def test_a_shutdown_while_a_send_is_in_flight_parks_it_as_unknown(
        fake: FakeWhatsApp, caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler's drain cancels runs still going at its end. A WhatsApp send cancelled in
    flight may have reached Meta (no idempotency key): it becomes unknown, as an unanswered
    request does, rather than being released and sent again by the next replica."""
    now = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
    clock = FixedClock(now)
    store, signal = InMemoryScheduleRepository(), InProcessWorkSignal(clock)
    service = SchedulingService(store, clock, signal, parse_trigger=default_trigger_parser())
    sender = WhatsAppCloudSender(fake.url, TOKEN, PHONE_ID, timeout_seconds=30)
    dispatcher = Dispatcher(store, {WHATSAPP_TEXT: WhatsAppMessageHandler(sender)}, clock, signal,
                            DispatcherSettings(owner="r1"))
    scheduled = await service.schedule_message(ScheduleMessageCommand(
        to=TO, body=BODY, kind=MessageKind.TEXT, send_at=now, send_at_text=now.isoformat(), timezone="UTC"))
    fake.delay_next(20)  # Meta takes the request and answers only after the drain's grace
    try:
        assert await dispatcher.dispatch_due() == 1
        await until(lambda: len(fake.requests) == 1)
        await dispatcher.drain(0.05)
        stored = await store.get(scheduled.schedule.id)
        assert stored is not None and stored.status is ScheduleStatus.UNKNOWN, stored
        assert stored.last_error is not None and "shutdown" in stored.last_error.message
        assert stored.lease is None
        # The same words at a run's time limit (runs stopped there far outnumber shutdowns).
        assert "cut short in flight (by a shutdown, or at the run's time limit)" in caplog.text
        assert await dispatcher.dispatch_due() == 0  # not due again: never sent twice
        assert len(fake.requests) == 1
    finally:
        await sender.close()


async def test_a_send_cancelled_before_its_request_left_is_a_plain_cancellation(fake: FakeWhatsApp) -> None:
    """Waiting for a connection (here: the pool's only one is busy), nothing has reached Meta:
    the cancellation stands, and the run is released to be sent again. Once written: unknown."""
    sender = WhatsAppCloudSender(fake.url, TOKEN, PHONE_ID, timeout_seconds=30,
                                 transport=httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1)))
    fake.delay_next(20)
    try:
        in_flight = asyncio.create_task(sender.send(TEXT))
        await until(lambda: len(fake.requests) == 1)
        queued = asyncio.create_task(sender.send(TEMPLATE))
        await asyncio.sleep(0.2)  # waiting for the pool's one connection
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        in_flight.cancel()
        with pytest.raises(DeliveryOutcomeUnknown, match="shutdown"):
            await in_flight
        assert len(fake.requests) == 1
    finally:
        await sender.close()
