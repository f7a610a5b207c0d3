"""The ``email`` task type: a message sent over SMTP (aiosmtplib).

:class:`EmailHandler` sends one occurrence when it is due, configured by :class:`SmtpSettings`.
The payload's schema, its check when a schedule is created and the rendering of its
placeholders are in :mod:`cronjob_adapters.tasks.email_payload`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import logging
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pydantic

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError, DeliveryOutcomeUnknown
from cronjob.domain.schedule import Schedule
from cronjob.ports.tasks import TaskHandler, TaskOutcome

from cronjob_adapters.cut_short import cut_short
from cronjob_adapters.tasks.email_payload import (
    HEADER_FORBIDDEN,
    EmailPayload,
    RenderedEmail,
    normalize_address,
    render_email,
)
from cronjob_adapters.tasks.validation import invalid_payload

log = logging.getLogger(__name__)

TASK_TYPE = "email"
SCHEDULE_HEADER = "Cronjob-Schedule-Id"

_ENHANCED_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_ADDRESS_LIKE = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server.

    ``use_tls`` is implicit TLS from the first byte (port 465); otherwise ``starttls`` (the
    default) requires the server to offer STARTTLS and upgrades before anything else is sent
    (no silent fallback to plain text); with both False the session is plain text.
    ``use_tls`` wins over ``starttls``. Certificates are verified against the system store
    plus ``cert_bundle`` (a PEM file) unless ``validate_certs`` is False. ``timeout_seconds``
    bounds each network step (connect, each command, the DATA transfer). ``local_hostname``
    is the name sent in EHLO (default: this machine's FQDN). The password never appears in
    the repr or in logs.
    """

    host: str
    port: int
    from_address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    use_tls: bool = False
    timeout_seconds: float = 30.0
    validate_certs: bool = True
    cert_bundle: str | Path | None = None
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if not self.host or HEADER_FORBIDDEN.search(self.host) or self.host != self.host.strip():
            raise ValueError("SMTP host must be a host name or address")
        if not 0 < self.port < 65536:
            raise ValueError(f"SMTP port must be 1..65535, got {self.port}")
        if not self.timeout_seconds > 0:
            raise ValueError("SMTP timeout_seconds must be positive")
        if self.password is not None and not self.username:
            raise ValueError("an SMTP password needs a username")
        if self.local_hostname is not None and (
            not self.local_hostname or any(c.isspace() or not c.isprintable() for c in self.local_hostname)
        ):
            raise ValueError("SMTP local_hostname must be a host name without spaces")
        normalize_address(self.from_address, globally_deliverable=False)

    @property
    def sender(self) -> str:
        """``from_address`` in its ASCII form, for the envelope and the From header."""
        return normalize_address(self.from_address, globally_deliverable=False)

    @property
    def tls_mode(self) -> str:
        return "tls" if self.use_tls else ("starttls" if self.starttls else "plain")


# -- the handler -----------------------------------------------------------------------------


def message_id_for(delivery_key: str, sender: str) -> str:
    """The Message-ID of an occurrence: the same for every attempt of one ``delivery_key``.

    A re-send after a lost answer carries the Message-ID of the first send, so receivers that
    deduplicate on it (and people reading headers) can tell it is the same message.

    The left part is 128 bits of a SHA-256 of the key in base32 (26 characters), short enough
    that the header stays on one line for a sender domain of up to 37 characters (a longer one
    is folded, which is valid but shows as a leading space in some parsers).
    """
    digest = hashlib.sha256(f"cronjob-email:{delivery_key}".encode()).digest()[:16]
    left = base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    domain = sender.rpartition("@")[2]
    return f"<{left}@{domain}>"


class _TrackedSMTP(aiosmtplib.SMTP):
    """An aiosmtplib client that remembers whether the DATA command was started.

    Before DATA the server cannot have the message, so a lost connection is safe to retry;
    from DATA on it may have queued it, so the outcome is unknown.
    """

    data_started: bool = False

    async def data(self, message: str | bytes, /, **kwargs: Any) -> Any:
        self.data_started = True
        return await super().data(message, **kwargs)


