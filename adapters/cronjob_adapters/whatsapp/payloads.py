"""OutboundMessage -> the JSON body of Meta's ``POST /{Version}/{Phone-Number-ID}/messages``. Pure.

The shapes are the spec's ``TemplateMessage`` and ``TextMessage`` (operationId ``sendMessage`` in
``business-messaging-api_v23.0.yaml``). The spec marks ``recipient_type`` and
``template.language.policy`` as required while Meta's prose docs omit them; both are sent
(``"individual"``, ``"deterministic"``), which satisfies both readings.
"""

from __future__ import annotations

from typing import Any

from cronjob.domain.message import MessageKind, OutboundMessage
from cronjob.domain.template_params import BodyParam
from cronjob.domain.template_parts import ButtonKind, HeaderKind, TemplateHeader


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
    components: list[dict[str, Any]] = []
    if message.header is not None:
        components.append({"type": "header", "parameters": [_header_parameter(message.header)]})
    if message.params:
        components.append({"type": "body", "parameters": [_body_parameter(p) for p in message.params]})
    for button in message.buttons:
        value = ({"type": "text", "text": button.value} if button.kind is ButtonKind.URL
                 else {"type": "payload", "payload": button.value})
        components.append({"type": "button", "sub_type": button.kind.value, "index": str(button.index),
                           "parameters": [value]})
    if components:
        template["components"] = components
    return template


def _body_parameter(param: BodyParam) -> dict[str, Any]:
    """A body parameter: ``TextParameter``, ``CurrencyParameter`` or ``DateTimeParameter``."""
    if isinstance(param, str):
        return {"type": "text", "text": param}
    value = param.to_json()
    kind = value.pop("type")
    return {"type": kind, kind: value}


def _header_parameter(header: TemplateHeader) -> dict[str, Any]:
    """The header component's parameter: its text, or its media (``MediaObject``: by link or id)."""
    if header.kind is HeaderKind.TEXT:
        return {"type": "text", "text": header.text}
    media: dict[str, str] = {"link": header.link} if header.link is not None else {"id": header.media_id or ""}
    if header.filename is not None:
        media["filename"] = header.filename
    return {"type": header.kind.value, header.kind.value: media}
