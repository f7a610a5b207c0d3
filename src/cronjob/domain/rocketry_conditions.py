"""Rocketry's own time-condition strings (rocketry 2.5's condition syntax), read as the rules of
this service's grammar that run as they would, and the conditions that cannot be, refused saying why.

Rocketry evaluates a condition on every cycle of its scheduler: ``daily between 10:00 and 12:00``
is true once a day, from the moment the window opens until the task has run in it. A precise
scheduler runs each occurrence once, at an instant: the instant such a window opens. So:

- ``daily between <a> and <b>``, ``daily after <a>``, ``daily starting <a>``, ``daily on <a>``:
  ``daily at <a>``; ``daily before <b>``: ``daily at 00:00`` (the day's window opens at midnight);
- ``weekly ... <day> [<time>]`` (Monday the start of the week) as ``weekly on <day>`` at that
  time or 00:00, ``weekly before ...`` on Monday; ``monthly ... <day of the month> [<time>]`` as
  ``monthly on <day>``, ``monthly before ...`` on the 1st; ``hourly ... <MM:SS>`` on that minute of each local hour
  (``cron <MM> * * * *``), ``hourly before ...`` on the hour;
- ``minutely ... <SS>`` (seconds of the minute) and ``secondly ... <ms>`` (milliseconds of the
  second), periods of elapsed time as ``minutely`` and ``secondly`` are here: every minute (second)
  from that far into the local minute (second) that now is in (:func:`period_offset`; ``every
  minute from <instant>``), ``... before ...`` from its start;
- ``every <n> <unit> & time of day between <a> and <b>`` (``& time of week between <day> and
  <day>``): a repetition in a daily window, ``every <n> <unit> between <a> and <b> [on <days>]``.

The other bound of a window is checked as the grammar checks the first (``daily at <b>`` must be a
rule too). Conditions on the state of tasks or of the scheduler (``after task 'x'``, ``has
succeeded``, ``true``), a ``time of ...`` window alone and other combinations with ``&``, ``|`` or
``~`` have no instant meaning: they are refused, saying what to write instead.
"""

from __future__ import annotations

import re
from datetime import timedelta

from cronjob.domain.durations import DURATION
from cronjob.domain.errors import ValidationError
from cronjob.domain.recurring import WEEKDAY_NAMES

_CASELESS = re.ASCII | re.IGNORECASE
_DAY = "|".join(sorted((*WEEKDAY_NAMES, *(name[:3] for name in WEEKDAY_NAMES)), key=len, reverse=True))
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?"
#: What each period takes as a bound, as Rocketry writes it, and where its window opens: a day of
#: the week or of the month may have a time of day after it (``Fri 10:00``, ``15th 10:00``).
_BOUNDS = {
    "daily": (_TIME, "00:00"),
    "weekly": (rf"(?:{_DAY})(?:\s+{_TIME})?", "monday"),
    "monthly": (rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|last)(?:\s+{_TIME})?", "1"),
    "hourly": (r"\d{1,2}:\d{2}", "00:00"),
}
#: Rocketry's periods short enough to run here as elapsed time (``every minute from <instant>``),
#: their bounds seconds of the minute and milliseconds of the second: where the window opens is
#: how far into each period the rule runs.
_OFFSET_BOUNDS = {"minutely": r"\d+(?:\.\d+)?", "secondly": r"\d+(?:\.\d+)?"}


def _restriction(period: str, bound: str) -> re.Pattern[str]:
    """``<period> between <a> and <b>``, ``after|starting <a>``, ``before <b>``, and ``on <a>``
    (Rocketry's ``at``: the unit ``<a>`` names, ``daily on 10:00`` from 10:00 to 11:00) where
    ``<period> on ...`` is no rule of the grammar already (``weekly on mon``, ``monthly on 3rd``)."""
    on = "" if period in ("weekly", "monthly") else rf"|on\s+(?P<on>{bound})"
    return re.compile(rf"(?P<period>{period})\s+(?:between\s+(?P<start>{bound})\s+and\s+(?P<end>{bound})"
                      rf"|(?:after|starting)\s+(?P<after>{bound})|before\s+(?P<before>{bound}){on})", _CASELESS)


