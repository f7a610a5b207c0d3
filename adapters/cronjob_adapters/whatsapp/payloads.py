"""OutboundMessage -> the JSON body of Meta's ``POST /{Version}/{Phone-Number-ID}/messages``. Pure.

The shapes are the spec's ``TemplateMessage`` and ``TextMessage`` (operationId ``sendMessage`` in
``business-messaging-api_v23.0.yaml``). The spec marks ``recipient_type`` and
``template.language.policy`` as required while Meta's prose docs omit them; both are sent
(``"individual"``, ``"deterministic"``), which satisfies both readings.
"""

from __future__ import annotations

from typing import Any

from cronjob.domain.message import MessageKind, OutboundMessage


def message_body(message: OutboundMessage) -> dict[str, Any]:
    """The request body that sends ``message``.

    Raises :class:`ValueError` for a message that cannot be expressed (a template without a name,
    an empty recipient); nothing about it would change on a retry.
    """
    if not message.to:
        raise ValueError("message has no recipient")
    envelope: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
    }
    if message.kind is MessageKind.TEMPLATE:
        return {**envelope, "type": "template", "template": _template(message)}
    if message.kind is MessageKind.TEXT:
        return {**envelope, "type": "text", "text": {"preview_url": False, "body": message.body}}
    raise ValueError(f"unsupported message kind {message.kind!r}")


def _template(message: OutboundMessage) -> dict[str, Any]:
    if not message.template_name:
        raise ValueError("template message without template_name")
    template: dict[str, Any] = {
        "name": message.template_name,
        "language": {"policy": "deterministic", "code": message.language},
    }
    if message.params:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in message.params]}
        ]
    return template
