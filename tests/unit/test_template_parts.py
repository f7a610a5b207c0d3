"""A WhatsApp template's header and buttons (``cronjob.domain.template_parts``): what each takes,
and that a payload keeps them as they were given."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.template_parts import (
    ButtonKind,
    HeaderKind,
    TemplateButton,
    TemplateHeader,
    template_buttons,
)

TEXTS = st.text(min_size=1, max_size=40)
LINKS = st.builds("https://cdn.example.com/{}".format, st.text("abcdef0123456789/._-", min_size=1, max_size=30))
MEDIA_HEADERS = st.one_of(
    st.builds(lambda kind, link: TemplateHeader(kind, link=link),
              st.sampled_from([HeaderKind.IMAGE, HeaderKind.VIDEO, HeaderKind.DOCUMENT]), LINKS),
    st.builds(lambda kind, media_id: TemplateHeader(kind, media_id=media_id),
              st.sampled_from([HeaderKind.IMAGE, HeaderKind.VIDEO, HeaderKind.DOCUMENT]),
              st.text("0123456789", min_size=1, max_size=20)),
    st.builds(lambda link, name: TemplateHeader(HeaderKind.DOCUMENT, link=link, filename=name), LINKS, TEXTS),
)
HEADERS = st.one_of(MEDIA_HEADERS, st.builds(lambda text: TemplateHeader(HeaderKind.TEXT, text=text), TEXTS))
BUTTON_SETS = st.lists(st.integers(0, 9), unique=True, max_size=10).flatmap(
    lambda indexes: st.tuples(*[st.builds(TemplateButton, st.just(i), st.sampled_from(list(ButtonKind)), TEXTS)
                                for i in indexes]))


@given(HEADERS)
def test_a_header_is_read_back_as_it_was_stored(header: TemplateHeader) -> None:
    assert TemplateHeader.from_json(header.to_json()) == header


@given(BUTTON_SETS)
def test_buttons_are_read_back_in_index_order_whatever_order_they_came_in(buttons: tuple[TemplateButton, ...]) -> None:
    stored = [b.to_json() for b in reversed(buttons)]
    assert template_buttons(stored) == tuple(sorted(buttons, key=lambda b: b.index))


@pytest.mark.parametrize(("data", "field"), [
    ({"type": "image"}, "header"),  # neither a link nor an id
    ({"type": "image", "link": "https://x.example/a.jpg", "id": "1"}, "header"),  # both
    ({"type": "image", "link": "ftp://x.example/a.jpg"}, "header.link"),
    ({"type": "image", "link": "javascript:alert(1)"}, "header.link"),
    ({"type": "video", "id": "1", "filename": "a.mp4"}, "header.filename"),  # a document's only
    ({"type": "image", "id": "1", "text": "x"}, "header"),
    ({"type": "text"}, "header"),
    ({"type": "text", "text": "x", "link": "https://x.example"}, "header"),
    ({"type": "audio", "id": "1"}, "header.type"),
    ({}, "header.type"),
])
def test_a_header_that_is_not_one_is_refused_naming_its_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TemplateHeader.from_json(data)
    assert refused.value.field == field


@pytest.mark.parametrize("buttons", [
    [{"index": 0, "type": "url", "text": "a"}, {"index": 0, "type": "quick_reply", "payload": "b"}],  # one index twice
    [{"index": 10, "type": "url", "text": "a"}],
    [{"index": -1, "type": "url", "text": "a"}],
    [{"index": "0", "type": "url", "text": "a"}],
    [{"index": True, "type": "url", "text": "a"}],
    [{"index": 0, "type": "url", "payload": "a"}],  # a URL button's value is its text
    [{"index": 0, "type": "quick_reply", "payload": ""}],
    [{"index": 0, "type": "call", "text": "a"}],
    [{"index": i % 10, "type": "url", "text": "a"} for i in range(11)],
])
def test_buttons_that_are_not_some_are_refused(buttons: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError) as refused:
        template_buttons(buttons)
    assert refused.value.field == "buttons"
