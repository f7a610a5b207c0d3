"""A WhatsApp template's header and buttons: the values a send fills in besides its body's
``{{1}}``.. parameters (a header's image, a tracking link's suffix). Value objects, no I/O.

Each is stored in a schedule's payload as the JSON the API takes (``to_json``/``from_json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cronjob.domain.errors import ValidationError

#: Meta: a template has at most 10 buttons, indexed 0 to 9.
MAX_BUTTONS = 10


class HeaderKind(StrEnum):
    """What a template's header shows: a text with one ``{{1}}``, or a media."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"


class ButtonKind(StrEnum):
    """A template button that takes a value: a URL button's dynamic suffix, or the payload a
    quick-reply button sends back when tapped."""

    URL = "url"
    QUICK_REPLY = "quick_reply"


@dataclass(frozen=True, slots=True)
class TemplateHeader:
    """The header's parameter: ``text`` for a text header, else the media, by ``link`` (an
    http(s) URL Meta fetches) or by ``media_id`` (media uploaded to Meta), exactly one of them;
    a document may name its ``filename``."""

    kind: HeaderKind
    text: str | None = None
    link: str | None = None
    media_id: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        if self.kind is HeaderKind.TEXT:
            if not self.text or self.link or self.media_id or self.filename:
                raise ValidationError("a text header takes `text` only", field="header")
            return
        if self.text is not None:
            raise ValidationError(f"an {self.kind.value} header takes `link` or `id`, not `text`", field="header")
        if (self.link is None) == (self.media_id is None):
            raise ValidationError(f"an {self.kind.value} header takes exactly one of `link` and `id`", field="header")
        if self.link is not None and not self.link.lower().startswith(("https://", "http://")):
            raise ValidationError("a header's `link` must be an http(s) URL", field="header.link")
        if self.filename is not None and self.kind is not HeaderKind.DOCUMENT:
            raise ValidationError("only a document header takes a `filename`", field="header.filename")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TemplateHeader:
        """The header of a payload's ``header`` (``type`` and its fields, as the API takes them)."""
        try:
            kind = HeaderKind(data.get("type"))
        except ValueError:
            raise ValidationError(f"header type must be one of {', '.join(HeaderKind)}", field="header.type") from None
        return cls(kind, text=data.get("text"), link=data.get("link"), media_id=data.get("id"),
                   filename=data.get("filename"))

    def to_json(self) -> dict[str, str]:
        """As a payload stores it (what :meth:`from_json` reads)."""
        fields = {"type": self.kind.value, "text": self.text, "link": self.link, "id": self.media_id,
                  "filename": self.filename}
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """The value of the template's button at ``index`` (0 to 9, its position in the template):
    a URL button's suffix (appended to the URL the template defines) or a quick reply's payload."""

    index: int
    kind: ButtonKind
    value: str

    def __post_init__(self) -> None:
        if not 0 <= self.index < MAX_BUTTONS:
            raise ValidationError(f"a button index is 0 to {MAX_BUTTONS - 1}", field="buttons")
        if not self.value:
            raise ValidationError("a button's value must not be empty", field="buttons")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TemplateButton:
        """A button of a payload's ``buttons``: ``{"index", "type": "url", "text"}`` or
        ``{"index", "type": "quick_reply", "payload"}``."""
        try:
            kind = ButtonKind(data.get("type"))
        except ValueError:
            raise ValidationError(f"button type must be one of {', '.join(ButtonKind)}", field="buttons") from None
        value = data.get("text" if kind is ButtonKind.URL else "payload")
        index = data.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not isinstance(value, str):
            raise ValidationError("a button has an integer `index` and its text or payload", field="buttons")
        return cls(index, kind, value)

    def to_json(self) -> dict[str, Any]:
        """As a payload stores it (what :meth:`from_json` reads)."""
        key = "text" if self.kind is ButtonKind.URL else "payload"
        return {"index": self.index, "type": self.kind.value, key: self.value}


def template_buttons(items: Iterable[Mapping[str, Any]]) -> tuple[TemplateButton, ...]:
    """A payload's ``buttons``, each index at most once, in index order."""
    buttons = sorted((TemplateButton.from_json(item) for item in items), key=lambda b: b.index)
    if len(buttons) > MAX_BUTTONS:
        raise ValidationError(f"at most {MAX_BUTTONS} buttons", field="buttons")
    indexes = [b.index for b in buttons]
    if len(set(indexes)) != len(indexes):
        raise ValidationError("each button index at most once", field="buttons")
    return tuple(buttons)
