"""The MessageSender contract, run against every sender: the WhatsApp Cloud API adapter (against a
local fake of Meta's API) and the shipped recording fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from cronjob.domain.message import DeliveryError, MessageKind, OutboundMessage
from cronjob.ports.sender import MessageSender
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.whatsapp.sender import WhatsAppCloudSender
from tests.support.fake_whatsapp import FakeWhatsApp, graph_error


@dataclass
class SenderRig:
    """A sender plus ways to make its peer refuse the next send."""

    sender: MessageSender
    rate_limit_next: Callable[[], None]
    refuse_next_permanently: Callable[[], None]


@pytest.fixture(params=["whatsapp", "recording"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[SenderRig]:
    if request.param == "recording":
        recording = RecordingMessageSender()
        yield SenderRig(
            recording,
            lambda: recording.fail_with(DeliveryError("130429", "rate limit hit", retryable=True)),
            lambda: recording.fail_with(DeliveryError("132001", "template does not exist", retryable=False)),
        )
        return
    with FakeWhatsApp() as fake:
        sender = WhatsAppCloudSender(fake.url, fake.token, fake.phone_number_id, timeout_seconds=5)
        yield SenderRig(
            sender,
            lambda: fake.fail_next(400, graph_error(130429, "Rate limit hit")),
            lambda: fake.fail_next(400, graph_error(132001, "Template name does not exist in the translation")),
        )
        await sender.close()


def message(kind: MessageKind = MessageKind.TEMPLATE) -> OutboundMessage:
    return OutboundMessage(to="5511999999999", kind=kind, body="Olá, Leandro!", idempotency_key="s1:2030",
                           template_name="notificacao_entrega" if kind is MessageKind.TEMPLATE else None,
                           params=("Leandro",) if kind is MessageKind.TEMPLATE else ())


@pytest.mark.parametrize("kind", list(MessageKind))
async def test_an_accepted_message_returns_the_provider_id(rig: SenderRig, kind: MessageKind) -> None:
    first = await rig.sender.send(message(kind))
    second = await rig.sender.send(message(kind))
    assert first.message_id and second.message_id and first.message_id != second.message_id


async def test_rate_limits_are_retryable(rig: SenderRig) -> None:
    rig.rate_limit_next()
    with pytest.raises(DeliveryError) as error:
        await rig.sender.send(message())
    assert error.value.retryable and error.value.code == "130429"
    assert (await rig.sender.send(message())).message_id  # and the next send goes through


async def test_template_errors_are_permanent(rig: SenderRig) -> None:
    rig.refuse_next_permanently()
    with pytest.raises(DeliveryError) as error:
        await rig.sender.send(message())
    assert not error.value.retryable and error.value.code == "132001"
