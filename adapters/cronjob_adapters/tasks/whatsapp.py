"""The ``whatsapp.template`` and ``whatsapp.text`` task types (what ``/schedule-message`` creates)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from cronjob.services.messaging import prepare_whatsapp_payload

from cronjob_adapters.not_blank import NotBlank

PHONE_PATTERN = r"^\+?[1-9][0-9]{7,14}$"
PhoneNumber = Annotated[str, Field(pattern=PHONE_PATTERN,
                                   description="Recipient phone number: 8-15 digits (E.164; a leading '+' is dropped).")]
TemplateName = Annotated[str, Field(max_length=512, pattern=r"^[a-z0-9_]+$", description="The approved template's name.")]
MessageBody = Annotated[str, Field(min_length=1, max_length=4096,
                                   description="Text with {{1}}.. placeholders; not blank (only whitespace)."),
                        NotBlank()]
Language = Annotated[str | None, Field(default=None, pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
                                       description="Template language code; default CRONJOB_WHATSAPP_LANGUAGE.")]
ParamText = Annotated[str, Field(max_length=1024)]
Params = Annotated[list[ParamText], Field(default_factory=list, max_length=100, description="Values for {{1}}, {{2}}, ...")]
FallbackValue = Annotated[str, Field(min_length=1, max_length=1024,
                                     description="The text shown for it (in the rendered body too).")]


class CurrencyParam(BaseModel):
    """A template body's currency amount (Meta's `currency` parameter): the recipient sees
    `fallback_value` whenever WhatsApp does not format `amount_1000` in `code` for their locale."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"type": "currency", "fallback_value": "R$ 150,00", "code": "BRL", "amount_1000": 150000}]})
    type: Literal["currency"] = Field(description="`currency`: this value is a currency amount.")
    fallback_value: FallbackValue
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, as BRL.")]
    amount_1000: Annotated[int, Field(strict=True, ge=-(2**31), le=2**31 - 1,
                                      description="The amount times 1000 (150000 for 150.00).")]


class DateTimeParam(BaseModel):
    """A template body's date/time (Meta's `date_time` parameter): on the Cloud API the recipient
    always sees `fallback_value`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"type": "date_time", "fallback_value": "21 de junho de 2030"}]})
    type: Literal["date_time"] = Field(description="`date_time`: this value is a date/time.")
    fallback_value: FallbackValue


def _param_kind(value: Any) -> str | None:
    """Which member of :data:`TemplateParam` a value is meant as: an object by its ``type``,
    anything else as a text (so that an error names what is wrong with it as what it is)."""
    if isinstance(value, dict):
        return value.get("type") if isinstance(value.get("type"), str) else None
    if isinstance(value, BaseModel):
        return getattr(value, "type", None)
    return "str"  # the tag that the API's errors leave out of a field's name, as for a plain union


TemplateParam = Annotated[
    Annotated[ParamText, Tag("str")] | Annotated[CurrencyParam, Tag("currency")]
    | Annotated[DateTimeParam, Tag("date_time")],
    Discriminator(_param_kind, custom_error_type="param_type",
                  custom_error_message="a param is a string, or an object of type currency or date_time"),
]
TemplateParams = Annotated[list[TemplateParam], Field(
    default_factory=list, max_length=100,
    description="Values for {{1}}, {{2}}, ...: a text, or for a template's body a currency amount "
                "(`{\"type\": \"currency\", \"fallback_value\": \"R$ 150,00\", \"code\": \"BRL\", "
                "\"amount_1000\": 150000}`) or a date/time (`{\"type\": \"date_time\", \"fallback_value\": ...}`), "
                "shown in the rendered body as its `fallback_value`. A template's texts are not empty and hold no line "
                "break, tab or more than 4 spaces in a row (Meta refuses them).")]


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
    params: TemplateParams
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
