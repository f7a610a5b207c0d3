"""Parses schedule expressions (Rocketry-style condition strings and cron) into triggers.

Grammar (case-insensitive; runs of spaces count as one; ``HH:MM[:SS]`` is a 24-hour time of day;
``<ISO>`` is an ISO-8601 date-time with an offset or ``Z``)::

    once @ YYYY-MM-DD HH:MM[:SS]        wall time in ``timezone``; a time the clocks skip (DST gap)
                                        is refused, a repeated one takes its first pass
    once @ <ISO>                        an instant (OnceTrigger's own expression)
    every N seconds|minutes|hours|days|weeks [from <ISO>]
    every second|minute|hour|day|week [from <ISO>]
                                        elapsed time, anchored at ``from`` or else at ``now`` (a
                                        week is 7 × 24 hours, as a day is 24); ``N <unit>`` may be
                                        any duration Rocketry writes, summed: ``2 days 2 hours``,
                                        ``1h 30min``, ``1.5 hours``, ``01:30:00`` (see
                                        :mod:`cronjob.domain.durations`)
    secondly | minutely | hourly        every second / minute / hour, anchored at the start of the
                                        local second / minute / hour that ``now`` is in
    daily                               daily at 00:00
    weekly                              weekly on monday at 00:00
    monthly                             monthly on 1 at 00:00
    daily at HH:MM[:SS]
    every day at HH:MM[:SS]             wall time in ``timezone``, every day
    weekly on <days> [at HH:MM[:SS]]
    every <days> [at HH:MM[:SS]]
                                        on those days, at 00:00 unless given: a comma list of
                                        weekdays (``monday`` or ``mon``) and ranges (``mon-fri``;
                                        ``fri-mon`` runs on past Sunday)
    every N seconds|minutes|hours between HH:MM[:SS] and HH:MM[:SS] [on <days>]
    every second|minute|hour between ...
                                        a window of the day in ``timezone``, each day (on those
                                        days): from the instant it opens, every N of elapsed time
                                        while it is open (its end left out; an end not after the
                                        start is on the next date), see :class:`WindowTrigger`
    monthly on <days> [at HH:MM[:SS]]
    every month on <days> [at HH:MM[:SS]]
                                        on those days of the month, at 00:00 unless given: a comma
                                        list of ``1`` to ``31`` (or ``1st``, ``2nd``, ``3rd``,
                                        ``4th`` ... ``31st``) and ``last``, the month's last day;
                                        a day a month lacks (the 31st in April) has no run in it
    cron <5 fields> | cron(<5 fields>) | <5 fields>
                                        minute hour day-of-month month day-of-week, needs ``cron``
    [cron] @yearly|@annually|@monthly|@weekly|@daily|@midnight|@hourly
                                        cron's shorthands, kept as their five fields (``@weekly``
                                        is ``0 0 * * 0``, Sunday, as in cron; ``@hourly`` is
                                        ``0 * * * *``, on the local hour); ``@reboot`` is refused
    <recurring rule> until <end>        the rule, up to ``<end>`` (inclusive): ``<ISO>``, a wall time
                                        ``YYYY-MM-DD HH:MM[:SS]`` in ``timezone`` (as ``once @``), or
                                        a date ``YYYY-MM-DD``: up to the end of that local date
    <calendar, window or cron rule> from <start> [until <end>]
                                        the rule from ``<start>`` (inclusive; written as ``<end>``,
                                        a date meaning from the start of that local date)
    <recurring rule> [from ...] [until ...] except YYYY-MM-DD[,YYYY-MM-DD...]
                                        the rule, but not on those dates in ``timezone`` (holidays):
                                        an occurrence on one does not happen, the next is the
                                        rule's first on a date not listed; each date once, shown
                                        ascending (see :class:`ExceptedTrigger`)
    daily|weekly|monthly|hourly between <a> and <b> | after <a> | starting <a> | before <b> | on <a>
    minutely|secondly between <a> and <b> | after <a> | starting <a> | before <b> | on <a>
    every N <unit> & time of day between <a> and <b> [& time of week between <day> and <day>]
                                        Rocketry's conditions, read as the rule that runs as they
                                        would (``daily between 10:00 and 12:00`` is ``daily at
                                        10:00``; ``minutely after 30`` every minute from 30 s into
                                        the local minute ``now`` is in): see
                                        :mod:`cronjob.domain.rocketry_conditions`, which also
                                        refuses those with no instant meaning

Each trigger's ``expression`` is in this grammar and parses back (in the same zone) to an equal
trigger. Errors are :class:`~cronjob.domain.errors.ValidationError` with ``field="schedule"``
(``"timezone"`` for an unknown zone).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.cron import CronEvaluator
from cronjob.domain.durations import DURATION, duration
from cronjob.domain.errors import ValidationError
from cronjob.domain.excepted import ExceptedTrigger
from cronjob.domain.recurring import (
    LAST_DAY,
    UNITS,
    WEEK,
    WEEKDAY_NAMES,
    CalendarTrigger,
    CronTrigger,
    IntervalTrigger,
)
from cronjob.domain.rocketry_conditions import period_offset, rocketry_rules
from cronjob.domain.trigger import OnceTrigger, Trigger, require_aware
from cronjob.domain.window import WindowTrigger
from cronjob.domain.zones import ONE_SECOND, OUT_OF_RANGE, first_instant_at, load_zone, localize

ACCEPTED_FORMS = (
    "once @ YYYY-MM-DD HH:MM[:SS]",
    "once @ <ISO-8601 with offset>",
    "every N seconds|minutes|hours|days|weeks [from <ISO-8601 with offset>]",
    "every second|minute|hour|day|week [from ...]",
    "every <Rocketry duration: 2 days 2 hours, 1h 30min, 90s, 1.5 hours, 01:30:00> [from ...]",
    "secondly", "minutely", "hourly", "daily", "weekly", "monthly",
    "daily at HH:MM[:SS]",
    "every day at HH:MM[:SS]",
    "weekly on <weekday>[,<weekday>...] [at HH:MM[:SS]] (a weekday or a range, mon-fri)",
    "every <weekday>[,<weekday>...] [at HH:MM[:SS]]",
    "monthly on <day>[,<day>...] [at HH:MM[:SS]] (days 1..31, 1st..31st, last)",
    "every month on <day>[,<day>...] [at HH:MM[:SS]]",
    "every N seconds|minutes|hours between HH:MM[:SS] and HH:MM[:SS] [on <weekday>[,<weekday>...]]",
    "Rocketry's daily|weekly|monthly|hourly|minutely|secondly between <a> and <b> (after <a>, starting <a>, "
    "before <b>, on <a>)",
    "Rocketry's every N minutes & time of day between HH:MM and HH:MM [& time of week between <day> and <day>]",
    "cron <minute hour day-of-month month day-of-week>",
    "[cron] @yearly|@annually|@monthly|@weekly|@daily|@midnight|@hourly",
    "<any recurring form> until <YYYY-MM-DD[ HH:MM[:SS]] or ISO-8601 with offset>",
    "<daily, weekly, monthly, window or cron form> from <YYYY-MM-DD[ HH:MM[:SS]] or ISO-8601 with offset> [until ...]",
    "<any recurring form> [from ...] [until ...] except YYYY-MM-DD[,YYYY-MM-DD...]",
)

_UNIT_SIZES = dict((WEEK, *UNITS))
_DAYS = {name: number for number, full in enumerate(WEEKDAY_NAMES) for name in (full, full[:3])}

_TIME_TEXT = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?", re.ASCII)
_TIME = rf"(?P<time>{_TIME_TEXT.pattern})"
_DAY = r"(?:" + "|".join(sorted(_DAYS, key=len, reverse=True)) + r")"
_DAY_ITEM = rf"{_DAY}(?:\s*-\s*{_DAY})?"  # a day, or a range of days: mon-fri
_DAY_LIST = rf"(?P<days>{_DAY_ITEM}(?:\s*,\s*{_DAY_ITEM})*)"

# Matched against the text as given (keywords in any case), so that what an error quotes is what
# the client wrote; the words that mean something (units, day names, cron fields) are lowered.
_CASELESS = re.ASCII | re.IGNORECASE
_ONCE = re.compile(r"once\s*@\s*(?P<when>.+)", _CASELESS)
#: ``every <duration>`` or ``every <unit>``: an interval's length, and a window's step (see :func:`_every`).
_EVERY = rf"every\s+(?:(?P<duration>{DURATION})|(?P<single>second|minute|hour|day|week))"
_INTERVAL = re.compile(rf"{_EVERY}(?:\s+from\s+(?P<anchor>.+))?", _CASELESS)
_PERIOD = re.compile(r"(?P<period>secondly|minutely|hourly)", _CASELESS)
_WINDOW = re.compile(
    rf"{_EVERY}\s+between\s+(?P<start>{_TIME_TEXT.pattern})\s+and\s+(?P<end>{_TIME_TEXT.pattern})(?:\s+on\s+{_DAY_LIST})?",
    _CASELESS)
#: What else starts like a window (``every 15 minutes between 8 and 18``): refused, saying how.
_WINDOW_OTHER = re.compile(r"every\s+.*\sbetween\s.*", _CASELESS)
#: How a window is written, as its errors say.
WINDOW_FORM = ("every <n> seconds|minutes|hours between HH:MM[:SS] and HH:MM[:SS] "
               "[on <weekday>[-<weekday>][,...]]")
_DAILY = re.compile(rf"(?:daily|every\s+day)(?:\s+at\s+{_TIME})?", _CASELESS)
_WEEKLY = re.compile(rf"(?:weekly\s+on|every)\s+{_DAY_LIST}(?:\s+at\s+{_TIME})?", _CASELESS)
_WEEKLY_BARE = re.compile(r"weekly", _CASELESS)
_MONTHLY = re.compile(r"(?:monthly|every\s+month)\s+on(?:\s+(?P<rest>.*))?", _CASELESS)
_MONTHLY_BARE = re.compile(r"monthly", _CASELESS)
#: What else starts like a monthly rule (``monthly at 09:00``, ``every 2 months``): refused, saying how.
_MONTHLY_OTHER = re.compile(r"(?:monthly|every\s+(?:\d+\s+)?months?)(?:\s.*)?", _CASELESS)
_AT = re.compile(r"(?:^|\s+)at(?:\s+|$)", _CASELESS)
_MONTH_DAY = re.compile(r"(?P<number>\d+)(?P<suffix>st|nd|rd|th)?|(?P<last>last)", _CASELESS)
_CRON = re.compile(r"cron\s*\((?P<call>[^()]*)\)|cron\s+(?P<prefixed>.+)", _CASELESS)
_CRON_MINUTE = re.compile(r"[0-9*/,-]+")
_CRON_FIELD = re.compile(r"[0-9a-z*/,#?-]+")
#: cron's ``@`` shorthands (Vixie cron, cronie): each is a five-field expression.
CRON_SHORTHANDS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
#: ``<rule> except <dates>``, the rule's ``from`` and ``until`` before it; the last ``except`` (a second
#: one stays in the rule, which refuses it).
_EXCEPT = re.compile(r"(?P<rule>.+)\s+except(?:\s+(?P<dates>.*))?", _CASELESS)
#: What ``except`` takes, as its errors say.
_EXCEPT_TAKES = "a comma list of dates YYYY-MM-DD, each once (2026-12-25,2027-01-01)"
#: A ``from`` or ``until`` among the dates: written after ``except`` instead of before it.
_BOUND_WORD = re.compile(r"(?:^|\s)(?:from|until)(?:\s|$)", _CASELESS)
_UNTIL = re.compile(r"(?P<rule>.+)\s+until\s+(?P<end>.+)", _CASELESS)
_FROM = re.compile(r"(?P<rule>.+)\s+from\s+(?P<start>.+)", _CASELESS)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIME_OF_DAY = re.compile(r"\d:\d\d", re.ASCII)  # in a date-time: it names a time, not only a date


def parse_trigger(
    expression: str,
    timezone: str,
    cron: CronEvaluator | None = None,
    *,
    now: datetime | None = None,
) -> Trigger:
    """Parse ``expression`` (see the module's grammar), wall times being in the IANA ``timezone``.

    ``cron`` evaluates cron expressions; ``now`` anchors intervals written without ``from``.
    """
    try:
        return _parse(expression, timezone, cron, now)
    except ValidationError as error:
        if error.field in ("schedule", "timezone"):
            raise
        # A trigger refuses its own instant by the name of its part (an instant past the calendar
        # once rounded up to the millisecond, or once in UTC): the request's field is ``schedule``.
        part = _PARTS.get(error.field or "", "the rule")
        joined = " is " if error.message.startswith(OUT_OF_RANGE) else ": "
        raise ValidationError(f"{part}{joined}{error.message}", field="schedule") from None


#: The parts of a rule by the names the triggers give them in their errors.
_PARTS = {"at": "the date-time after 'once @'", "anchor": "the anchor after 'from'",
          "from": "the start after 'from'", "until": "the end after 'until'"}


def _parse(expression: str, timezone: str, cron: CronEvaluator | None, now: datetime | None) -> Trigger:
    """:func:`parse_trigger`, its errors naming ``schedule`` unless a trigger refused a part."""
    zone = load_zone(timezone)
    if not isinstance(expression, str):
        raise _unknown(expression)
    text = " ".join(expression.split())
    lowered = text.lower()

    if match := _EXCEPT.fullmatch(text):  # first: the bounds come before it
        dates = _except_dates(match["dates"] or "")
        return ExceptedTrigger(rule=_parse(match["rule"], timezone, cron, now), dates=dates, zone=timezone)
    if match := _UNTIL.fullmatch(text):
        rule = _parse(match["rule"], timezone, cron, now)
        start = None
        if isinstance(rule, BoundedTrigger) and rule.until is None:  # ``<rule> from <start> until <end>``
            rule, start = rule.rule, rule.start  # (a second ``until`` stays nested: BoundedTrigger refuses it)
        return BoundedTrigger(rule=rule, start=start, until=_bound(match["end"], timezone, "until"))
    if match := _ONCE.fullmatch(text):
        return _once(match["when"], timezone)
    if match := _INTERVAL.fullmatch(text):
        _, every = _every(match)
        anchor = _instant(match["anchor"], "the anchor after 'from'") if match["anchor"] else _now(now, text)
        return IntervalTrigger(every=every, anchor=anchor)
    if match := _FROM.fullmatch(text):  # after _INTERVAL, whose ``from`` is its anchor
        rule = _parse(match["rule"], timezone, cron, now)
        return BoundedTrigger(rule=rule, start=_bound(match["start"], timezone, "from"))
    if match := _WINDOW.fullmatch(text):
        return _window(match, timezone)
    if (shifted := period_offset(text)) is not None:  # Rocketry's ``minutely after 30``: 30 s into each minute
        return _period(*shifted, _now(now, text), zone)
    if (rules := rocketry_rules(text)) is not None:  # Rocketry's conditions, as the rule that means each
        meaning, *_checked = [_parse(rule, timezone, cron, now) for rule in rules]
        return meaning
    if _WINDOW_OTHER.fullmatch(text):
        raise ValidationError(f"{text!r}: a repetition in a window of the day is '{WINDOW_FORM}'", field="schedule")
    if match := _PERIOD.fullmatch(text):
        return _period(match["period"].lower(), timedelta(0), _now(now, text), zone)
    if match := _DAILY.fullmatch(text):
        return CalendarTrigger(at=_time_of_day(match["time"]), zone=timezone)
    if match := _WEEKLY.fullmatch(text):
        return CalendarTrigger(at=_time_of_day(match["time"]), zone=timezone, weekdays=_weekdays(match["days"]))
    if _WEEKLY_BARE.fullmatch(text):
        return CalendarTrigger(at=time(0, 0), zone=timezone, weekdays=frozenset({0}))
    if match := _MONTHLY.fullmatch(text):
        return _monthly(match["rest"] or "", timezone)
    if _MONTHLY_BARE.fullmatch(text):
        return CalendarTrigger(at=time(0, 0), zone=timezone, month_days=frozenset({1}))
    if _MONTHLY_OTHER.fullmatch(text):
        raise ValidationError(f"{text!r}: a monthly rule is 'monthly' (the 1st at 00:00) or 'monthly on <days> "
                              f"[at HH:MM[:SS]]', its days {_MONTH_DAYS_TAKE} (a month is no fixed length of "
                              "elapsed time: there is no 'every <n> months')", field="schedule")
    if match := _CRON.fullmatch(text):
        return _cron(match["call"] if match["call"] is not None else match["prefixed"], timezone, cron)
    if _looks_like_cron(lowered) or text.startswith("@"):
        return _cron(text, timezone, cron)
    raise _unknown(expression)


def _unknown(expression: object) -> ValidationError:
    forms = "; ".join(ACCEPTED_FORMS)
    return ValidationError(f"unknown schedule expression {expression!r}; accepted forms: {forms}",
                           field="schedule")


def _once(when: str, timezone: str) -> OnceTrigger:
    if not _TIME_OF_DAY.search(when):
        raise ValidationError(f"'once @' needs a date and a time of day, got {when!r}", field="schedule")
    at = _iso(when, "the date-time after 'once @'")
    if at.tzinfo is not None:
        return OnceTrigger(at)
    return OnceTrigger(localize(at, timezone, field="schedule"))


def _bound(text: str, timezone: str, word: str) -> datetime:
    """The instant after ``from`` or ``until``: an instant, a wall time in ``timezone``, or a
    local date: its first instant (``from``), or the last millisecond before the next date
    starts (``until``)."""
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
            if word == "from":
                return first_instant_at(datetime.combine(day, time(0, 0)), load_zone(timezone))
            next_day = datetime.combine(day + timedelta(days=1), time(0, 0))
            return first_instant_at(next_day, load_zone(timezone)) - timedelta(milliseconds=1)
        except ValueError:
            raise ValidationError(f"the date after '{word}' is not a date: {text!r}", field="schedule") from None
        except OverflowError:
            raise ValidationError(f"the date after '{word}' is {OUT_OF_RANGE}", field="schedule") from None
    what = f"the {'start' if word == 'from' else 'end'} after '{word}'"
    if not _TIME_OF_DAY.search(text):  # 20261231, 2026-W53, 2026-12-31 18: none says when
        raise ValidationError(f"{what} needs a date (YYYY-MM-DD) or a date and a time of day "
                              f"(YYYY-MM-DD HH:MM[:SS], or ISO-8601 with an offset), got {text!r}", field="schedule")
    at = _iso(text, what)
    return at if at.tzinfo is not None else localize(at, timezone, field="schedule")


#: The start of an ISO-8601 date-time: a date (calendar or week date, extended or basic), then
#: ``T`` or a space, then the time of day.
_DATE_THEN_TIME = re.compile(r"\d{4}(?:-\d\d-\d\d|\d{4}|-?W\d\d(?:-?\d)?)[T ]\d", re.ASCII)


def _except_dates(text: str) -> frozenset[date]:
    """The dates after ``except``: each a date ``YYYY-MM-DD`` that exists, named once."""
    if not text.strip():
        raise ValidationError(f"'except' needs the dates to skip: {_EXCEPT_TAKES}", field="schedule")
    if _BOUND_WORD.search(text):
        raise ValidationError("'except' comes last, after 'from' and 'until': '<rule> [from ...] [until ...] "
                              f"except <dates>'; got the dates {text!r}", field="schedule")
    named: dict[date, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ValidationError(f"an empty date in the dates {text!r} after 'except': it takes {_EXCEPT_TAKES}",
                                  field="schedule")
        if not _DATE.fullmatch(item):
            raise ValidationError(f"{item!r} after 'except' is not a date YYYY-MM-DD: 'except' takes {_EXCEPT_TAKES}",
                                  field="schedule")
        try:
            day = date.fromisoformat(item)
        except ValueError as error:
            raise ValidationError(f"the date {item!r} after 'except' does not exist ({error})",
                                  field="schedule") from None
        if day in named:
            raise ValidationError(f"the date {item!r} is named twice in {text!r} after 'except'"
                                  + (f" (as {named[day]!r} first)" if named[day] != item else "")
                                  + f": it takes {_EXCEPT_TAKES}", field="schedule")
        named[day] = item
    return frozenset(named)


class DateWithoutTime(ValueError):
    """A date alone where a date-time is needed (:func:`iso_datetime`)."""


def iso_datetime(text: str) -> datetime:
    """An ISO-8601 date-time, naive when it has no offset, RFC 3339's lowercase ``t`` and ``z``
    included (Python's reader before 3.12 refuses them); ValueError otherwise.

    A date and a time of day, separated by ``T`` or a space: Python's reader also takes a date
    alone (as its midnight) and any character between the date and the time, so that it reads
    ``2027-06-21-03:00``, a date with an offset, as 03:00 on that date without one.
    """
    upper = text.upper()
    value = datetime.fromisoformat(upper)
    if not _DATE_THEN_TIME.match(upper):
        raise DateWithoutTime(text) if _is_date(upper) else ValueError(text)
    return value


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def not_a_date_time(what: str, text: str, error: ValueError) -> str:
    """Why ``text`` is refused as the date-time ``what``, :func:`iso_datetime` having raised ``error``."""
    if isinstance(error, DateWithoutTime):
        return f"{what} needs a time of day, not a date alone: {text!r}"
    return f"{what} is not an ISO-8601 date-time: {text!r}"


#: A date and a one-digit hour (``2026-12-01 9:00``, ``2026-12-01T9:00``), which ``daily at 9:00``
#: takes and ISO does not.
_ONE_DIGIT_HOUR = re.compile(r"^(\d{4}-\d\d-\d\d[ tT])(\d:)", re.ASCII)


def _iso(text: str, what: str) -> datetime:
    try:
        return iso_datetime(_ONE_DIGIT_HOUR.sub(r"\g<1>0\g<2>", text.strip()))
    except ValueError as error:
        raise ValidationError(not_a_date_time(what, text.strip(), error), field="schedule") from None


def _instant(text: str, what: str) -> datetime:
    value = _iso(text, what)
    if value.tzinfo is None:
        raise ValidationError(f"{what} needs an offset or Z: {text.strip()!r}", field="schedule")
    return value


def _now(now: datetime | None, text: str) -> datetime:
    if now is None:
        raise ValidationError(
            f"{text!r} needs an anchor: add 'from <ISO-8601 date-time with offset>'", field="schedule")
    return require_aware(now, "now")


#: Rocketry's periods that run here as elapsed time, and their length.
_PERIODS = {"secondly": ONE_SECOND, "minutely": timedelta(minutes=1), "hourly": timedelta(hours=1)}


def _period(period: str, offset: timedelta, now: datetime, zone: ZoneInfo) -> IntervalTrigger:
    """``secondly``/``minutely``/``hourly``: every second/minute/hour from ``offset`` into the
    local second/minute/hour that ``now`` is in."""
    local = now.astimezone(zone)
    into = timedelta(minutes=local.minute if period == "hourly" else 0,
                     seconds=local.second if period != "secondly" else 0, microseconds=local.microsecond)
    return IntervalTrigger(every=_PERIODS[period], anchor=(now - into + offset).astimezone(UTC))


def _time_of_day(text: str | None) -> time:
    if text is None:
        return time(0, 0)
    hour, minute, *rest = (int(part) for part in text.split(":"))
    second = rest[0] if rest else 0
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        raise ValidationError(f"invalid time of day {text!r} (expected HH:MM[:SS], 00:00 to 23:59:59)",
                              field="schedule")
    return time(hour, minute, second)


#: What the days of a monthly rule are, as its errors say.
_MONTH_DAYS_TAKE = "a comma list of days of the month, each 1 to 31 (or 1st, 2nd, 3rd ... 31st) or last"


def _weekdays(text: str) -> frozenset[int]:
    """The days of a day list (``mon,wed-fri``): a range runs forwards, past Sunday to Monday
    (``fri-mon`` is Friday to Monday)."""
    days: set[int] = set()
    for item in text.split(","):
        first, _, last = (name.strip().lower() for name in item.partition("-"))
        day, end = _DAYS[first], _DAYS[last or first]
        days.add(day)
        while day != end:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _every(match: re.Match[str]) -> tuple[str, timedelta]:
    """The largest unit and the length of a match of :data:`_EVERY` (``every 15 minutes``: minute,
    15 min; ``every 2 days 2 hours``: day, 50 hours)."""
    if match["duration"]:
        return duration(match["duration"])
    unit = match["single"].lower()
    return unit, _UNIT_SIZES[unit]


def _window(match: re.Match[str], timezone: str) -> WindowTrigger:
    """``every <n> <unit> between <start> and <end> [on <days>]``."""
    unit, every = _every(match)
    if unit in ("day", "week") and every >= timedelta(days=1):  # ``every 0.5 days`` is 12 hours: a step like any other
        raise ValidationError(f"a window opens once a day, and repeats within it every so many seconds, minutes or "
                              f"hours ('{WINDOW_FORM}'): once a day is 'daily at HH:MM[:SS]'", field="schedule")
    days = _weekdays(match["days"]) if match["days"] else None
    return WindowTrigger(every=every, start=_time_of_day(match["start"]), end=_time_of_day(match["end"]),
                         zone=timezone, weekdays=days)


def _monthly(rest: str, timezone: str) -> CalendarTrigger:
    """``monthly on <rest>``: its days, then ``at HH:MM[:SS]`` when given (else 00:00)."""
    days, *when = _AT.split(rest, maxsplit=1)
    if when and not _TIME_TEXT.fullmatch(when[0]):
        what = f"invalid time of day {when[0]!r} after 'at'" if when[0] else "'at' needs a time of day"
        raise ValidationError(f"{what} (expected HH:MM[:SS], 00:00 to 23:59:59)", field="schedule")
    return CalendarTrigger(at=_time_of_day(when[0] if when else None), zone=timezone,
                           month_days=_month_days(days))


def _month_days(text: str) -> frozenset[int]:
    """The days of ``monthly on <text>``, each named once (:data:`LAST_DAY` for ``last``)."""
    if not text.strip():
        raise ValidationError(f"a monthly rule needs its days after 'on': {_MONTH_DAYS_TAKE}", field="schedule")
    named: dict[int, str] = {}
    for item in (part.strip() for part in text.split(",")):
        day = _month_day(item, text)
        if day in named:
            raise ValidationError(f"the day {item!r} is named twice in {text!r} (as {named[day]!r} first): "
                                  f"a monthly rule takes {_MONTH_DAYS_TAKE}, each once", field="schedule")
        named[day] = item
    return frozenset(named)


def _month_day(item: str, text: str) -> int:
    """One day of a monthly rule: ``1`` to ``31``, with its own ordinal suffix or none, or ``last``."""
    match = _MONTH_DAY.fullmatch(item)
    if match is None:
        what = "an empty day" if not item else f"{item!r} is not a day of the month"
        raise ValidationError(f"{what} in the days {text!r}: a monthly rule takes {_MONTH_DAYS_TAKE}", field="schedule")
    if match["last"]:
        return LAST_DAY
    digits = match["number"].lstrip("0")
    number = int(digits) if 0 < len(digits) <= 2 else 0  # (no int() of a thousand digits)
    if not 1 <= number <= 31:
        raise ValidationError(f"the day {item!r} is outside 1 to 31: a monthly rule takes {_MONTH_DAYS_TAKE} "
                              "(the last day of every month is 'last')", field="schedule")
    suffix = match["suffix"]
    if suffix and suffix.lower() != _ordinal_suffix(number):
        raise ValidationError(f"{item!r} is not an ordinal: write {number} or {number}{_ordinal_suffix(number)}",
                              field="schedule")
    return number


def _ordinal_suffix(number: int) -> str:
    """English: 1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st, 22nd, 23rd ... 31st."""
    if number % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _looks_like_cron(text: str) -> bool:
    fields = text.split()
    return (len(fields) == 5 and _CRON_MINUTE.fullmatch(fields[0]) is not None
            and all(_CRON_FIELD.fullmatch(f) for f in fields))


def _cron(fields: str, timezone: str, cron: CronEvaluator | None) -> CronTrigger:
    """A cron trigger on ``fields`` (as written): five fields, or one of :data:`CRON_SHORTHANDS`."""
    fields = fields.strip()
    if fields.startswith("@"):
        if fields.lower() not in CRON_SHORTHANDS:
            raise ValidationError(f"{fields!r} is not a cron shorthand this service takes: "
                                  f"{', '.join(CRON_SHORTHANDS)} (a schedule has no '@reboot')", field="schedule")
        fields = CRON_SHORTHANDS[fields.lower()]
    fields = fields.lower()
    if cron is None:
        raise ValidationError("cron expressions need a cron evaluator", field="schedule")
    return CronTrigger(expression=fields, zone=timezone, evaluator=cron)
