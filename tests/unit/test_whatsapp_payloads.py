"""The WhatsApp adapter's pure parts: the request it builds (checked through httpx.MockTransport,
no network) and how Meta's error answers are classified."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from cronjob.domain.message import DeliveryError, MessageKind, OutboundMessage
from cronjob_adapters.whatsapp.errors import error_from_response, is_retryable, parse_retry_after
from cronjob_adapters.whatsapp.payloads import message_body
from cronjob_adapters.whatsapp.sender import WhatsAppCloudSender

TEMPLATE = OutboundMessage(to="5511999999999", kind=MessageKind.TEMPLATE, body="Olá, Ana!", idempotency_key="k",
                           template_name="boas_vindas", language="pt_BR", params=("Ana", "3"))
TEXT = OutboundMessage(to="5511999999999", kind=MessageKind.TEXT, body="Olá, Ana!", idempotency_key="k")


def test_a_template_body_names_the_template_language_and_body_parameters() -> None:
    assert message_body(TEMPLATE) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511999999999",
        "type": "template",
        "template": {
            "name": "boas_vindas",
            "language": {"policy": "deterministic", "code": "pt_BR"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                           {"type": "text", "text": "3"}]}],
        },
    }


def test_a_template_without_params_has_no_components() -> None:
    message = OutboundMessage(to="1", kind=MessageKind.TEMPLATE, body="", idempotency_key="k",
                              template_name="hello_world", language="en_US")
    assert message_body(message)["template"] == {
        "name": "hello_world", "language": {"policy": "deterministic", "code": "en_US"},
    }


def test_a_text_body_carries_the_text_without_link_preview() -> None:
    assert message_body(TEXT) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511999999999",
        "type": "text",
        "text": {"preview_url": False, "body": "Olá, Ana!"},
    }


@pytest.mark.parametrize("message", [
    OutboundMessage(to="1", kind=MessageKind.TEMPLATE, body="x", idempotency_key="k"),
    OutboundMessage(to="", kind=MessageKind.TEXT, body="x", idempotency_key="k"),
])
def test_an_unexpressible_message_is_a_value_error(message: OutboundMessage) -> None:
    with pytest.raises(ValueError):
        message_body(message)


@pytest.mark.parametrize(("api_url", "version"), [
    ("https://graph.facebook.com", "v23.0"),
    ("https://graph.facebook.com/", "v24.0"),
])
async def test_the_request_posts_json_with_the_bearer_token(api_url: str, version: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"messaging_product": "whatsapp", "messages": [{"id": "wamid.X"}]})

    sender = WhatsAppCloudSender(api_url, "tok", "123", api_version=version,
                                 transport=httpx.MockTransport(answer))
    try:
        receipt = await sender.send(TEMPLATE)
    finally:
        await sender.close()

    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == f"https://graph.facebook.com/{version}/123/messages"
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == message_body(TEMPLATE)
    assert receipt.message_id == "wamid.X"


# -- errors ------------------------------------------------------------------------------------


def graph(code: object, **extra: object) -> bytes:
    return json.dumps({"error": {"message": "m", "type": "OAuthException", "code": code, **extra}}).encode()


@pytest.mark.parametrize(("code", "status", "transient", "retryable"), [
    (4, 400, None, True),
    (131056, 400, False, True),  # Meta's code wins over the hint
    (131026, 500, True, False),
    (132015, 400, None, False),  # every 132xxx is a template error
    (230, 403, None, False),  # 200-299: API permission
    (1, 400, True, True),  # an unlisted code follows is_transient ...
    (1, 500, False, False),
    (1, 500, None, True),  # ... else the HTTP status
    (1, 400, None, False),
])
def test_retryable_follows_meta_code_then_the_hint_then_the_status(
    code: int, status: int, transient: bool | None, retryable: bool
) -> None:
    assert is_retryable(code, http_status=status, is_transient=transient) is retryable


def test_a_graph_error_keeps_only_present_details_as_text() -> None:
    error = error_from_response(400, graph(131056, error_subcode=2494055, fbtrace_id="Ab",
                                           error_data={"messaging_product": "whatsapp", "details": "d"}))
    assert isinstance(error, DeliveryError)
    assert (error.code, error.message, error.retryable, error.http_status) == ("131056", "m", True, 400)
    assert error.details == {"fbtrace_id": "Ab", "error_subcode": "2494055", "type": "OAuthException",
                             "details": "d", "scope": "recipient"}


def test_a_code_sent_as_text_is_read_as_a_number() -> None:
    assert error_from_response(400, graph("130429")).retryable is True


@pytest.mark.parametrize(("status", "body", "retryable"), [
    (500, b"", True),
    (503, b"<html>down</html>", True),
    (429, b"{}", True),
    (408, b"", True),
    (400, b'{"error": "bad"}', False),
    (401, b'{"error": {"message": "no code"}}', False),
    (404, b"not found", False),
])
def test_without_a_graph_error_the_code_is_the_http_status(status: int, body: bytes, retryable: bool) -> None:
    error = error_from_response(status, body)
    assert (error.code, error.retryable, error.http_status, error.details) == (f"http_{status}", retryable, status, {})


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 1.5 ", 1.5), ("-3", 0.0), ("", None), (None, None), ("soon", None), ("nan", None),
    ("Wed, 15 Jan 2030 12:00:30 GMT", 30.0),
    ("Wed, 15 Jan 2030 11:59:00 GMT", 0.0),
])
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    now = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


def test_retry_after_reaches_the_error() -> None:
    assert error_from_response(429, b"", retry_after="12").retry_after_seconds == 12.0
