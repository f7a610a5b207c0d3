"""The ``email`` task type: a message sent over SMTP (aiosmtplib).

Three parts: :class:`EmailPayload` (the payload's schema, version :attr:`EmailPayload.VERSION`),
:func:`prepare_email_payload` (checks a payload when a schedule is created) and
:class:`EmailHandler` (sends one occurrence when it is due, configured by :class:`SmtpSettings`).

Addresses are checked with ``email-validator`` (the library behind pydantic's ``EmailStr``),
called directly so that only ASCII mailboxes are accepted (no SMTPUTF8 needed from the server)
and internationalised domains are stored in their ASCII (IDNA) form, ready for the envelope.

Placeholders: ``params`` (``{{1}}``..) and ``named`` (``{{name}}``) are shared by the subject,
the text and the html: ``{{1}}`` is the same value everywhere, and together the three must use
every parameter exactly (the domain's :class:`~cronjob.domain.template.TemplateRenderer` rule).
"""

from __future__ import annotations

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
from typing import Annotated, Any, ClassVar

import aiosmtplib
import pydantic
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError, DeliveryOutcomeUnknown
from cronjob.domain.schedule import Schedule
from cronjob.domain.template import TemplateRenderer
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob_adapters.tasks.validation import domain_error, invalid_payload

log = logging.getLogger(__name__)

TASK_TYPE = "email"
SCHEDULE_HEADER = "Cronjob-Schedule-Id"
MAX_RECIPIENTS_PER_FIELD = 50
# RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients in one transaction.
MAX_RECIPIENTS = 100
MAX_SUBJECT_CHARS = 998  # RFC 5322 2.1.1: the longest line a header may have
MAX_BODY_CHARS = 1_000_000
MAX_PARAMS = 100

_RENDERER = TemplateRenderer()
# C0 controls but TAB, DEL, C1 controls and the Unicode line/paragraph separators: any of them
# in a header could end it (header injection) or be folded into a line break by a mail client.
_HEADER_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_ENHANCED_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_ADDRESS_LIKE = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


# -- addresses -------------------------------------------------------------------------------


def normalize_address(value: str, *, globally_deliverable: bool = True) -> str:
    """The ASCII form of a mailbox (``local@domain``, IDNA domain), or :class:`ValueError`.

    No display name, no quoted local part, no non-ASCII local part (that would need SMTPUTF8);
    the domain needs a dot and, when ``globally_deliverable``, must not be a special-use name
    (``.test``, ``.localhost``, ...). No DNS lookup is made.
    """
    if not isinstance(value, str):
        raise ValueError("an email address must be text")
    try:
        checked = validate_email(
            value,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_display_name=False,
            globally_deliverable=globally_deliverable,
        )
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    assert checked.ascii_email is not None  # allow_smtputf8=False guarantees it
    return checked.ascii_email


Address = Annotated[
    str,
    AfterValidator(normalize_address),
    Field(max_length=254, json_schema_extra={"format": "email"}),
]


def _check_header_text(value: str, what: str) -> str:
    if _HEADER_FORBIDDEN.search(value):
        raise ValueError(f"{what} must be one line: no CR, LF or other control characters")
    return value


# -- the payload -----------------------------------------------------------------------------


class EmailPayload(BaseModel):
    """The payload of an ``email`` schedule (version 1)."""

    VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="forbid", title="EmailPayload")

    to: list[Address] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS_PER_FIELD,
        description="Recipients shown in the To header (1 to 50 addresses, local@domain, ASCII local part).",
    )
    cc: list[Address] = Field(
        default_factory=list,
        max_length=MAX_RECIPIENTS_PER_FIELD,
        description="Recipients shown in the Cc header (at most 50).",
    )
    bcc: list[Address] = Field(
        default_factory=list,
        max_length=MAX_RECIPIENTS_PER_FIELD,
        description="Blind-copy recipients: in the SMTP envelope only, never in a header (at most 50).",
    )
    subject: str = Field(
        min_length=1,
        max_length=MAX_SUBJECT_CHARS,
        description=(
            "Subject line, 1 to 998 characters, one line (no CR/LF). May hold {{1}}/{{name}} "
            "placeholders filled from params/named; the rendered subject must also be one line."
        ),
    )
    text: str = Field(
        min_length=1,
        max_length=MAX_BODY_CHARS,
        description="Plain-text body (text/plain, UTF-8). May hold {{1}}/{{name}} placeholders.",
    )
    html: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BODY_CHARS,
        description=(
            "Optional HTML body, sent as the text/html alternative of the plain text. May hold "
            "{{1}}/{{name}} placeholders; values are inserted as they are (escape them yourself)."
        ),
    )
    params: list[str] = Field(
        default_factory=list,
        max_length=MAX_PARAMS,
        description=(
            "Positional values for {{1}}..{{n}}, shared by subject, text and html; together they "
            "must use each one (numbered from 1, no gaps)."
        ),
    )
    named: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_PARAMS,
        description="Values for {{name}} placeholders, shared by subject, text and html; each must be used.",
    )
    reply_to: Address | None = Field(
        default=None,
        description="Optional address for the Reply-To header.",
    )

    @field_validator("subject")
    @classmethod
    def _subject_one_line(cls, value: str) -> str:
        return _check_header_text(value, "the subject")

    @model_validator(mode="after")
    def _recipient_total(self) -> EmailPayload:
        total = len(self.to) + len(self.cc) + len(self.bcc)
        if total > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in all (to, cc and bcc), got {total}")
        return self

    def envelope_recipients(self) -> list[str]:
        """Every recipient (to, cc, bcc) once, in that order (case-insensitive duplicates dropped)."""
        seen: set[str] = set()
        recipients: list[str] = []
        for address in [*self.to, *self.cc, *self.bcc]:
            key = address.lower()
            if key not in seen:
                seen.add(key)
                recipients.append(address)
        return recipients


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """Subject and bodies with every placeholder filled."""

    subject: str
    text: str
    html: str | None


