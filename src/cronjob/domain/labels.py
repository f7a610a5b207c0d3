"""Labels: a schedule's small map of string keys to string values (``order=123``,
``campaign=black-friday``), kept beside it so that clients can find, and act on, the schedules of
one business key; and the ``key=value`` selectors that pick schedules by them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from cronjob.domain.errors import ValidationError

#: At most this many labels on one schedule (and selectors in one query).
MAX_LABELS = 16
MAX_KEY_LENGTH = 63
MAX_VALUE_LENGTH = 256
#: A key: an ASCII letter or digit, then up to 62 ASCII letters, digits, ``.``, ``_``, ``-`` or ``/``.
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"
#: A value (of at most 256 characters): no control character (C0, DEL or C1).
VALUE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"

_KEY = re.compile(KEY_PATTERN.removeprefix("^").removesuffix("$"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def label_key_problem(key: object) -> str | None:
    """Why ``key`` is not a label key, or None when it is one."""
    if not isinstance(key, str):
        return "a label key is a string"
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return f"a label key has 1 to {MAX_KEY_LENGTH} characters"
    if _KEY.fullmatch(key) is None:
        return "a label key starts with a letter or a digit, then letters, digits, '.', '_', '-' or '/'"
    return None


def label_value_problem(value: object) -> str | None:
    """Why ``value`` is not a label value, or None when it is one."""
    if not isinstance(value, str):
        return "a label value is a string"
    if len(value) > MAX_VALUE_LENGTH:
        return f"a label value has at most {MAX_VALUE_LENGTH} characters"
    if _CONTROL.search(value) is not None:
        return "a label value has no control characters"
    return None


def check_labels(labels: Mapping[object, object], *, field: str = "labels") -> dict[str, str]:
    """``labels`` as a plain dict, once every key and value is checked; :class:`ValidationError`
    naming ``field`` (or ``<field>.<key>`` for one label's value) otherwise."""
    if len(labels) > MAX_LABELS:
        raise ValidationError(f"at most {MAX_LABELS} labels; {len(labels)} given", field=field)
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if (problem := label_key_problem(key)) is not None:
            raise ValidationError(f"{problem}: {key!r}", field=field)
        assert isinstance(key, str)
        if (problem := label_value_problem(value)) is not None:
            raise ValidationError(problem, field=f"{field}.{key}")
        assert isinstance(value, str)
        checked[key] = value
    return checked


def parse_selector(texts: Iterable[str], *, field: str = "label") -> dict[str, str]:
    """The labels a schedule must all carry, from ``key=value`` texts (the value may be empty, and
    may hold ``=``: the key ends at the first one). :class:`ValidationError` naming ``field`` for
    a text without ``=``, a key or value that no label could have, a key given twice and more
    than :data:`MAX_LABELS` of them."""
    selector: dict[str, str] = {}
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals:
            raise ValidationError(f"a label selector is key=value, not {text!r}", field=field)
        problem = label_key_problem(key) or label_value_problem(value)
        if problem is not None:
            raise ValidationError(f"{problem}: {text!r}", field=field)
        if key in selector:
            raise ValidationError(f"the label {key!r} is given twice; a schedule has one value per key",
                                  field=field)
        selector[key] = value
    if len(selector) > MAX_LABELS:
        raise ValidationError(f"at most {MAX_LABELS} label selectors; {len(selector)} given", field=field)
    return selector


def label_pairs(labels: Mapping[str, str]) -> list[str]:
    """Each label as one ``key=value`` text, sorted: how a store can index them as single values
    (a key never holds ``=``, so the text says which is which)."""
    return sorted(f"{key}={value}" for key, value in labels.items())


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Whether ``labels`` carry every label of ``selector`` (an empty selector matches all)."""
    return all(labels.get(key) == value for key, value in selector.items())
