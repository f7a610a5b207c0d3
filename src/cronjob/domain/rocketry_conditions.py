"""Rocketry's own time-condition strings (rocketry 2.5's condition syntax), read as the rules of
this service's grammar that run as they would, and the conditions that cannot be, refused saying why.

Rocketry evaluates a condition on every cycle of its scheduler: ``daily between 10:00 and 12:00``
is true once a day, from the moment the window opens until the task has run in it. A precise
scheduler runs each occurrence once, at an instant: the instant such a window opens. So:

- ``daily between <a> and <b>``, ``daily after <a>``, ``daily starting <a>``: ``daily at <a>``;
  ``daily before <b>``: ``daily at 00:00`` (the day's window opens at midnight);
- ``weekly ... <day>`` (Monday the start of the week) as ``weekly on <day>`` at 00:00, ``weekly
  before <day>`` on Monday; ``monthly ... <day of the month>`` as ``monthly on <day>``, ``monthly
  before ...`` on the 1st; ``hourly ... <MM:SS>`` on that minute of each local hour
  (``cron <MM> * * * *``), ``hourly before ...`` on the hour;
- ``every <n> <unit> & time of day between <a> and <b>`` (``& time of week between <day> and
  <day>``): a repetition in a daily window, ``every <n> <unit> between <a> and <b> [on <days>]``.

The other bound of a window is checked as the grammar checks the first (``daily at <b>`` must be a
rule too). Conditions on the state of tasks or of the scheduler (``after task 'x'``, ``has
succeeded``, ``true``), a ``time of ...`` window alone and other combinations with ``&``, ``|`` or
``~`` have no instant meaning: they are refused, saying what to write instead.
"""

from __future__ import annotations

import re

from cronjob.domain.errors import ValidationError
from cronjob.domain.recurring import WEEKDAY_NAMES

_CASELESS = re.ASCII | re.IGNORECASE
_DAY = "|".join(sorted((*WEEKDAY_NAMES, *(name[:3] for name in WEEKDAY_NAMES)), key=len, reverse=True))
#: What each period takes as a bound, as Rocketry writes it, and where its window opens.
_BOUNDS = {
    "daily": (r"\d{1,2}:\d{2}(?::\d{2})?", "00:00"),
    "weekly": (rf"(?:{_DAY})", "monday"),
    "monthly": (r"\d{1,2}(?:st|nd|rd|th)?|last", "1"),
    "hourly": (r"\d{1,2}:\d{2}", "00:00"),
}
_RESTRICTED = {
    period: re.compile(
        rf"(?P<period>{period})\s+(?:between\s+(?P<start>{bound})\s+and\s+(?P<end>{bound})"
        rf"|(?:after|starting)\s+(?P<after>{bound})|before\s+(?P<before>{bound}))", _CASELESS)
    for period, (bound, _) in _BOUNDS.items()
}
_HOUR_BOUND = re.compile(r"(?P<minute>\d{1,2}):(?P<second>\d{2})", re.ASCII)
_EVERY = re.compile(r"every\s+(?:\d+\s+)?(?:second|minute|hour)s?", _CASELESS)
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


def _restricted(period: str, match: re.Match[str]) -> tuple[str, ...]:
    """``<period> between|after|starting|before <bound>``: the rule at the instant its window opens."""
    opening = _BOUNDS[period][1]
    start = match["start"] or match["after"]
    first, *others = [start or opening, *(bound for bound in (match["end"], match["before"]) if bound)]
    return tuple(_period_rule(period, bound) for bound in (first, *others))


def _period_rule(period: str, bound: str) -> str:
    if period == "daily":
        return f"daily at {bound}"
    if period == "weekly":
        return f"weekly on {bound}"
    if period == "monthly":
        return f"monthly on {bound}"
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
