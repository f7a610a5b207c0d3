"""The values a task's payload may hold: JSON that every store keeps exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from cronjob.domain.errors import ValidationError

#: The integers every store keeps exactly: MongoDB's BSON has no integer wider than signed 64 bits.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The levels of objects and arrays a value inside a payload (an ``http.request`` body, a
#: routine's ``args``) may nest, itself included: MongoDB keeps documents of at most 100 levels,
#: and the payload sits inside the schedule's.
MAX_NESTING = 64
#: Why a value nested too deep is refused (inside a payload: the payload is one level more).
TOO_DEEP = f"nested more than {MAX_NESTING} levels deep (objects and arrays)"
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


#: A problem with one value: where (a dotted path) and what.
Problem = tuple[str, str]


def walk(value: object) -> Iterator[tuple[str, object, int]]:
    """``value`` and every value inside it, depth first, each with its dotted path (``""`` for
    ``value``) and its level of objects and arrays (``value``: 1). Without recursion."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        item, path, level = stack.pop()
        yield path, item, level
        if isinstance(item, dict | list):
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, f"{path}.{k}" if path else str(k), level + 1) for k, v in pairs)


def nesting_beyond(value: object, levels: int) -> str | None:
    """The dotted path of the first object or array in ``value`` nested deeper than ``levels``
    (``value`` itself, when an object or array, is the first level), or None."""
    return next((path for path, item, level in walk(value) if level > levels and isinstance(item, dict | list)),
                None)


def first_problem(value: object, levels: int, problem: Callable[[object, str], Problem | None]) -> Problem | None:
    """What is wrong with ``value``: an object or array nested deeper than ``levels`` first (see
    :func:`nesting_beyond`; :data:`TOO_DEEP`), else the first value, depth first, of which
    ``problem(item, path)`` says something; None when nothing is. One walk."""
    found: Problem | None = None
    for path, item, level in walk(value):
        if level > levels and isinstance(item, dict | list):
            return path, TOO_DEEP
        if found is None:
            found = problem(item, path)
    return found


def unencodable(item: object, path: str) -> Problem | None:
    """What no JSON encoder takes in ``item`` (one value of a walk, at ``path``): an infinite or
    NaN float, a key or a string holding a lone surrogate."""
    if isinstance(item, dict):
        return next(((_key_path(path, key), LONE_SURROGATE) for key in item
                     if isinstance(key, str) and not is_text(key)), None)
    if isinstance(item, float) and not math.isfinite(item):
        return path, "infinite and NaN numbers are not JSON"
    if isinstance(item, str) and not is_text(item):
        return path, LONE_SURROGATE
    return None


def _unstorable(item: object, path: str) -> Problem | None:
    """What some store cannot keep in ``item``: besides :func:`unencodable`, a key that is no
    string or holds a NUL character, an integer beyond signed 64 bits."""
    if isinstance(item, dict):
        for key in item:
            if not isinstance(key, str) or "\x00" in key:
                return _key_path(path, key), "keys are strings without the NUL character (U+0000)"
            if not is_text(key):
                return _key_path(path, key), LONE_SURROGATE
        return None
    if isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= INT64_MAX:
        return path, (f"integers beyond signed 64 bits ({INT64_MIN} to {INT64_MAX}) cannot be stored "
                      "exactly; send this one as a string")
    return unencodable(item, path)


def _key_path(path: str, key: object) -> str:
    return f"{path}.{key!r}" if path else repr(key)


def check_storable(value: object, field: str = "") -> None:
    """Raise :class:`ValidationError`, naming the value's dotted path under ``field``, for what
    some store cannot keep as it was given: an integer outside signed 64 bits (send it as a
    string), a float that is infinite or not a number (not JSON at all), a key that is no string
    or holds a NUL character (MongoDB's keys are C strings), a key or a string holding a lone
    surrogate (JSON's ``"\\ud800"`` escape unpaired: no Unicode text, no store encodes it).

    A payload (``value``) nested more than :data:`MAX_NESTING` levels below itself is refused
    first. Walks nested lists and dicts without recursion, so a deeply nested value is no crash.
    """
    found = first_problem(value, MAX_NESTING + 1, _unstorable)
    if found is not None:
        path, message = found
        raise ValidationError(message, field=f"{field}.{path}" if field and path else field or path)
