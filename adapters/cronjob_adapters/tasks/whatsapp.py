"""The ``whatsapp.template`` and ``whatsapp.text`` task types (what ``/schedule-message`` creates)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

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


MediaLink = Annotated[str, Field(max_length=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s]+$",
                                 description="An http(s) URL Meta fetches the media from.")]
MediaId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                               description="The id of media uploaded to Meta (`POST /{Phone-Number-ID}/media`).")]


class TextHeader(BaseModel):
    """A text header's value: what its `{{1}}` becomes."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=60)]


class _MediaHeader(BaseModel):
    """The media by `link` or by `id`: exactly one of them (checked by the domain's
    ``TemplateHeader``, as every rule that is not the field's own shape)."""

    model_config = ConfigDict(extra="forbid")
    link: MediaLink | None = None
    id: MediaId | None = None


class ImageHeader(_MediaHeader):
    """An image header: the image by `link` or `id`."""

    type: Literal["image"]


class VideoHeader(_MediaHeader):
    """A video header: the video by `link` or `id`."""

    type: Literal["video"]


class DocumentHeader(_MediaHeader):
    """A document header (PDF): the document by `link` or `id`, and the file name shown."""

    type: Literal["document"]
    filename: Annotated[str | None, Field(default=None, min_length=1, max_length=240)] = None


Header = Annotated[TextHeader | ImageHeader | VideoHeader | DocumentHeader, Field(
    discriminator="type", description="The value of the template's header, when it has one to fill: its "
                                      "text's `{{1}}`, or its image, video or document.")]
ButtonIndex = Annotated[int, Field(strict=True, ge=0, le=9, description="The button's position in the template (0-9).")]


class UrlButton(BaseModel):
    """A URL button's dynamic part: appended to the URL the template defines."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["url"]
    index: ButtonIndex
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class QuickReplyButton(BaseModel):
    """A quick-reply button's payload: sent back to your webhook when the recipient taps it."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["quick_reply"]
    index: ButtonIndex
    payload: Annotated[str, Field(min_length=1, max_length=1000)]


Buttons = Annotated[list[Annotated[UrlButton | QuickReplyButton, Field(discriminator="type")]], Field(
    default_factory=list, max_length=10,
    description="The values of the template's buttons that take one, each index at most once.")]


class WhatsAppTemplatePayload(BaseModel):
    """A WhatsApp template message; ``params`` fill the body's ``{{1}}``.. placeholders,
    ``header`` and ``buttons`` the header's and the buttons' values, when the template has them."""

    model_config = ConfigDict(extra="forbid")
    VERSION: ClassVar[int] = 1

    to: PhoneNumber
    body: MessageBody
    templateName: TemplateName
    params: Params
    language: Language = None
    header: Header | None = None
    buttons: Buttons


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
             "language": payload.get("language"), "header": payload.get("header"),
             "buttons": payload.get("buttons") or []},
            default_language=default_language,
        )

    return prepare
