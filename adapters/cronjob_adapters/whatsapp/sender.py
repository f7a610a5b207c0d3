"""The WhatsApp Cloud API :class:`MessageSender`: one POST to Meta's Graph API per message."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from cronjob.domain.message import DeliveryError, DeliveryOutcomeUnknown, OutboundMessage, SendReceipt
from cronjob.ports.sender import MessageSender

from cronjob_adapters.cut_short import cut_short
from cronjob_adapters.whatsapp.errors import error_from_response
from cronjob_adapters.whatsapp.payloads import message_body

log = logging.getLogger(__name__)

PROVIDER = "whatsapp"


class WhatsAppCloudSender(MessageSender):
    """Sends through ``POST {api_url}/{api_version}/{phone_number_id}/messages``.

    Outcomes follow the port's contract. A failure to connect (refused, DNS, connect or pool
    timeout) never reached Meta and is a retryable :class:`DeliveryError`; any transport failure
    once the request may have been written (read timeout, reset, the server hanging up) is a
    :class:`DeliveryOutcomeUnknown`, because Meta has no idempotency key and a re-send could
    deliver twice. A 2xx without ``messages[0].id`` is also an unknown outcome: Meta answers 2xx
    only when it took the request, so "failed" would be false and a re-send could duplicate.
    So is a request cancelled by a shutdown once it began to be written (see :func:`cut_short`):
    one cancelled while still waiting for a connection is released like any other run.

    The token is sent only in the client's default headers (httpx masks it in reprs); logs carry
    the HTTP status, the wamid and Meta's error code, never the recipient, body or token, and
    Meta's error texts, which a schedule shows, have the token replaced (Graph quotes one it
    cannot read).
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        phone_number_id: str,
        *,
        api_version: str = "v23.0",
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = f"{api_url.rstrip('/')}/{api_version}/{phone_number_id}/messages"
        self._secrets = (token,)
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._url!r})"

    async def send(self, message: OutboundMessage) -> SendReceipt:
        try:
            body = message_body(message)
        except ValueError as exc:
            raise DeliveryError("invalid_message", str(exc), retryable=False) from exc
        written = False

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal written  # from the first byte of the request on, Meta may have the message
            written = written or ".send_request_headers." in event

        try:
            response = await self._client.post(self._url, json=body, extensions={"trace": trace})
        except asyncio.CancelledError:
            if not written:  # still waiting for a connection: nothing left, released as any run
                raise
            log.warning("whatsapp send outcome unknown: cut short in flight (by a shutdown, or at the run's time limit)")
            raise cut_short("the WhatsApp request") from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._not_sent("timeout", exc) from exc
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            raise self._not_sent("connect_error", exc) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            # Refused by our own HTTP stack before any byte left; a retry would fail the same way.
            log.warning("whatsapp send not attempted: %s", type(exc).__name__)
            raise DeliveryError("invalid_request", type(exc).__name__, retryable=False) from exc
        except httpx.TransportError as exc:
            log.warning("whatsapp send outcome unknown: %s", type(exc).__name__)
            raise DeliveryOutcomeUnknown(
                f"{type(exc).__name__} after the request was sent; Meta may have the message"
            ) from exc
        if response.is_success:
            return self._receipt(response)
        error = error_from_response(
            response.status_code, response.content, retry_after=response.headers.get("retry-after"),
            secrets=self._secrets,
        )
        log.warning(
            "whatsapp send refused: status=%s code=%s retryable=%s",
            response.status_code, error.code, error.retryable,
        )
        raise error

    async def close(self) -> None:
        await self._client.aclose()

    @staticmethod
    def _not_sent(code: str, exc: httpx.TransportError) -> DeliveryError:
        log.warning("whatsapp send not delivered to Meta: %s (%s)", code, type(exc).__name__)
        return DeliveryError(code, f"{type(exc).__name__}: Meta was not reached", retryable=True)

    @staticmethod
    def _receipt(response: httpx.Response) -> SendReceipt:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        messages = payload.get("messages") if isinstance(payload, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            log.warning("whatsapp send answered without a wamid: status=%s", response.status_code)
            raise DeliveryOutcomeUnknown(
                f"invalid_response: HTTP {response.status_code} without messages[0].id"
            )
        status = first.get("message_status") if isinstance(first, dict) else None
        log.info("whatsapp send accepted: status=%s wamid=%s", response.status_code, wamid)
        return SendReceipt(
            message_id=wamid, provider=PROVIDER, raw_status=status if isinstance(status, str) else None
        )
