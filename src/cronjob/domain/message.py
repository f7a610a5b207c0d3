"""Outbound messages and what a provider answers. Value objects, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cronjob.domain.template_params import BodyParam
from cronjob.domain.template_parts import TemplateButton, TemplateHeader


class MessageKind(StrEnum):
    """How a WhatsApp message is sent: a pre-approved template, or free text."""

    TEMPLATE = "template"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to send.

    ``body`` is the rendered text (what a text message carries, and what the recipient sees
    for a template). ``template_name``/``language``/``params`` describe a template message (a
    param is a text, a currency amount or a date/time), with
    its ``header`` and ``buttons`` when it has values for them; ``idempotency_key`` names the (schedule, occurrence) this send belongs to, for providers
    that honour one and for logs.
    """

    to: str
    kind: MessageKind
    body: str
    idempotency_key: str
    template_name: str | None = None
    language: str = "pt_BR"
    params: tuple[BodyParam, ...] = ()
    header: TemplateHeader | None = None
    buttons: tuple[TemplateButton, ...] = ()


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """A provider accepted the message: ``message_id`` is its id (a WhatsApp ``wamid``)."""

    message_id: str
    provider: str = "whatsapp"
    raw_status: str | None = None


#: The key of ``DeliveryError.details`` that marks a rate limit and names what it limits.
RATE_LIMIT_SCOPE = "scope"


class DeliveryError(Exception):
    """A provider refused or failed a send.

    ``code`` is the provider's error code as text (Meta's ``error.code``, or ``http_<status>``),
    ``retryable`` whether sending the same message again later may succeed, and
    ``retry_after_seconds`` a delay the provider asked for, when it did. A rate limit says what it
    limits in ``details["scope"]`` (:data:`RATE_LIMIT_SCOPE`): ``recipient`` for this recipient
    only, any other value (``app``, ``phone_number``, ...) for every send.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        http_status: int | None = None,
        retry_after_seconds: float | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        self.retry_after_seconds = retry_after_seconds
        self.details: dict[str, str] = details or {}


class DeliveryOutcomeUnknown(Exception):
    """The request may have reached the provider but no answer came back (a timeout after the
    request was written). Re-sending blindly could deliver twice, so the outcome is recorded as
    unknown instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DeliveryDeferred(Exception):
    """Not sent, on purpose: the provider asked us to slow down, so this send waits ``seconds``
    without counting as an attempt (and without touching the provider)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as stored on a schedule or an attempt."""

    code: str
    message: str
    retryable: bool = False
    details: dict[str, str] = field(default_factory=dict)
