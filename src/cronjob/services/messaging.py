"""The task handler for WhatsApp messages (``whatsapp.template`` and ``whatsapp.text``)."""

from __future__ import annotations

from cronjob.domain.message import MessageKind, OutboundMessage
from cronjob.domain.schedule import Schedule
from cronjob.ports.sender import MessageSender
from cronjob.ports.tasks import TaskHandler, TaskOutcome


class WhatsAppMessageHandler(TaskHandler):
    """Builds the outbound message from the stored payload and hands it to the sender."""

    task_type = "whatsapp"

    def __init__(self, sender: MessageSender) -> None:
        self._sender = sender

    async def run(self, schedule: Schedule) -> TaskOutcome:
        payload = schedule.payload
        message = OutboundMessage(
            to=payload["to"],
            kind=MessageKind(payload["kind"]),
            body=payload["rendered_body"],
            idempotency_key=schedule.delivery_key,
            template_name=payload.get("template_name"),
            language=payload.get("language") or "pt_BR",
            params=tuple(payload.get("params") or ()),
        )
        receipt = await self._sender.send(message)
        return TaskOutcome(provider_message_id=receipt.message_id, result={"wamid": receipt.message_id})