def render_email(payload: EmailPayload) -> RenderedEmail:
    """Fill the placeholders of subject, text and html with the shared ``params``/``named``.

    Raises the domain's :class:`ValidationError` naming the field at fault (``subject``, ``text``,
    ``html``, ``params`` or ``named``). The three templates are rendered in one pass of the
    domain's renderer, joined by a separator character that none of them nor any value holds,
    so the renderer's exact-fit rule applies to the three together.
    """
    templates = {"subject": payload.subject, "text": payload.text}
    if payload.html is not None:
        templates["html"] = payload.html
    _check_fit(templates, payload.params, payload.named)
    separator = _separator([*templates.values(), *payload.params, *payload.named.values()])
    try:
        joined = _RENDERER.render(separator.join(templates.values()), payload.params, payload.named)
    except ValidationError as exc:  # _check_fit should have said it first, with a better field
        raise ValidationError(exc.message, field=exc.field if exc.field != "body" else "text") from None
    parts = dict(zip(templates, joined.split(separator), strict=True))
    subject = parts["subject"]
    if len(subject) > MAX_SUBJECT_CHARS:
        raise ValidationError(
            f"the rendered subject is {len(subject)} characters, more than {MAX_SUBJECT_CHARS}",
            field="subject",
        )
    if _HEADER_FORBIDDEN.search(subject):
        raise ValidationError(
            "the rendered subject must be one line: a param put a CR, LF or control character in it",
            field="subject",
        )
    return RenderedEmail(subject=subject, text=parts["text"], html=parts.get("html"))


def _check_fit(templates: dict[str, str], params: list[str], named: dict[str, str]) -> None:
    """The renderer's exact-fit rule over the templates together, naming the field at fault."""
    first_use: dict[str, str] = {}  # named placeholder -> the first field that uses it
    first_number: dict[int, str] = {}  # positional placeholder ("01" is 1) -> the first field
    for name, template in templates.items():
        for placeholder in _RENDERER.placeholders(template):
            if placeholder.isdigit():
                first_number.setdefault(int(placeholder), name)
            else:
                first_use.setdefault(placeholder, name)
    highest = max(first_number, default=0)
    missing_numbers = sorted(set(range(1, highest + 1)) - first_number.keys())
    if missing_numbers:
        raise ValidationError(
            f"positional placeholders must be numbered 1..n without gaps: {{{{{highest}}}}} is used "
            f"but {{{{{missing_numbers[0]}}}}} is not",
            field=first_number[highest],
        )
    if len(params) < highest:
        raise ValidationError(
            f"{{{{{len(params) + 1}}}}} has no value: the templates have {highest} positional "
            f"placeholder(s) but {len(params)} param(s) were given",
            field=first_number[len(params) + 1],
        )
    if len(params) > highest:
        raise ValidationError(
            f"{len(params) - highest} surplus param(s): the templates have {highest} positional placeholder(s)",
            field="params",
        )
    idents = set(first_use)
    missing = sorted(idents - named.keys())
    if missing:
        raise ValidationError(f"missing named param(s): {', '.join(missing)}", field=first_use[missing[0]])
    surplus = sorted(named.keys() - idents)
    if surplus:
        raise ValidationError(f"surplus named param(s): {', '.join(surplus)}", field="named")


def _separator(texts: list[str]) -> str:
    """A private-use character found in none of ``texts`` (never whitespace: no placeholder spans it)."""
    used = set().union(*map(set, texts)) if texts else set()
    for code in range(0xE000, 0xF900):
        if chr(code) not in used:
            return chr(code)
    raise ValidationError("the payload uses every private-use character", field="text")


def prepare_email_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check an ``email`` payload when the schedule is created; the payload to store.

    Validates against :class:`EmailPayload` and renders the templates, so that a mismatch is
    refused now rather than when the schedule is due. Raises the domain's
    :class:`ValidationError` with the field at fault (``to.0``, ``subject``, ``text``,
    ``params``, ...). Returns ``model_dump(mode="json")``: addresses in their ASCII form, the
    optional lists filled in.
    """
    if not isinstance(payload, dict):
        raise ValidationError("the email payload must be an object", field="")
    try:
        model = EmailPayload.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise domain_error(exc) from None
    render_email(model)
    return model.model_dump(mode="json")


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
        if not self.host or _HEADER_FORBIDDEN.search(self.host) or self.host != self.host.strip():
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
    - a timeout or a lost connection once DATA was sent: :class:`DeliveryOutcomeUnknown` (the
      server may have queued the message);
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
        try:
            await client.connect()
            return await client.send_message(message, sender=self._sender, recipients=recipients)
        except Exception as exc:
            classified = self._classify(exc, client.data_started, len(recipients))
            if classified is exc:
                raise
            raise classified from exc
        finally:
            await self._close(client)

    @staticmethod
    async def _close(client: _TrackedSMTP) -> None:
        if client.is_connected:
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