class EmailHandler(TaskHandler):
    """Sends an ``email`` schedule's occurrence over SMTP.

    Outcomes follow the :class:`TaskHandler` contract:

    - an SMTP 4xx reply (greeting, AUTH, MAIL, RCPT for every recipient, DATA) is a retryable
      :class:`DeliveryError` ``smtp_<code>``; a 5xx reply is permanent (``smtp_535`` for a
      refused login, ``smtp_550`` for an unknown mailbox, ...);
    - connection refused, connect or greeting timeout, a server that hangs up or stops answering
      before DATA: retryable (``connect_error``, ``connect_timeout``, ``server_disconnected``,
      ``timeout``);
    - a timeout, a lost connection or a cancellation by a shutdown once DATA was sent:
      :class:`DeliveryOutcomeUnknown` (the server may have queued the message); cancelled before
      DATA, the run is released as any other (the server has nothing yet);
    - TLS failures (certificate not trusted, handshake refused) and a server without STARTTLS
      or AUTH when they are configured: permanent (``tls_error``, ``smtp_not_supported``,
      ``smtp_error``): fixing them needs an operator;
    - a payload that no longer validates or renders: permanent ``invalid_payload``.

    Some recipients refused but at least one accepted is a success (the message was sent; a
    retry would duplicate it for the others): the count is in ``result["refused_recipients"]``.
    Logs carry host, port, recipient count, reply codes and the Message-ID: never an address,
    the subject, a body, or the password.
    """

    task_type = TASK_TYPE

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._sender = settings.sender
        if settings.password is not None and settings.tls_mode == "plain":
            log.warning("SMTP credentials for host=%s will be sent without TLS", settings.host)

    def __repr__(self) -> str:
        s = self._settings
        return f"{type(self).__name__}(host={s.host!r}, port={s.port}, tls={s.tls_mode!r})"

    async def run(self, schedule: Schedule) -> TaskOutcome:
        try:
            payload = EmailPayload.model_validate(schedule.payload)
            rendered = render_email(payload)
        except (pydantic.ValidationError, ValidationError) as exc:
            log.warning("email payload refused at run time")
            raise invalid_payload(exc) from None
        message_id = message_id_for(schedule.delivery_key, self._sender)
        try:
            message = self._build(schedule, payload, rendered, message_id)
        except (ValueError, TypeError) as exc:  # a header the email package refuses
            raise self._invalid(f"the message could not be built: {type(exc).__name__}") from None
        recipients = payload.envelope_recipients()
        refused, reply = await self._send(message, recipients)
        result = {"message_id": message_id}
        if reply:
            result["smtp_response"] = _redact(reply)
        if refused:
            codes = sorted({str(response.code) for response in refused.values()})
            result["refused_recipients"] = str(len(refused))
            log.warning(
                "email sent to some recipients only: host=%s recipients=%d refused=%d codes=%s message_id=%s",
                self._settings.host, len(recipients), len(refused), ",".join(codes), message_id,
            )
        else:
            log.info(
                "email sent: host=%s recipients=%d message_id=%s",
                self._settings.host, len(recipients), message_id,
            )
        return TaskOutcome(provider_message_id=message_id, result=result)

    def _build(
        self, schedule: Schedule, payload: EmailPayload, rendered: RenderedEmail, message_id: str
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(payload.to)
        if payload.cc:
            message["Cc"] = ", ".join(payload.cc)
        # Bcc recipients are in the envelope only, never in a header.
        if payload.reply_to:
            message["Reply-To"] = payload.reply_to
        message["Subject"] = rendered.subject
        message["Date"] = email.utils.format_datetime(datetime.now(UTC))
        message["Message-ID"] = message_id
        message[SCHEDULE_HEADER] = schedule.id
        message.set_content(rendered.text)
        if rendered.html is not None:
            message.add_alternative(rendered.html, subtype="html")
        return message

    def _client(self) -> _TrackedSMTP:
        s = self._settings
        return _TrackedSMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            local_hostname=s.local_hostname,
            timeout=s.timeout_seconds,
            use_tls=s.use_tls,
            start_tls=bool(s.starttls and not s.use_tls),
            validate_certs=s.validate_certs,
            cert_bundle=str(s.cert_bundle) if s.cert_bundle is not None else None,
        )

    async def _send(
        self, message: EmailMessage, recipients: list[str]
    ) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        client = self._client()
        polite = True  # say QUIT at the end; not after a cancellation (the server may not answer)
        try:
            await client.connect()
            return await client.send_message(message, sender=self._sender, recipients=recipients)
        except asyncio.CancelledError:
            polite = False
            if client.data_started:
                log.warning("email outcome unknown: host=%s cancelled by a shutdown after DATA",
                            self._settings.host)
                raise cut_short("the email (its DATA command)") from None
            raise  # nothing the server could queue yet: the run is released and sent again
        except Exception as exc:
            classified = self._classify(exc, client.data_started, len(recipients))
            if classified is exc:
                raise
            raise classified from exc
        finally:
            await self._close(client, quit=polite)

    @staticmethod
    async def _close(client: _TrackedSMTP, *, quit: bool = True) -> None:
        if quit and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass  # the message's fate is already known; QUIT is a courtesy
        client.close()

    # -- classification ------------------------------------------------------------------------

    def _classify(self, exc: Exception, data_started: bool, recipients: int) -> Exception:
        host = self._settings.host
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            return self._recipients_refused(exc, recipients)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._reply_error(exc.code, exc.message, data_started, stage=_stage(exc))
        tls = _tls_cause(exc)
        if tls is not None:
            log.warning("email not sent, TLS failed: host=%s error=%s", host, type(tls).__name__)
            reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or type(tls).__name__
            return DeliveryError("tls_error", f"TLS with {host} failed: {reason}", retryable=False)
        if isinstance(exc, (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected, OSError)):
            if data_started and not isinstance(exc, aiosmtplib.SMTPConnectError):
                log.warning(
                    "email outcome unknown: host=%s recipients=%d error=%s after DATA",
                    host, recipients, type(exc).__name__,
                )
                return DeliveryOutcomeUnknown(
                    f"{type(exc).__name__} after the DATA command was sent; the SMTP server may have "
                    "queued the message"
                )
            code = _transport_code(exc)
            log.warning("email not sent: host=%s code=%s (%s)", host, code, type(exc).__name__)
            return DeliveryError(code, f"{type(exc).__name__}: {_redact(str(exc))}", retryable=True)
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            log.warning("email not sent: host=%s code=smtp_not_supported", host)
            return DeliveryError("smtp_not_supported", _redact(str(exc)), retryable=False)
        if isinstance(exc, aiosmtplib.SMTPException):
            # STARTTLS or AUTH configured but not offered by the server, and the like.
            log.warning("email not sent: host=%s code=smtp_error", host)
            return DeliveryError("smtp_error", _redact(str(exc)), retryable=False)
        if isinstance(exc, ValueError):  # an address the client refused before sending anything
            return self._invalid(f"refused by the SMTP client before sending: {type(exc).__name__}")
        return exc  # a bug: the dispatcher records it as an internal error

    def _reply_error(self, code: int, text: str, data_started: bool, *, stage: str) -> Exception:
        enhanced = _ENHANCED_STATUS.match(text or "")
        details = {"smtp_code": str(code), "stage": stage}
        if enhanced:
            details["enhanced_status"] = enhanced.group(1)
        message = f"SMTP {code} at {stage}: {_redact(text)}"
        if 400 <= code < 600:
            retryable = code < 500
            log.warning(
                "email refused: host=%s stage=%s reply=%d retryable=%s",
                self._settings.host, stage, code, retryable,
            )
            return DeliveryError(f"smtp_{code}", message, retryable=retryable, details=details)
        # Not an error reply at all (a 2xx/3xx where another was expected): a confused peer.
        log.warning("email: unexpected reply host=%s stage=%s reply=%d", self._settings.host, stage, code)
        if data_started:
            return DeliveryOutcomeUnknown(f"unexpected SMTP reply {code} once DATA was sent: {_redact(text)}")
        return DeliveryError(f"smtp_{code}", message, retryable=True, details=details)

    def _recipients_refused(self, exc: aiosmtplib.SMTPRecipientsRefused, recipients: int) -> DeliveryError:
        codes = [refusal.code for refusal in exc.recipients]
        temporary = [c for c in codes if 400 <= c < 500]
        # Retryable when any refusal was temporary: that recipient may accept it later.
        code = temporary[0] if temporary else (codes[0] if codes else 550)
        first = next((r for r in exc.recipients if r.code == code), None)
        text = first.message if first is not None else ""
        details = {"smtp_code": str(code), "stage": "rcpt", "refused_recipients": str(len(codes))}
        enhanced = _ENHANCED_STATUS.match(text or "")
        if enhanced:
            details["enhanced_status"] = enhanced.group(1)
        log.warning(
            "email refused for every recipient: host=%s recipients=%d codes=%s",
            self._settings.host, recipients, ",".join(str(c) for c in sorted(set(codes))),
        )
        return DeliveryError(
            f"smtp_{code}",
            f"every recipient was refused ({len(codes)}); SMTP {code}: {_redact(text)}",
            retryable=bool(temporary),
            details=details,
        )

    @staticmethod
    def _invalid(message: str) -> DeliveryError:
        log.warning("email payload refused at run time: %s", message)
        return DeliveryError("invalid_payload", message, retryable=False)


def _stage(exc: aiosmtplib.SMTPResponseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return "greeting"
    if isinstance(exc, aiosmtplib.SMTPHeloError):
        return "ehlo"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "auth"
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "mail"
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return "rcpt"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "data"
    return "command"


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind ``exc`` (raised by STARTTLS, or wrapped by a TLS connect)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _transport_code(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
        return "connect_timeout"
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return "connect_error"
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return "timeout"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return "server_disconnected"
    return "connect_error"


def _redact(text: str, limit: int = 300) -> str:
    """A server's reply text without mailbox addresses (they often echo the recipient), cut short."""
    cleaned = _ADDRESS_LIKE.sub("<address>", text or "").strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