_RESTRICTED = {period: _restriction(period, bound) for period, (bound, _) in _BOUNDS.items()}
_OFFSET_RESTRICTED = {period: _restriction(period, bound) for period, bound in _OFFSET_BOUNDS.items()}
_HOUR_BOUND = re.compile(r"(?P<minute>\d{1,2}):(?P<second>\d{2})", re.ASCII)
_EVERY = re.compile(rf"every\s+(?:{DURATION}|second|minute|hour)", _CASELESS)
_TIME_OF_DAY = re.compile(rf"time\s+of\s+day\s+between\s+(?P<start>{_BOUNDS['daily'][0]})\s+and\s+"
                          rf"(?P<end>{_BOUNDS['daily'][0]})", _CASELESS)
_TIME_OF_WEEK = re.compile(rf"time\s+of\s+week\s+(?:between\s+(?P<first>{_DAY})\s+and\s+(?P<last>{_DAY})"
                           rf"|on\s+(?P<on>{_DAY}))", _CASELESS)
_TIME_OF = re.compile(r"time\s+of\s+(?:minute|hour|day|week|month)\b.*", _CASELESS)
#: Rocketry's conditions on the state of tasks, of the scheduler or of its session.
_STATE = re.compile(
    r"(?:after\s+(?:any\s+)?tasks?\s+'.*"
    r"|(?:task\s+'.*'\s+)?has\s+(?:failed|succeeded|finished|terminated|inacted|started)\b.*"
    r"|(?:while\s+)?task\s+'.*'\s+is\s+running|scheduler\s+.*|param\s+'.*|env\s+'.*|true|false)", _CASELESS)

#: What a window written with ``&`` is, as the refusals of other combinations say.
WINDOW_WITH_AND = "every <n> <unit> & time of day between HH:MM and HH:MM [& time of week between <day> and <day>]"


def rocketry_rules(text: str) -> tuple[str, ...] | None:
    """The rule that runs as Rocketry's condition ``text`` does, followed by the rules that check
    the condition's other bound; None when ``text`` is none of Rocketry's conditions read here.

    ``text`` has single spaces. Raises :class:`ValidationError` (``schedule``) for a Rocketry
    condition with no instant meaning.
    """
    if "&" in text or "|" in text or text.startswith("~"):
        return (_window(text),)
    for period, pattern in _RESTRICTED.items():
        if match := pattern.fullmatch(text):
            return _restricted(period, match)
    if _STATE.fullmatch(text):
        raise ValidationError(
            f"{text!r} is a Rocketry condition on the state of tasks or of the scheduler: here a schedule runs at "
            "the times of its rule alone, each occurrence once. Give it a time rule ('daily at 10:00', "
            "'every 10 minutes'); to run one task after another, run both in one task, or create the second "
            "schedule when the first one's status webhook (callback_url) says it succeeded", field="schedule")
    if _TIME_OF.fullmatch(text):
        raise ValidationError(
            f"{text!r} alone is true all through its window (Rocketry runs the task on every cycle of its "
            "scheduler there): here a window restricts a repetition, as in 'every 15 minutes between 08:00 and "
            "18:00', or runs once when it opens, as in 'daily at 08:00'", field="schedule")
    return None


def period_offset(text: str) -> tuple[str, timedelta] | None:
    """Rocketry's ``minutely`` or ``secondly`` in a window of each period (``minutely after 30``,
    ``secondly between 100 and 200``): the period and how far into each one its window opens (30
    s; 100 ms), both bounds checked; None when ``text`` is no such condition.

    ``text`` has single spaces. Raises :class:`ValidationError` (``schedule``) for a bad bound.
    """
    for period, pattern in _OFFSET_RESTRICTED.items():
        if match := pattern.fullmatch(text):
            opening, *_checked = [_offset(period, bound) for bound in _bounds(match, "0")]
            return period, opening
    return None


