"""A template body's params (``cronjob.domain.template_params``): texts, currency amounts and
dates/times; what each takes, that a payload keeps them as they were given, that the
strings every schedule stored before held read as those strings, and which texts Meta refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import MessageKind
from cronjob.domain.template_params import (
    AMOUNT_MAX,
    AMOUNT_MIN,
    BodyParam,
    CurrencyParam,
    DateTimeParam,
    body_param,
    body_params,
    check_sendable,
    shown,
    stored,
)
from cronjob.services.messaging import prepare_whatsapp_payload

TEXTS = st.text(min_size=1, max_size=40)
#: Texts Meta takes in a template param: not empty, no line break or tab, at most 4 spaces in a row.
SENDABLE = st.text(st.characters(blacklist_characters="\r\n\t"), min_size=1, max_size=40).filter(
    lambda text: " " * 5 not in text)


def params_of(texts: st.SearchStrategy[str], fallbacks: st.SearchStrategy[str]) -> st.SearchStrategy[BodyParam]:
    return st.one_of(
        texts,
        st.builds(CurrencyParam, fallbacks, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
                  st.integers(AMOUNT_MIN, AMOUNT_MAX)),
        st.builds(DateTimeParam, fallbacks),
    )


PARAMS = params_of(st.text(max_size=40), TEXTS)


@given(st.lists(PARAMS, max_size=10))
def test_params_are_read_back_as_they_were_stored(params: list[BodyParam]) -> None:
    assert body_params([stored(p) for p in params]) == tuple(params)


@given(st.lists(params_of(SENDABLE, SENDABLE), min_size=1, max_size=10))
def test_the_rendered_body_shows_each_text_and_each_fallback_value(params: list[BodyParam]) -> None:
    body = " | ".join(f"{{{{{i}}}}}" for i in range(1, len(params) + 1))
    prepared = prepare_whatsapp_payload({"to": "5511999999999", "kind": "template", "body": body,
                                         "template_name": "t", "params": [stored(p) for p in params]})
    assert prepared["rendered_body"] == " | ".join(shown(p) for p in params)
    assert prepared["params"] == [stored(p) for p in params]


def test_the_strings_of_a_schedule_stored_before_read_as_strings() -> None:
    assert body_params(["Leandro", "2 dias úteis"]) == ("Leandro", "2 dias úteis")
    prepared = prepare_whatsapp_payload({"to": "+5511999999999", "kind": "template", "template_name": "t",
                                         "body": "Olá, {{1}}! Em {{2}}.", "params": ["Leandro", 2]})
    assert prepared["params"] == ["Leandro", "2"]  # as before: a number given in code becomes its text
    assert prepared["rendered_body"] == "Olá, Leandro! Em 2."


BRL = {"type": "currency", "fallback_value": "R$ 150,00", "code": "BRL", "amount_1000": 150000}


@pytest.mark.parametrize(("value", "field"), [
    ({**BRL, "code": "brl"}, "params.0.code"),
    ({**BRL, "code": None}, "params.0.code"),
    ({**BRL, "amount_1000": AMOUNT_MAX + 1}, "params.0.amount_1000"),
    ({**BRL, "amount_1000": AMOUNT_MIN - 1}, "params.0.amount_1000"),
    ({**BRL, "amount_1000": 1.5}, "params.0.amount_1000"),
    ({**BRL, "amount_1000": False}, "params.0.amount_1000"),
    ({**BRL, "fallback_value": ""}, "params.0.fallback_value"),
    ({**BRL, "extra": 1}, "params.0.extra"),
    ({"type": "date_time"}, "params.0.fallback_value"),
    ({"type": "date_time", "fallback_value": "x", "code": "BRL"}, "params.0.code"),
    ({"type": "money"}, "params.0.type"),
    ({}, "params.0.type"),
    (None, "params.0"),
    ([], "params.0"),
])
def test_a_param_that_is_not_one_is_refused_naming_its_part(value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        body_params([value])
    assert caught.value.field == field


def test_the_widest_amounts_meta_takes_are_taken() -> None:
    assert body_param({**BRL, "amount_1000": AMOUNT_MAX}) == CurrencyParam("R$ 150,00", "BRL", 2**31 - 1)
    assert body_param({**BRL, "amount_1000": AMOUNT_MIN}) == CurrencyParam("R$ 150,00", "BRL", -(2**31))


def test_a_text_message_takes_no_currency_or_date() -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_whatsapp_payload({"to": "5511999999999", "kind": MessageKind.TEXT.value, "body": "{{1}} {{2}}",
                                  "params": ["a", BRL]})
    assert caught.value.field == "params.1"


@given(SENDABLE, SENDABLE, st.sampled_from(["\n", "\r", "\t", " " * 5, " " * 9]))
def test_a_line_break_a_tab_or_five_spaces_anywhere_in_a_template_param_is_refused(
        before: str, after: str, bad: str) -> None:
    check_sendable(before + after, field="params.0")
    with pytest.raises(ValidationError) as caught:
        check_sendable(before + bad + after, field="params.0")
    assert caught.value.field == "params.0"
    with pytest.raises(ValidationError) as caught:
        check_sendable(DateTimeParam(before + bad + after), field="params.3")
    assert caught.value.field == "params.3.fallback_value"


def test_an_empty_template_param_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_whatsapp_payload({"to": "5511999999999", "kind": "template", "template_name": "t",
                                  "body": "Olá, {{1}}!", "params": [""]})
    assert caught.value.field == "params.0"


@pytest.mark.parametrize(("body", "params", "why"), [
    (" \n\t ", [], "the body is only whitespace"),
    ("{{1}}", [" "], "the params fill the body with whitespace only"),
    ("{{1}} {{2}}", ["\n", "\u00a0"], "the params fill the body with whitespace only"),
])
def test_a_text_message_that_would_be_sent_blank_is_refused(body: str, params: list[str], why: str) -> None:
    """Meta refuses a text message without text: refused when it is made, not found when it is due."""
    with pytest.raises(ValidationError) as caught:
        prepare_whatsapp_payload({"to": "5511999999999", "kind": MessageKind.TEXT.value, "body": body,
                                  "params": params})
    assert caught.value.field == "body"
    assert caught.value.message == f"a text message must not be blank (Meta refuses an empty text): {why}"
    prepared = prepare_whatsapp_payload({"to": "5511999999999", "kind": MessageKind.TEXT.value,
                                         "body": " {{1}} ", "params": ["Oi"]})
    assert prepared["rendered_body"] == " Oi "
