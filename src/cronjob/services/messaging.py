"""The task handler for WhatsApp messages (``whatsapp.template`` and ``whatsapp.text``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryDeferred, DeliveryError, MessageKind, OutboundMessage
from cronjob.domain.template import TemplateRenderer
from cronjob.domain.schedule import Schedule
from cronjob.domain.template_params import body_params, check_sendable, shown, stored
from cronjob.domain.template_parts import TemplateHeader, template_buttons
from cronjob.ports.sender import MessageSender
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.throttle import RateLimitThrottle


_RENDERER = TemplateRenderer()


def prepare_whatsapp_payload(payload: dict[str, Any], *, default_language: str = "pt_BR") -> dict[str, Any]:
    """Check a WhatsApp payload against its body and render it, at scheduling time.

    ``payload`` has ``to``, ``kind`` (template | text), ``body`` with ``{{1}}``.. placeholders,
    ``params`` (strings; for a template also currency and date_time objects, rendered as their
    ``fallback_value``: see :mod:`cronjob.domain.template_params`), and for a template
    ``template_name`` (and optionally ``language``, ``header`` and ``buttons``: see
    :mod:`cronjob.domain.template_parts`). Returns the
    stored payload, with ``rendered_body`` and ``to`` without a leading ``+`` (E.164 digits); a
    mismatch is a :class:`ValidationError`.
    """
    kind = MessageKind(payload.get("kind", MessageKind.TEMPLATE))
    if kind is MessageKind.TEMPLATE and not payload.get("template_name"):
        raise ValidationError("templateName is required when type is 'template'", field="templateName")
    params = body_params(p if isinstance(p, dict) else str(p) for p in payload.get("params") or [])
    for index, param in enumerate(params):
        if kind is MessageKind.TEMPLATE:
            check_sendable(param, field=f"params.{index}")
        elif not isinstance(param, str):
            raise ValidationError("a currency or date_time param is a template's: a text message takes strings",
                                  field=f"params.{index}")
    rendered = _RENDERER.render(payload["body"], [shown(p) for p in params])
    if kind is MessageKind.TEXT and not rendered.strip():
        raise ValidationError("a text message must not be blank (Meta refuses an empty text): "
                              + ("the body is only whitespace" if not payload["body"].strip()
                                 else "the params fill the body with whitespace only"), field="body")
    prepared: dict[str, Any] = {
        "to": str(payload["to"]).removeprefix("+"),
        "kind": kind.value,
        "body": payload["body"],
        "rendered_body": rendered,
        "params": [stored(p) for p in params],
        "template_name": payload.get("template_name"),
        "language": payload.get("language") or default_language,
    }
    header, buttons = payload.get("header"), payload.get("buttons")
    if (header or buttons) and kind is not MessageKind.TEMPLATE:
        raise ValidationError("a header and buttons are a template's: a text message has none",
                              field="header" if header else "buttons")
    if header:
        parsed = TemplateHeader.from_json(header)
        if parsed.text is not None:
            check_sendable(parsed.text, field="header.text")
        prepared["header"] = parsed.to_json()
    if buttons:
        prepared["buttons"] = [button.to_json() for button in template_buttons(buttons)]
    return prepared


class WhatsAppMessageHandler(TaskHandler):
    """Builds the outbound message from the stored payload and hands it to the sender.

    With a :class:`RateLimitThrottle`, sends that a recent rate limit concerns are deferred
    instead of hammering Meta (and spending their attempts).
    """

    task_type = "whatsapp"

    def __init__(self, sender: MessageSender, throttle: RateLimitThrottle | None = None) -> None:
        self._sender = sender
        self._throttle = throttle

    def hold_back(self, schedule: Schedule) -> timedelta | None:
        """A recent rate limit that concerns this recipient (or every send) holds the run back
        before it starts: no ``started`` event for a send that is not made."""
        if self._throttle is None:
            return None
        wait = self._throttle.wait_for(str(schedule.payload.get("to", "")))
        return timedelta(seconds=wait) if wait > 0 else None

    async def run(self, schedule: Schedule) -> TaskOutcome:
        payload = schedule.payload
        message = OutboundMessage(
            to=payload["to"],
            kind=MessageKind(payload["kind"]),
            body=payload["rendered_body"],
            idempotency_key=schedule.delivery_key,
            template_name=payload.get("template_name"),
            language=payload.get("language") or "pt_BR",
            params=body_params(payload.get("params") or ()),
            header=TemplateHeader.from_json(payload["header"]) if payload.get("header") else None,
            buttons=template_buttons(payload.get("buttons") or ()),
        )
        if self._throttle is not None:
            wait = self._throttle.wait_for(message.to)
            if wait > 0:
                raise DeliveryDeferred(wait, "WhatsApp rate limit: holding back sends")
        try:
            receipt = await self._sender.send(message)
        except DeliveryError as exc:
            if self._throttle is not None:
                self._throttle.record(exc, message.to)
            raise
        return TaskOutcome(provider_message_id=receipt.message_id, result={"wamid": receipt.message_id})
