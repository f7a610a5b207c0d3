"""EmailHandler against a real SMTP server on 127.0.0.1 (aiosmtpd, in a thread of the test).

Each test starts its own server on a free port with a handler that records what arrived or
answers with the reply a case needs; TLS uses a throwaway CA made by ``trustme``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError, DeliveryOutcomeUnknown
from cronjob.domain.schedule import Schedule
from cronjob.domain.trigger import OnceTrigger
from cronjob_adapters.tasks.email import (
    SCHEDULE_HEADER,
    EmailHandler,
    SmtpSettings,
    message_id_for,
)
from cronjob_adapters.tasks.email_payload import prepare_email_payload

T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
# aiosmtpd warns when AUTH is required on a plain-text session; that is what these tests want.
PLAIN_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
SENDER = "cronjob@notify.example.com"
USERNAME = "cronjob"
PASSWORD = "s3cr3t-smtp-password-do-not-log"
TO = ["ana@example.com", "bruno@example.org"]
CC = ["carla@example.net"]
BCC = ["auditoria@example.com"]
PAYLOAD: dict[str, Any] = {
    "to": TO,
    "cc": CC,
    "bcc": BCC,
    "subject": "Pedido {{1}} de {{name}} – confirmação",
    "text": "Olá, {{name}}! Seu pedido {{1}} será entregue em {{2}}.",
    "html": "<p>Olá, <b>{{name}}</b>! Pedido {{1}}: {{2}}.</p>",
    "params": ["A-1001", "2 dias úteis"],
    "named": {"name": "Leandro"},
    "reply_to": "atendimento@example.com",
}
SUBJECT = "Pedido A-1001 de Leandro – confirmação"
TEXT = "Olá, Leandro! Seu pedido A-1001 será entregue em 2 dias úteis."
HTML = "<p>Olá, <b>Leandro</b>! Pedido A-1001: 2 dias úteis.</p>"


# -- the server ------------------------------------------------------------------------------


@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    tls: bool
    authenticated: bool


@dataclass
class Mailbox:
    """aiosmtpd handler: records deliveries, or answers a stage with a chosen reply or fault."""

    mail_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply
    rcpt_fault: str | None = None  # "drop": hang up at the first RCPT
    data_reply: str | None = None
    data_fault: str | None = None  # "drop": hang up once the content arrived; "hang": never answer
    deliveries: list[Delivery] = field(default_factory=list)
    data_received: threading.Event = field(default_factory=threading.Event)  # the content arrived

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: ANN001
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if self.rcpt_fault == "drop":
            server.transport.close()
            return "250 OK"
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.data_received.set()
        if self.data_fault == "hang":
            await asyncio.sleep(30)
        if self.data_fault == "drop":
            server.transport.close()
            return "250 OK"
        if self.data_reply:
            return self.data_reply
        # The content arrives with CRLF line ends; parse it as a local file would be.
        parsed = email.message_from_bytes(envelope.content.replace(b"\r\n", b"\n"),
                                          policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.deliveries.append(
            Delivery(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=envelope.content,
                message=parsed,
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 Ok: queued as 7F3A1 for <ana@example.com>"


def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
    )
    # handled=False: aiosmtpd then answers a failure itself (535); True would leave the client waiting.
    return AuthResult(success=ok, handled=False)


class LoopbackController(Controller):
    """aiosmtpd's threaded controller on an OS-chosen free port of 127.0.0.1 (``port=0``)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    started: list[LoopbackController] = []

    def start(mailbox: Mailbox, **smtp_kwargs: Any) -> LoopbackController:
        controller = LoopbackController(
            mailbox, hostname="127.0.0.1", port=0, server_hostname="mx.test.local", **smtp_kwargs
        )
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


# -- helpers ---------------------------------------------------------------------------------


def settings_for(controller: Controller, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": controller.port,
        "from_address": SENDER,
        "starttls": False,
        "timeout_seconds": 5.0,
        "local_hostname": "cronjob.test.local",
    }
    values.update(overrides)
    return SmtpSettings(**values)


def email_schedule(payload: dict[str, Any] | None = None, *, schedule_id: str = "sched-1",
                   at: datetime = T0) -> Schedule:
    return Schedule.create(
        id=schedule_id,
        task_type="email",
        payload=prepare_email_payload(payload or PAYLOAD),
        trigger=OnceTrigger(at),
        timezone="UTC",
        first_run_at=at,
        now=at - timedelta(minutes=1),
    )


