"""The length of an interval as written after ``every``: ``15 minutes``, and Rocketry's spellings
of a duration (its ``TimeDelta`` strings, rocketry 2.5's ``string_to_timedelta``).

Rocketry sums terms, each a number and a unit, apart by spaces or commas or nothing (``2 days 2
hours``, ``1 day, 2 hours``, ``1h30min``), its units abbreviated (``ms``; ``s``, ``sec``,
``secs``; ``m``, ``min``, ``mins``; ``h``, ``hr``, ``hrs``; ``d``), its numbers with decimals
(``1.5 hours``), and reads a clock duration ``H:MM:SS`` as the last term (``1d 12:00:00``). This
grammar takes the same, and weeks (7 × 24 hours), which Rocketry lacks. The sum is exact (``0.1
hours`` is 360 seconds, not a float's 360.00000000000006).
"""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction

from cronjob.domain.errors import ValidationError
from cronjob.domain.recurring import UNITS, WEEK

#: Each unit's length in seconds, by the name it is counted under: the intervals' units, and milliseconds.
_SECONDS = {"millisecond": Fraction(1, 1000),
            **{name: Fraction(int(size.total_seconds())) for name, size in (WEEK, *UNITS)}}
#: Every spelling of each unit (a plural is its singular's with an ``s``; ``ms`` and ``s`` are not plurals).
_SPELLINGS = {"ms": "millisecond", "millisecond": "millisecond", "s": "second", "sec": "second",
              "second": "second", "m": "minute", "min": "minute", "minute": "minute", "h": "hour",
              "hr": "hour", "hour": "hour", "d": "day", "day": "day", "week": "week"}

_NUMBER = r"\d+(?:\.\d+)?"
_UNIT = r"(?:milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?)(?![a-z])"
_CLOCK = r"\d+:\d\d:\d\d(?:\.\d+)?"
_TERM = rf"{_NUMBER}\s*{_UNIT}"
#: A duration, to be matched case-insensitively: terms, then perhaps a clock duration, or a clock duration alone.
DURATION = rf"(?:{_TERM}(?:[\s,]*{_TERM})*(?:[\s,]*{_CLOCK})?|{_CLOCK})"
_PARTS = re.compile(rf"(?P<number>{_NUMBER})\s*(?P<unit>{_UNIT})|(?P<clock>{_CLOCK})", re.ASCII | re.IGNORECASE)
#: Units largest first, as :func:`duration` names the largest one written.
_LARGEST_FIRST = sorted(_SECONDS, key=_SECONDS.__getitem__, reverse=True)


def duration(text: str) -> tuple[str, timedelta]:
    """The largest unit ``text`` names (``second`` ... ``week``; ``hour`` for a clock duration)
    and the length it sums to, a whole number of seconds. ``text`` matches :data:`DURATION`.

    Raises :class:`ValidationError` (``schedule``) for a length that is not a whole number of
    seconds, or longer than a ``timedelta`` holds.
    """
    try:
        seconds, units = _sum(text)
        whole = seconds.denominator == 1
        every = timedelta(seconds=int(seconds)) if whole else None
    except (OverflowError, ValueError):  # past ``timedelta`` (999,999,999 days), or thousands of digits
        raise ValidationError(f"the interval {text!r} is too long", field="schedule") from None
    if every is None:
        raise ValidationError(f"the interval {text!r} is {float(seconds):g} seconds: an interval is a whole number "
                              "of seconds", field="schedule")
    return next(unit for unit in _LARGEST_FIRST if unit in units), every


def _sum(text: str) -> tuple[Fraction, set[str]]:
    """The seconds ``text`` sums to, exactly, and the units it names."""
    seconds, units = Fraction(0), set()
    for part in _PARTS.finditer(text):
        if part["clock"]:
            hours, minutes, rest = part["clock"].split(":")
            if int(minutes) > 59 or Fraction(rest) >= 60:
                raise ValidationError(f"invalid duration {part['clock']!r} in the interval {text!r} (expected H:MM:SS, "
                                      "its minutes and seconds 00 to 59)", field="schedule")
            seconds += int(hours) * 3600 + int(minutes) * 60 + Fraction(rest)
            units.add("hour")
            continue
        spelt = part["unit"].lower()
        unit = _SPELLINGS.get(spelt) or _SPELLINGS[spelt[:-1]]
        seconds += Fraction(part["number"]) * _SECONDS[unit]
        units.add(unit)
    return seconds, units
