"""The values a task's payload may hold: JSON that every store keeps exactly."""

from __future__ import annotations

import math

from cronjob.domain.errors import ValidationError

#: The integers every store keeps exactly: MongoDB's BSON has no integer wider than signed 64 bits.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The levels of objects and arrays a value inside a payload (an ``http.request`` body, a
#: routine's ``args``) may nest, itself included: MongoDB keeps documents of at most 100 levels,
#: and the payload sits inside the schedule's.
MAX_NESTING = 64
#: Why a string holding a lone surrogate is refused.
LONE_SURROGATE = "a lone surrogate (an unpaired \\ud800-\\udfff escape) is no Unicode text"


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text that UTF-8 encodes: no lone surrogate (which JSON's
    ``\\ud800`` escape, unpaired, reads as)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def nesting_beyond(value: object, levels: int) -> str | None:
    """The dotted path of the first object or array in ``value`` nested deeper than ``levels``
    (``value`` itself, when an object or array, is the first level), or None. Without recursion."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        item, path, level = stack.pop()
        if isinstance(item, dict | list):
            if level > levels:
                return path
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, f"{path}.{k}" if path else str(k), level + 1) for k, v in pairs)
    return None


def check_storable(value: object, field: str = "") -> None:
    """Raise :class:`ValidationError`, naming the value's dotted path under ``field``, for what
    some store cannot keep as it was given: an integer outside signed 64 bits (send it as a
    string), a float that is infinite or not a number (not JSON at all), a key that is no string
    or holds a NUL character (MongoDB's keys are C strings), a key or a string holding a lone
    surrogate (JSON's ``"\\ud800"`` escape unpaired: no Unicode text, no store encodes it).

    A payload (``value``) nested more than :data:`MAX_NESTING` levels below itself is refused too.
    Walks nested lists and dicts without recursion, so a deeply nested value is no crash.
    """
    if (deep := nesting_beyond(value, MAX_NESTING + 1)) is not None:
        raise ValidationError(f"nested more than {MAX_NESTING} levels deep (objects and arrays)",
                              field=f"{field}.{deep}" if field and deep else field or deep)
    stack: list[tuple[object, str]] = [(value, field)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str) or "\x00" in key:
                    raise ValidationError("keys are strings without the NUL character (U+0000)",
                                          field=f"{path}.{key!r}" if path else repr(key))
                if not is_text(key):
                    raise ValidationError(LONE_SURROGATE, field=f"{path}.{key!r}" if path else repr(key))
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(item))
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise ValidationError(
                f"integers beyond signed 64 bits ({INT64_MIN} to {INT64_MAX}) cannot be stored "
                "exactly; send this one as a string", field=path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationError("infinite and NaN numbers are not JSON", field=path)
        elif isinstance(item, str) and not is_text(item):
            raise ValidationError(LONE_SURROGATE, field=path)