async def refused(handler: EmailHandler, schedule: Schedule | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await handler.run(schedule or email_schedule())
    return caught.value


def free_refusing_port() -> socket.socket:
    """A socket bound to a loopback port but not listening: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# -- delivery --------------------------------------------------------------------------------


async def test_delivers_rendered_message_with_envelope_and_deterministic_ids(smtp_server: Any) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox)
    schedule = email_schedule()

    outcome = await EmailHandler(settings_for(server)).run(schedule)

    expected_id = message_id_for(schedule.delivery_key, SENDER)
    assert outcome.provider_message_id == expected_id
    assert outcome.result["message_id"] == expected_id
    assert "refused_recipients" not in outcome.result
    assert "7F3A1" in outcome.result["smtp_response"]
    assert "ana@example.com" not in outcome.result["smtp_response"]  # addresses redacted

    [delivery] = mailbox.deliveries
    assert delivery.mail_from == SENDER
    assert delivery.rcpt_tos == [*TO, *CC, *BCC]
    message = delivery.message
    assert message["Subject"] == SUBJECT
    assert message["From"] == SENDER
    assert [a.addr_spec for a in message["To"].addresses] == TO
    assert [a.addr_spec for a in message["Cc"].addresses] == CC
    assert message["Reply-To"] == "atendimento@example.com"
    assert message["Bcc"] is None
    assert b"auditoria@example.com" not in delivery.raw  # a Bcc recipient never shows in the message
    assert message["Message-ID"] == expected_id
    assert message[SCHEDULE_HEADER] == "sched-1"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().rstrip("\n") == TEXT
    assert message.get_body(("html",)).get_content().rstrip("\n") == HTML


async def test_message_id_is_the_same_for_every_send_of_one_occurrence(smtp_server: Any) -> None:
    mailbox = Mailbox()
    handler = EmailHandler(settings_for(smtp_server(mailbox)))

    first = await handler.run(email_schedule())
    again = await handler.run(email_schedule())  # a re-send after a lost answer
    later = await handler.run(email_schedule(at=T0 + timedelta(days=1)))  # another occurrence

    assert first.provider_message_id == again.provider_message_id
    assert later.provider_message_id != first.provider_message_id
    ids = [d.message["Message-ID"] for d in mailbox.deliveries]
    assert ids == [first.provider_message_id, first.provider_message_id, later.provider_message_id]
    assert first.provider_message_id.endswith("@notify.example.com>")
    assert len(first.provider_message_id) == len("<@notify.example.com>") + 26


async def test_text_only_message_and_duplicate_recipients_sent_once(smtp_server: Any) -> None:
    mailbox = Mailbox()
    handler = EmailHandler(settings_for(smtp_server(mailbox)))
    payload = {"to": ["ana@example.com"], "cc": ["ANA@example.com"], "subject": "Oi",
               "text": "Só texto."}

    await handler.run(email_schedule(payload))

    [delivery] = mailbox.deliveries
    assert delivery.rcpt_tos == ["ana@example.com"]
    assert delivery.message.get_content_type() == "text/plain"
    assert delivery.message.get_content().rstrip("\n") == "Só texto."


async def test_some_recipients_refused_is_a_success_with_the_count(smtp_server: Any) -> None:
    mailbox = Mailbox(rcpt_replies={"bruno@example.org": "550 5.1.1 <bruno@example.org>: unknown user"})
    handler = EmailHandler(settings_for(smtp_server(mailbox)))

    outcome = await handler.run(email_schedule())

    assert outcome.result["refused_recipients"] == "1"
    [delivery] = mailbox.deliveries
    assert "bruno@example.org" not in delivery.rcpt_tos


# -- authentication and TLS ------------------------------------------------------------------


@PLAIN_AUTH
async def test_auth_with_username_and_password(smtp_server: Any) -> None:
    # AUTH over a plain-text session: the test server must allow it (auth_require_tls=False);
    # a real server would require TLS first (see the STARTTLS test below).
    mailbox = Mailbox()
    server = smtp_server(mailbox, authenticator=authenticator, auth_required=True, auth_require_tls=False)

    await EmailHandler(settings_for(server, username=USERNAME, password=PASSWORD)).run(email_schedule())

    [delivery] = mailbox.deliveries
    assert delivery.authenticated


@PLAIN_AUTH
async def test_wrong_password_is_permanent_535(smtp_server: Any) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, authenticator=authenticator, auth_required=True, auth_require_tls=False)

    error = await refused(EmailHandler(settings_for(server, username=USERNAME, password="wrong")))

    assert error.code == "smtp_535"
    assert error.retryable is False
    assert error.details["stage"] == "auth"
    assert mailbox.deliveries == []


async def test_starttls_with_the_test_ca_and_auth(
    smtp_server: Any, server_tls: ssl.SSLContext, ca_bundle: Path
) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, tls_context=server_tls, require_starttls=True,
                         authenticator=authenticator, auth_required=True)  # AUTH only after TLS
    settings = settings_for(server, starttls=True, validate_certs=True, cert_bundle=ca_bundle,
                            username=USERNAME, password=PASSWORD)

    await EmailHandler(settings).run(email_schedule())

    [delivery] = mailbox.deliveries
    assert delivery.tls and delivery.authenticated
    assert delivery.message["Subject"] == SUBJECT


async def test_implicit_tls(smtp_server: Any, server_tls: ssl.SSLContext, ca_bundle: Path) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, ssl_context=server_tls)

    await EmailHandler(settings_for(server, use_tls=True, cert_bundle=ca_bundle)).run(email_schedule())

    assert len(mailbox.deliveries) == 1


async def test_untrusted_certificate_is_a_permanent_tls_error(
    smtp_server: Any, server_tls: ssl.SSLContext
) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, tls_context=server_tls, require_starttls=True)

    error = await refused(EmailHandler(settings_for(server, starttls=True)))  # no cert_bundle

    assert error.code == "tls_error"
    assert error.retryable is False
    assert mailbox.deliveries == []


async def test_starttls_required_but_not_offered_is_permanent(smtp_server: Any) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox)  # no tls_context: no STARTTLS in EHLO

    error = await refused(EmailHandler(settings_for(server, starttls=True)))

    assert error.code == "smtp_error"
    assert error.retryable is False
    assert mailbox.deliveries == []


# -- refusals --------------------------------------------------------------------------------


async def test_451_at_data_is_retryable(smtp_server: Any) -> None:
    server = smtp_server(Mailbox(data_reply="451 4.3.0 Temporary local problem, try later"))

    error = await refused(EmailHandler(settings_for(server)))

    assert error.code == "smtp_451"
    assert error.retryable is True
    assert error.details == {"smtp_code": "451", "stage": "data", "enhanced_status": "4.3.0"}


async def test_550_for_every_recipient_is_permanent(smtp_server: Any) -> None:
    reply = "550 5.1.1 Mailbox unavailable"
    server = smtp_server(Mailbox(rcpt_replies={a: reply for a in [*TO, *CC, *BCC]}))

    error = await refused(EmailHandler(settings_for(server)))

    assert error.code == "smtp_550"
    assert error.retryable is False
    assert error.details["refused_recipients"] == "4"


async def test_452_for_some_and_550_for_others_is_retryable(smtp_server: Any) -> None:
    replies = {a: "550 5.1.1 Mailbox unavailable" for a in [*TO, *CC, *BCC]}
    replies["carla@example.net"] = "452 4.2.2 Mailbox full"
    server = smtp_server(Mailbox(rcpt_replies=replies))

    error = await refused(EmailHandler(settings_for(server)))

    assert error.code == "smtp_452"
    assert error.retryable is True


async def test_553_sender_refused_and_554_at_data_are_permanent(smtp_server: Any) -> None:
    sender_refused = smtp_server(Mailbox(mail_reply="553 5.7.1 Sender address rejected"))
    data_refused = smtp_server(Mailbox(data_reply="554 5.7.1 Message rejected as spam"))

    first = await refused(EmailHandler(settings_for(sender_refused)))
    second = await refused(EmailHandler(settings_for(data_refused)))

    assert (first.code, first.retryable, first.details["stage"]) == ("smtp_553", False, "mail")
    assert (second.code, second.retryable, second.details["stage"]) == ("smtp_554", False, "data")


async def test_421_greeting_is_retryable() -> None:
    async def busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"421 4.3.2 Service not available, closing channel\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(busy, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        settings = SmtpSettings(host="127.0.0.1", port=port, from_address=SENDER, starttls=False,
                                timeout_seconds=2.0, local_hostname="cronjob.test.local")
        error = await refused(EmailHandler(settings))

    assert error.code == "smtp_421"
    assert error.retryable is True
    assert error.details["stage"] == "greeting"


# -- transport failures ----------------------------------------------------------------------


async def test_connection_refused_is_retryable() -> None:
    with free_refusing_port() as sock:
        port = sock.getsockname()[1]
        settings = SmtpSettings(host="127.0.0.1", port=port, from_address=SENDER, starttls=False,
                                timeout_seconds=2.0, local_hostname="cronjob.test.local")
        error = await refused(EmailHandler(settings))

    assert error.code == "connect_error"
    assert error.retryable is True


async def test_no_greeting_is_a_retryable_connect_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever says 220
        settings = SmtpSettings(host="127.0.0.1", port=listener.getsockname()[1], from_address=SENDER,
                                starttls=False, timeout_seconds=0.5, local_hostname="cronjob.test.local")
        error = await refused(EmailHandler(settings))

    assert error.code == "connect_timeout"
    assert error.retryable is True


async def test_disconnect_before_data_is_retryable(smtp_server: Any) -> None:
    server = smtp_server(Mailbox(rcpt_fault="drop"))

    error = await refused(EmailHandler(settings_for(server)))

    assert error.code == "server_disconnected"
    assert error.retryable is True


async def test_disconnect_after_data_is_unknown(smtp_server: Any) -> None:
    server = smtp_server(Mailbox(data_fault="drop"))

    with pytest.raises(DeliveryOutcomeUnknown):
        await EmailHandler(settings_for(server)).run(email_schedule())


async def test_timeout_after_data_is_unknown(smtp_server: Any) -> None:
    server = smtp_server(Mailbox(data_fault="hang"))

    with pytest.raises(DeliveryOutcomeUnknown):
        await EmailHandler(settings_for(server, timeout_seconds=0.5)).run(email_schedule())


async def test_a_shutdown_after_data_is_unknown_and_does_not_wait_for_the_server(smtp_server: Any) -> None:
    """Cancelled (a scheduler's shutdown) once the server has the content: it may queue it, so
    the run must not be released and sent again; and QUIT is not waited for (no answer comes)."""
    server = smtp_server(Mailbox(data_fault="hang"))
    run = asyncio.create_task(EmailHandler(settings_for(server, timeout_seconds=25)).run(email_schedule()))
    assert await asyncio.to_thread(server.handler.data_received.wait, 10)
    started = time.monotonic()
    run.cancel()
    with pytest.raises(DeliveryOutcomeUnknown, match="shutdown"):
        await asyncio.wait_for(run, 10)
    assert not run.cancelled()  # the run ends with that outcome, recorded as any other
    assert time.monotonic() - started < 5, "waited for the silent server's answer to QUIT"


async def test_a_shutdown_before_data_is_a_cancellation_the_run_is_released() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # never greets: the client is still connecting
        settings = SmtpSettings(host="127.0.0.1", port=listener.getsockname()[1], from_address=SENDER,
                                starttls=False, timeout_seconds=25, local_hostname="cronjob.test.local")
        run = asyncio.create_task(EmailHandler(settings).run(email_schedule()))
        await asyncio.sleep(0.2)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 10)


# -- payloads and secrets --------------------------------------------------------------------


def test_subject_with_a_newline_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_email_payload({**PAYLOAD, "subject": "Oi\r\nBcc: intruso@example.com"})
    assert caught.value.field == "subject"


async def test_payload_that_no_longer_renders_is_permanent_invalid_payload(smtp_server: Any) -> None:
    mailbox = Mailbox()
    schedule = email_schedule()
    schedule.payload = {**schedule.payload, "params": ["only one"]}  # stored before a rule change

    error = await refused(EmailHandler(settings_for(smtp_server(mailbox))), schedule)

    assert error.code == "invalid_payload"
    assert error.retryable is False
    assert mailbox.deliveries == []


async def test_logs_and_reprs_hold_no_password_address_or_body(
    smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    replies = {"bruno@example.org": "550 5.1.1 <bruno@example.org>: unknown user"}
    server = smtp_server(Mailbox(rcpt_replies=replies), authenticator=authenticator,
                         auth_require_tls=False)
    settings = settings_for(server, username=USERNAME, password=PASSWORD)
    handler = EmailHandler(settings)

    await handler.run(email_schedule())
    wrong = EmailHandler(settings_for(server, username=USERNAME, password=PASSWORD + "-wrong"))
    error = await refused(wrong)

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cronjob"))
    assert "host=127.0.0.1" in ours and "recipients=4" in ours and "reply=535" in ours
    for secret in [PASSWORD, *TO, *CC, *BCC, "Leandro", "A-1001", SUBJECT]:
        assert secret not in ours
        assert secret not in repr(settings) and secret not in repr(handler)
        assert secret not in str(error)