def _bounds(match: re.Match[str], opening: str) -> list[str]:
    """The bounds of a match of :func:`_restriction`: where its window opens (``opening``, the
    period's start, unless written), then the bound that closes it, if written."""
    start = match["start"] or match["after"] or match.groupdict().get("on")
    return [start or opening, *(bound for bound in (match["end"], match["before"]) if bound)]


def _offset(period: str, bound: str) -> timedelta:
    """A bound of ``minutely`` (``SS[.fff]``, seconds of the minute) or ``secondly`` (milliseconds
    of the second), as the time into the period; a rule runs to the millisecond."""
    whole, _, fraction = bound.partition(".")
    if period == "minutely":
        if len(whole) > 2 or int(whole) > 59 or len(fraction) > 3:
            raise ValidationError(f"invalid second of the minute {bound!r} (expected SS[.fff], 00 to 59.999: a rule "
                                  "runs to the millisecond)", field="schedule")
        return timedelta(seconds=int(whole), milliseconds=int(fraction.ljust(3, "0")))
    if len(whole) > 3 or fraction:
        raise ValidationError(f"invalid millisecond of the second {bound!r} (expected 0 to 999, whole: a rule runs to "
                              "the millisecond)", field="schedule")
    return timedelta(milliseconds=int(whole))


def _restricted(period: str, match: re.Match[str]) -> tuple[str, ...]:
    """``<period> between|after|starting|before|on <bound>``: the rule at the instant its window opens."""
    return tuple(_period_rule(period, bound) for bound in _bounds(match, _BOUNDS[period][1]))


def _period_rule(period: str, bound: str) -> str:
    if period == "daily":
        return f"daily at {bound}"
    if period in ("weekly", "monthly"):
        day, _, at = bound.partition(" ")
        return f"{period} on {day}" + (f" at {at}" if at else "")
    minute_second = _HOUR_BOUND.fullmatch(bound)
    assert minute_second is not None  # the pattern took it
    minute, second = int(minute_second["minute"]), int(minute_second["second"])
    if minute > 59 or second > 59:
        raise ValidationError(f"invalid time of the hour {bound!r} (expected MM:SS, 00:00 to 59:59)", field="schedule")
    if second:
        raise ValidationError(f"'hourly' at {bound!r} of each hour: a rule here runs on a minute of the hour "
                              f"(MM:00), as 'cron <minute> * * * *' does", field="schedule")
    return f"cron {minute} * * * *"


def _window(text: str) -> str:
    """``every <n> <unit> & time of day between <a> and <b> [& time of week ...]`` as the rule
    ``every <n> <unit> between <a> and <b> [on <days>]``; any other combination is refused."""
    parts = [part.strip() for part in text.split("&")]
    every = [part for part in parts if _EVERY.fullmatch(part)]
    day = [match for part in parts if (match := _TIME_OF_DAY.fullmatch(part))]
    week = [match for part in parts if (match := _TIME_OF_WEEK.fullmatch(part))]
    if "|" in text or text.startswith("~") or len(every) != 1 or len(day) != 1 or len(week) > 1 \
            or len(parts) != 2 + len(week):
        raise ValidationError(
            f"{text!r}: of Rocketry's combinations ('&', '|', '~') a rule here takes only a repetition in a "
            f"window, '{WINDOW_WITH_AND}' (or 'every 15 minutes between 08:00 and 18:00 on mon-fri'); for one "
            "rule or another ('|') create a schedule for each, for other combinations write cron "
            "('cron */15 8-17 * * mon-fri')", field="schedule")
    rule = f"{every[0]} between {day[0]['start']} and {day[0]['end']}"
    if week:
        days = week[0]["on"] or f"{week[0]['first']}-{week[0]['last']}"
        rule += f" on {days}"
    return rule
