"""A WhatsApp template body's ``{{1}}``.. values: a text, or a currency amount or a date/time
(Meta's ``currency`` and ``date_time`` body parameters). Value objects, no I/O.

In a payload's ``params`` a text is a plain string, as it always was, and a currency or a
date/time an object with its ``type`` (``to_json``/``body_param``). What the body preview shows
for one, and what the recipient sees whenever WhatsApp does not format it for their locale, is its
``fallback_value`` (on the Cloud API, always so for a date/time).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cronjob.domain.errors import ValidationError

#: Meta's ``amount_1000`` is an int32.
AMOUNT_MIN, AMOUNT_MAX = -(2**31), 2**31 - 1
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
#: What Meta refuses in a template's parameter text ("Param text cannot have new-line/tab
#: characters or more than 4 consecutive spaces").
_UNSENDABLE = re.compile(r"[\r\n\t]| {5,}")


@dataclass(frozen=True, slots=True)
class CurrencyParam:
    """An amount in ``code`` (ISO 4217, ``BRL``), times 1000 (``150000`` for 150.00), and the text
    shown for it: ``fallback_value`` (``R$ 150,00``)."""

    fallback_value: str
    code: str
    amount_1000: int

    def __post_init__(self) -> None:
        _check_fallback(self.fallback_value)
        if not isinstance(self.code, str) or not _CURRENCY_CODE.fullmatch(self.code):
            raise ValidationError("a currency `code` is 3 capital letters (ISO 4217, as BRL)", field="code")
        amount = self.amount_1000
        if not isinstance(amount, int) or isinstance(amount, bool) or not AMOUNT_MIN <= amount <= AMOUNT_MAX:
            raise ValidationError(f"`amount_1000` is an integer from {AMOUNT_MIN} to {AMOUNT_MAX} (the amount "
                                  "times 1000)", field="amount_1000")

    def to_json(self) -> dict[str, Any]:
        """As a payload stores it (what :func:`body_param` reads)."""
        return {"type": "currency", "fallback_value": self.fallback_value, "code": self.code,
                "amount_1000": self.amount_1000}


@dataclass(frozen=True, slots=True)
class DateTimeParam:
    """A date and/or time, as the text shown for it (``fallback_value``: ``21 de junho, 14h``)."""

    fallback_value: str

    def __post_init__(self) -> None:
        _check_fallback(self.fallback_value)

    def to_json(self) -> dict[str, Any]:
        """As a payload stores it (what :func:`body_param` reads)."""
        return {"type": "date_time", "fallback_value": self.fallback_value}


#: One body parameter: a text, a currency amount or a date/time.
BodyParam = str | CurrencyParam | DateTimeParam


def body_param(value: Any, *, field: str = "params") -> BodyParam:
    """A payload's parameter as a value: a string stays one; an object is read by its ``type``.
    A :class:`ValidationError` names the part at fault under ``field`` (``params.1.code``)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ValidationError("a param is a string, or an object of type currency or date_time", field=field)
    kind = value.get("type")
    expected = {"currency": {"type", "fallback_value", "code", "amount_1000"},
                "date_time": {"type", "fallback_value"}}.get(kind) if isinstance(kind, str) else None
    if expected is None:
        raise ValidationError("a param object's type is currency or date_time", field=f"{field}.type")
    if unknown := sorted(set(value) - expected):
        raise ValidationError(f"a {kind} param takes no {', '.join(unknown)}", field=f"{field}.{unknown[0]}")
    try:
        if kind == "currency":
            return CurrencyParam(value.get("fallback_value"), value.get("code"), value.get("amount_1000"))
        return DateTimeParam(value.get("fallback_value"))
    except ValidationError as exc:
        raise ValidationError(exc.message, field=f"{field}.{exc.field}") from None


def body_params(values: Iterable[Any]) -> tuple[BodyParam, ...]:
    """A payload's ``params``, each read by :func:`body_param` (a stored list of strings, as every
    schedule made before these types existed has, reads as those strings)."""
    return tuple(body_param(value, field=f"params.{index}") for index, value in enumerate(values))


def shown(param: BodyParam) -> str:
    """The text that stands for ``param`` in the rendered body."""
    return param if isinstance(param, str) else param.fallback_value


def stored(param: BodyParam) -> str | dict[str, Any]:
    """``param`` as a payload stores it."""
    return param if isinstance(param, str) else param.to_json()


def check_sendable(param: BodyParam, *, field: str) -> None:
    """Refuse a template parameter Meta refuses whatever its template: an empty text, or one with
    a line break, a tab or more than four spaces in a row (its ``fallback_value`` for an object).
    Such a send could never succeed, so it is refused when the schedule is made, not found when
    it is due. A text message's params are free text: this is for a template's only."""
    text = shown(param)
    if not text:
        raise ValidationError("a template param must not be empty (Meta refuses it)", field=field)
    if _UNSENDABLE.search(text):
        raise ValidationError("a template param cannot hold a line break, a tab or more than 4 spaces in a row "
                              "(Meta refuses it)", field=field if isinstance(param, str) else f"{field}.fallback_value")


def _check_fallback(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError("`fallback_value` is a non-empty text", field="fallback_value")
