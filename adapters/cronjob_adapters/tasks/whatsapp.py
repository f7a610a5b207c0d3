"""The ``whatsapp.template`` and ``whatsapp.text`` task types (what ``/schedule-message`` creates)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cronjob.services.messaging import prepare_whatsapp_payload

PHONE_PATTERN = r"^\+?[1-9][0-9]{7,14}$"
PhoneNumber = Annotated[str, Field(pattern=PHONE_PATTERN,
                                   description="Recipient phone number: 8-15 digits (E.164; a leading '+' is dropped).")]
TemplateName = Annotated[str, Field(max_length=512, pattern=r"^[a-z0-9_]+$", description="The approved template's name.")]
MessageBody = Annotated[str, Field(min_length=1, max_length=4096, description="Text with {{1}}.. placeholders.")]
Language = Annotated[str | None, Field(default=None, pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
                                       description="Template language code; default CRONJOB_WHATSAPP_LANGUAGE.")]
Params = Annotated[list[Annotated[str, Field(max_length=1024)]],
                   Field(default_factory=list, max_length=100, description="Values for {{1}}, {{2}}, ...")]


class WhatsAppTemplatePayload(BaseModel):
    """A WhatsApp template message; ``params`` fill the body's ``{{1}}``.. placeholders."""

    model_config = ConfigDict(extra="forbid")
    VERSION: ClassVar[int] = 1

    to: PhoneNumber
    body: MessageBody
    templateName: TemplateName
    params: Params
    language: Language = None


class WhatsAppTextPayload(BaseModel):
    """A WhatsApp text message: the rendered body."""

    model_config = ConfigDict(extra="forbid")
    VERSION: ClassVar[int] = 1

    to: PhoneNumber
    body: MessageBody
    params: Params


def whatsapp_preparer(kind: str, default_language: str) -> Any:
    """The scheduling-time check of a WhatsApp payload of ``kind`` (template | text)."""

    def prepare(payload: dict[str, Any]) -> dict[str, Any]:
        return prepare_whatsapp_payload(
            {"to": payload["to"], "kind": kind, "body": payload["body"],
             "params": payload.get("params") or [], "template_name": payload.get("templateName"),
             "language": payload.get("language")},
            default_language=default_language,
        )

    return prepare
