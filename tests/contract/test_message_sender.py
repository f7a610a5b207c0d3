"""The MessageSender contract, run against every sender: the WhatsApp Cloud API adapter (against a
local fake of Meta's API) and the shipped recording fake.

How a refusal is classified (its code, retryable or not) is checked on the WhatsApp leg only: it is
the adapter's mapping of Meta's errors, while the recording fake raises what the test scripted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from cronjob.domain.message import DeliveryError, MessageKind, OutboundMessage
from cronjob.ports.sender import MessageSender
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.whatsapp.sender import WhatsAppCloudSender
from tests.support.fake_whatsapp import FakeWhatsApp, graph_error


#: What a peer received: (recipient, kind, text or template name, parameters), per message.
Received = tuple[str, str, str, tuple[str, ...]]


@dataclass
class SenderRig:
    """A sender plus ways to make its peer refuse the next send, and what its peer received."""

    sender: MessageSender
    rate_limit_next: Callable[[], None]
    refuse_next_permanently: Callable[[], None]
    received: Callable[[], list[Received]]


def _recorded(message: OutboundMessage) -> Received:
    if message.kind is MessageKind.TEMPLATE:
        return (message.to, "template", message.template_name or "", tuple(message.params))
    return (message.to, "text", message.body, ())


def _sent_to_meta(fake: FakeWhatsApp) -> list[Received]:
    """The messages Meta's fake accepted, read back from the request bodies it recorded."""
    received: list[Received] = []
    for request in fake.requests:
        body = request.body
        if request.status != 200 or not isinstance(body, dict):
            continue
        if body.get("type") == "template":
            params = tuple(parameter["text"] for component in body["template"].get("components", [])
                           for parameter in component.get("parameters", []))
            received.append((body["to"], "template", body["template"]["name"], params))
        else:
            received.append((body["to"], "text", body["text"]["body"], ()))
    return received


@asynccontextmanager
async def _whatsapp_rig() -> AsyncIterator[SenderRig]:
    """The WhatsApp Cloud API sender against a local fake of Meta's API, refusing as Meta does."""
    with FakeWhatsApp() as fake:
        sender = WhatsAppCloudSender(fake.url, fake.token, fake.phone_number_id, timeout_seconds=5)
        try:
            yield SenderRig(
                sender,
                lambda: fake.fail_next(400, graph_error(130429, "Rate limit hit")),
                lambda: fake.fail_next(400, graph_error(132001, "Template name does not exist in the translation")),
                lambda: _sent_to_meta(fake),
            )
        finally:
            await sender.close()


@pytest.fixture(params=["whatsapp", "recording"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[SenderRig]:
    if request.param == "recording":
        recording = RecordingMessageSender()
        yield SenderRig(
            recording,
            lambda: recording.fail_with(DeliveryError("130429", "rate limit hit", retryable=True)),
            lambda: recording.fail_with(DeliveryError("132001", "template does not exist", retryable=False)),
            lambda: [_recorded(m) for m in recording.sent],
        )
        return
    async with _whatsapp_rig() as whatsapp:
        yield whatsapp


@pytest.fixture
async def whatsapp_rig() -> AsyncIterator[SenderRig]:
    """The WhatsApp leg alone: how the adapter maps Meta's errors (the recording fake's errors
    are whatever the test scripted, so there is nothing to check there)."""
    async with _whatsapp_rig() as whatsapp:
        yield whatsapp


def message(kind: MessageKind = MessageKind.TEMPLATE) -> OutboundMessage:
    return OutboundMessage(to="5511999999999", kind=kind, body="Olá, Leandro!", idempotency_key="s1:2030",
                           template_name="notificacao_entrega" if kind is MessageKind.TEMPLATE else None,
                           params=("Leandro",) if kind is MessageKind.TEMPLATE else ())


#: What the peer receives of ``message()``.
SENT: Received = ("5511999999999", "template", "notificacao_entrega", ("Leandro",))


@pytest.mark.parametrize("kind", list(MessageKind))
async def test_an_accepted_message_returns_the_provider_id(rig: SenderRig, kind: MessageKind) -> None:
    first = await rig.sender.send(message(kind))
    second = await rig.sender.send(message(kind))
    assert first.message_id and second.message_id and first.message_id != second.message_id


async def test_the_peer_receives_each_accepted_message_as_given_and_no_refused_one(rig: SenderRig) -> None:
    text = OutboundMessage(to="5511988887777", kind=MessageKind.TEXT, body="Seu código: 4321",
                           idempotency_key="s2:2030")
    await rig.sender.send(message())
    rig.refuse_next_permanently()
    with pytest.raises(DeliveryError):
        await rig.sender.send(OutboundMessage(to="5511900000000", kind=MessageKind.TEXT, body="recusada",
                                              idempotency_key="s3:2030"))
    await rig.sender.send(text)
    assert rig.received() == [("5511999999999", "template", "notificacao_entrega", ("Leandro",)),
                              ("5511988887777", "text", "Seu código: 4321", ())]


async def test_a_rate_limited_send_raises_delivers_nothing_and_the_next_goes_through(rig: SenderRig) -> None:
    rig.rate_limit_next()
    with pytest.raises(DeliveryError):
        await rig.sender.send(message())
    assert rig.received() == []
    assert (await rig.sender.send(message())).message_id
    assert rig.received() == [SENT]


async def test_a_permanently_refused_send_raises_delivers_nothing_and_the_next_goes_through(rig: SenderRig) -> None:
    rig.refuse_next_permanently()
    with pytest.raises(DeliveryError):
        await rig.sender.send(message())
    assert rig.received() == []
    assert (await rig.sender.send(message())).message_id
    assert rig.received() == [SENT]


async def test_rate_limits_are_retryable(whatsapp_rig: SenderRig) -> None:
    whatsapp_rig.rate_limit_next()
    with pytest.raises(DeliveryError) as error:
        await whatsapp_rig.sender.send(message())
    assert error.value.retryable and error.value.code == "130429"
    assert (await whatsapp_rig.sender.send(message())).message_id  # and the next send goes through


async def test_template_errors_are_permanent(whatsapp_rig: SenderRig) -> None:
    whatsapp_rig.refuse_next_permanently()
    with pytest.raises(DeliveryError) as error:
        await whatsapp_rig.sender.send(message())
    assert not error.value.retryable and error.value.code == "132001"
