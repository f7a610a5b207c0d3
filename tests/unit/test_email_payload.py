"""The ``email`` task's payload: EmailPayload, prepare_email_payload, render_email, SmtpSettings."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from cronjob.domain.errors import ValidationError
from cronjob_adapters.tasks.email import SmtpSettings, message_id_for
from cronjob_adapters.tasks.email_payload import EmailPayload, prepare_email_payload, render_email

BASE: dict[str, Any] = {"to": ["ana@example.com"], "subject": "Oi", "text": "Olá."}


def refused(payload: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        prepare_email_payload(payload)
    return caught.value


def rendered(**changes: Any) -> Any:
    return render_email(EmailPayload.model_validate({**BASE, **changes}))


# -- the model -------------------------------------------------------------------------------


def test_minimal_payload_is_stored_with_defaults_as_json() -> None:
    stored = prepare_email_payload(BASE)

    assert stored == {
        "to": ["ana@example.com"], "cc": [], "bcc": [], "subject": "Oi", "text": "Olá.",
        "html": None, "params": [], "named": {}, "reply_to": None,
    }
    assert json.loads(json.dumps(stored)) == stored
    assert prepare_email_payload(stored) == stored  # what is stored validates again as it is


def test_version_and_published_schema() -> None:
    assert EmailPayload.VERSION == 1
    schema = EmailPayload.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"to", "subject", "text"}
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{name} has no description"
    assert schema["properties"]["to"]["items"]["format"] == "email"
    assert (schema["properties"]["to"]["minItems"], schema["properties"]["to"]["maxItems"]) == (1, 50)
    assert schema["properties"]["subject"]["maxLength"] == 998


def test_addresses_are_stored_in_ascii_form() -> None:
    stored = prepare_email_payload({**BASE, "to": ["Ana.B+tag@Exemplo.COM.br", "x@münchen.de"],
                                    "reply_to": "Atendimento@Example.com"})

    assert stored["to"] == ["Ana.B+tag@exemplo.com.br", "x@xn--mnchen-3ya.de"]
    assert stored["reply_to"] == "Atendimento@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "ana@localhost",  # no dot in the domain
        "ana@example.test",  # special-use domain
        "Ana <ana@example.com>",  # a display name
        '"ana maria"@example.com',  # a quoted local part
        "jörg@example.com",  # a non-ASCII local part needs SMTPUTF8
        "ana@example.com\r\nRCPT TO:<x@example.com>",  # command injection
        "a" * 250 + "@example.com",  # longer than 254
    ],
)
def test_bad_addresses_are_refused_with_their_path(address: str) -> None:
    assert refused({**BASE, "to": ["ok@example.com", address]}).field == "to.1"
    assert refused({**BASE, "cc": [address]}).field == "cc.0"
    assert refused({**BASE, "reply_to": address}).field == "reply_to"


def test_refusal_message_does_not_copy_the_refused_value() -> None:
    error = refused({**BASE, "to": ["segredo-do-cliente-sem-arroba"]})
    assert "segredo-do-cliente" not in error.message


def test_recipient_counts() -> None:
    many = [f"user{i}@example.com" for i in range(51)]

    assert refused({**BASE, "to": []}).field == "to"
    assert refused({**BASE, "to": many}).field == "to"
    assert refused({**BASE, "bcc": many}).field == "bcc"
    prepare_email_payload({**BASE, "to": many[:50], "cc": many[:50]})  # 100 in all: fine
    too_many = refused({**BASE, "to": many[:50], "cc": many[:50], "bcc": ["one.more@example.com"]})
    assert "at most 100 recipients" in too_many.message


def test_envelope_recipients_once_each_bcc_included() -> None:
    payload = EmailPayload.model_validate(
        {**BASE, "to": ["ana@example.com", "bia@example.com"], "cc": ["ANA@example.com"],
         "bcc": ["audit@example.com", "bia@example.com"]}
    )
    assert payload.envelope_recipients() == ["ana@example.com", "bia@example.com", "audit@example.com"]


def test_unknown_and_missing_fields_are_refused() -> None:
    assert refused({**BASE, "from": "x@example.com"}).field == "from"
    assert refused({"to": ["ana@example.com"], "text": "x"}).field == "subject"
    assert refused({**BASE, "text": ""}).field == "text"
    assert refused({**BASE, "params": [1]}).field == "params.0"
    assert refused({**BASE, "named": {"x": 2}}).field == "named.x"
    with pytest.raises(ValidationError):
        prepare_email_payload(["not", "an", "object"])  # type: ignore[arg-type]


@pytest.mark.parametrize("subject", ["Oi\nBcc: x@example.com", "Oi\r", "Oi\x00", "Oi\u2028x", "Oi\x85"])
def test_subject_must_be_one_line(subject: str) -> None:
    error = refused({**BASE, "subject": subject})
    assert error.field == "subject"
    with pytest.raises(pydantic.ValidationError):
        EmailPayload.model_validate({**BASE, "subject": subject})


def test_subject_length() -> None:
    prepare_email_payload({**BASE, "subject": "x" * 998})
    assert refused({**BASE, "subject": "x" * 999}).field == "subject"
    assert refused({**BASE, "subject": ""}).field == "subject"
    prepare_email_payload({**BASE, "subject": "tab\tis fine"})


@pytest.mark.parametrize("subject", [" ", "   ", "\t", "\u00a0\u3000"])
def test_a_blank_subject_is_refused_when_the_schedule_is_made(subject: str) -> None:
    """Only whitespace is a mail without a subject, though the field asks for one."""
    error = refused({**BASE, "subject": subject})
    assert (error.field, error.message) == ("subject", "the subject must not be blank (only whitespace)")
    filled = refused({**BASE, "subject": "{{1}}{{name}}", "params": [" "], "named": {"name": subject}})
    assert filled.field == "subject" and "whitespace only" in filled.message
    prepare_email_payload({**BASE, "subject": " {{1}} ", "params": ["Oi"]})
    # A schedule stored before this check is still sent: the send reads its payload as it was.
    assert rendered(subject=subject).subject == subject


# -- templates -------------------------------------------------------------------------------


def test_params_and_named_are_shared_by_subject_text_and_html() -> None:
    result = rendered(subject="Pedido {{1}} de {{name}}", text="{{name}}: {{1}} em {{2}}",
                      html="<p>{{ 2 }}</p>", params=["A-1", "2 dias"], named={"name": "Leandro"})

    assert (result.subject, result.text, result.html) == (
        "Pedido A-1 de Leandro", "Leandro: A-1 em 2 dias", "<p>2 dias</p>"
    )


def test_zero_padded_positional_placeholders_count_as_their_number() -> None:
    result = rendered(subject="{{01}}", text="{{ 2 }}", params=["a", "b"])
    assert (result.subject, result.text) == ("a", "b")
    # Spelling one number two ways ({{01}} and {{1}}) is refused by the domain's renderer.
    assert refused({**BASE, "subject": "{{01}}", "text": "{{1}}", "params": ["a"]}).field == "text"


def test_values_are_inserted_as_they_are() -> None:
    result = rendered(subject="{{1}}", text="{{1}} {{name}}", params=["{{name}}"], named={"name": "\ue000x"})
    assert result.text == "{{name}} \ue000x"  # not expanded again; the separator picks another char
    assert result.subject == "{{name}}"
    assert result.html is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"text": "{{1}} e {{2}}", "params": ["a"]}, "text", "{{2}} has no value"),
        ({"subject": "{{1}}", "params": []}, "subject", "{{1}} has no value"),
        ({"text": "{{1}}", "params": ["a", "b"]}, "params", "surplus"),
        ({"text": "oi", "params": ["a"]}, "params", "surplus"),
        ({"subject": "{{1}}", "text": "{{3}}", "params": ["a", "b", "c"]}, "text", "without gaps"),
        ({"subject": "{{02}}", "params": ["a", "b"]}, "subject", "without gaps"),
        ({"html": "<p>{{name}}</p>"}, "html", "missing named"),
        ({"text": "{{name}}", "named": {"name": "x", "other": "y"}}, "named", "surplus named"),
    ],
)
def test_template_mismatches_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    error = refused({**BASE, **changes})
    assert error.field == field
    assert words in error.message


def test_rendered_subject_must_stay_one_line_and_short() -> None:
    assert refused({**BASE, "subject": "Oi {{1}}", "params": ["x\r\nBcc: y@example.com"]}).field == "subject"
    assert refused({**BASE, "subject": "{{1}}{{1}}", "params": ["x" * 500]}).field == "subject"
    prepare_email_payload({**BASE, "text": "{{1}}", "params": ["multi\nline is fine in the body"]})


# -- settings and ids ------------------------------------------------------------------------


def test_settings_repr_hides_the_password() -> None:
    settings = SmtpSettings(host="smtp.example.com", port=587, from_address="no-reply@example.com",
                            username="mailer", password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)
    assert "smtp.example.com" in repr(settings)
    assert settings.tls_mode == "starttls"
    assert SmtpSettings(host="h", port=465, from_address="a@b.example", use_tls=True).tls_mode == "tls"


@pytest.mark.parametrize(
    "changes",
    [
        {"host": ""},
        {"host": "smtp.example.com\r\n"},
        {"port": 0},
        {"port": 70000},
        {"timeout_seconds": 0},
        {"from_address": "not-an-address"},
        {"username": None, "password": "x"},
        {"local_hostname": "bad name"},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any]) -> None:
    values: dict[str, Any] = {"host": "smtp.example.com", "port": 587, "from_address": "a@example.com"}
    with pytest.raises(ValueError):
        SmtpSettings(**{**values, **changes})


def test_internal_sender_domains_are_allowed() -> None:
    assert SmtpSettings(host="mx", port=25, from_address="Cron@Mail.Internal").sender == "Cron@mail.internal"


def test_message_id_is_deterministic_per_delivery_key() -> None:
    first = message_id_for("s1:2030-01-15T12:00:00+00:00", "no-reply@example.com")

    assert first == message_id_for("s1:2030-01-15T12:00:00+00:00", "no-reply@example.com")
    assert first != message_id_for("s1:2030-01-16T12:00:00+00:00", "no-reply@example.com")
    assert first != message_id_for("s2:2030-01-15T12:00:00+00:00", "no-reply@example.com")
    left, _, domain = first.strip("<>").partition("@")
    assert domain == "example.com"
    assert len(left) == 26 and left.isalnum() and left.islower()
