"""A MessageSender that records messages instead of sending them (tests, demos, dry runs)."""

from __future__ import annotations

import itertools

from cronjob.domain.message import DeliveryError, OutboundMessage, SendReceipt
from cronjob.ports.sender import MessageSender


class RecordingMessageSender(MessageSender):
    """Keeps every message in ``sent`` and answers with ``wamid.fake.<n>``.

    ``fail_with`` queues errors to raise on the next sends, in order (DeliveryError or
    DeliveryOutcomeUnknown instances), so use-case tests can walk every outcome.
    """

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self._errors: list[Exception] = []
        self._ids = itertools.count(1)

    def fail_with(self, *errors: Exception) -> None:
        """Raise these on the next sends, one per send."""
        self._errors.extend(errors)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if self._errors:
            raise self._errors.pop(0)
        self.sent.append(message)
        return SendReceipt(message_id=f"wamid.fake.{next(self._ids)}")

    async def close(self) -> None:
        return None


class UnconfiguredMessageSender(MessageSender):
    """Stands in when no WhatsApp credentials are configured: every send fails permanently,
    with a message that names the missing settings (never a silent success)."""

    def __init__(self, missing: list[str]) -> None:
        self._missing = missing

    async def send(self, message: OutboundMessage) -> SendReceipt:
        raise DeliveryError(
            "not_configured",
            f"WhatsApp is not configured: set {', '.join(self._missing)}",
            retryable=False,
        )

    async def close(self) -> None:
        return None
