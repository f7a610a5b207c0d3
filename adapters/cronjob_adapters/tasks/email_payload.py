"""The ``email`` task's payload: its schema, its check when a schedule is created, its rendering.

Three parts: :class:`EmailPayload` (the payload's schema, version :attr:`EmailPayload.VERSION`),
:func:`prepare_email_payload` (checks a payload when a schedule is created) and
:func:`render_email` (fills the placeholders, when the schedule is created and when it is sent).

Addresses are checked with ``email-validator`` (the library behind pydantic's ``EmailStr``),
called directly so that only ASCII mailboxes are accepted (no SMTPUTF8 needed from the server)
and internationalised domains are stored in their ASCII (IDNA) form, ready for the envelope.

Placeholders: ``params`` (``{{1}}``..) and ``named`` (``{{name}}``) are shared by the subject,
the text and the html: ``{{1}}`` is the same value everywhere, and together the three must use
every parameter exactly (the domain's :class:`~cronjob.domain.template.TemplateRenderer` rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cronjob.domain.errors import ValidationError
from cronjob.domain.template import TemplateRenderer
from cronjob_adapters.not_blank import is_blank
from cronjob_adapters.tasks.validation import validate_payload

MAX_RECIPIENTS_PER_FIELD = 50
# RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients in one transaction.
MAX_RECIPIENTS = 100
MAX_SUBJECT_CHARS = 998  # RFC 5322 2.1.1: the longest line a header may have
MAX_BODY_CHARS = 1_000_000
MAX_PARAMS = 100

_RENDERER = TemplateRenderer()
# C0 controls but TAB, DEL, C1 controls and the Unicode line/paragraph separators: any of them
# in a header could end it (header injection) or be folded into a line break by a mail client.
HEADER_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


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
    if HEADER_FORBIDDEN.search(value):
        raise ValueError(f"{what} must be one line: no CR, LF or other control characters")
    return value


# -- the payload -----------------------------------------------------------------------------


class EmailPayload(BaseModel):
    """The payload of an ``email`` schedule (version 1)."""

    VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="forbid")

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
            "Subject line, 1 to 998 characters, one line (no CR/LF), not blank (only whitespace). May hold "
            "{{1}}/{{name}} placeholders filled from params/named; the rendered subject must also be one line, "
            "and not blank."
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
    if HEADER_FORBIDDEN.search(subject):
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
    model = validate_payload(EmailPayload, payload, "email")
    rendered = render_email(model)
    # Checked here, not by the schema, so that a schedule stored before is still sent.
    if is_blank(model.subject):
        raise ValidationError("the subject must not be blank (only whitespace)", field="subject")
    if is_blank(rendered.subject):
        raise ValidationError("the params fill the subject with whitespace only: it must not be blank",
                              field="subject")
    return model.model_dump(mode="json")
