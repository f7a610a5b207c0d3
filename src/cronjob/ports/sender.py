"""Sending messages to people (WhatsApp first)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from cronjob.domain.message import OutboundMessage, SendReceipt


class MessageSender(ABC):
    """Hands one message to a provider.

    Contract:

    - ``send`` returns a :class:`SendReceipt` with the provider's message id when the provider
      accepted the message.
    - It raises :class:`cronjob.domain.message.DeliveryError` when the provider refused it or
      could not be reached before the request was sent, with ``retryable`` set by the
      provider's rules (rate limits and 5xx retry; template and recipient errors do not); a
      rate limit carries what it limits in ``details["scope"]`` (see ``DeliveryError``).
    - It raises :class:`cronjob.domain.message.DeliveryOutcomeUnknown` when the request was
      sent but no answer came (the provider may have the message).
    - It never logs the message body or credentials.
    """

    @abstractmethod
    async def send(self, message: OutboundMessage) -> SendReceipt:
        """Send ``message``; see the class contract for the outcomes."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""
