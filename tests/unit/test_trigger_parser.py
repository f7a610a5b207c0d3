"""parse_trigger: every form of the grammar, round trips of canonical expressions, readable errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.errors import ValidationError
from cronjob.domain.excepted import ExceptedTrigger
from cronjob.domain.recurring import LAST_DAY, CalendarTrigger, CronTrigger, IntervalTrigger
from cronjob.domain.trigger import OnceTrigger, Trigger
from cronjob.domain.trigger_parser import parse_trigger
from cronjob.domain.window import WindowTrigger
from cronjob.domain.zones import iana_zone
from cronjob_adapters.cron import CronsimEvaluator

EVALUATOR = CronsimEvaluator()
SP = "America/Sao_Paulo"
NY = "America/New_York"
NOW = datetime(2025, 6, 21, 17, 3, 7, 250000, tzinfo=UTC)  # 14:03:07.25 in São Paulo, a Saturday
ANCHOR = datetime(2025, 6, 21, 17, 0, tzinfo=UTC)
PROPS = settings(max_examples=200, deadline=None)
HOLIDAYS = frozenset({date(2025, 12, 25), date(2026, 1, 1)})


def parse(expression: str, zone: str = SP) -> Trigger:
    return parse_trigger(expression, zone, EVALUATOR, now=NOW)


def daily(at: time, zone: str = SP) -> CalendarTrigger:
    return CalendarTrigger(at, zone)


def weekly(at: time, *days: int, zone: str = SP) -> CalendarTrigger:
    return CalendarTrigger(at, zone, frozenset(days))


def monthly(at: time, *days: int, zone: str = SP) -> CalendarTrigger:
    return CalendarTrigger(at, zone, month_days=frozenset(days))


def window(every: timedelta, start: time, end: time, *days: int, zone: str = SP) -> WindowTrigger:
    return WindowTrigger(every, start, end, zone, frozenset(days) if days else None)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # one-off: wall time in the zone (the seed's form), or an instant
        ("once @ 2025-06-21 14:00", OnceTrigger(datetime(2025, 6, 21, 17, 0, tzinfo=UTC))),
        ("once @ 2025-06-21 14:00:30", OnceTrigger(datetime(2025, 6, 21, 17, 0, 30, tzinfo=UTC))),
        ("once @ 2025-06-21T14:00", OnceTrigger(datetime(2025, 6, 21, 17, 0, tzinfo=UTC))),
        ("once @ 2025-06-21T17:00:00+00:00", OnceTrigger(datetime(2025, 6, 21, 17, 0, tzinfo=UTC))),
        ("once @ 2025-06-21T17:00:00Z", OnceTrigger(datetime(2025, 6, 21, 17, 0, tzinfo=UTC))),
        ("once @ 2025-06-21T14:00:00-03:00", OnceTrigger(datetime(2025, 6, 21, 17, 0, tzinfo=UTC))),
        ("once@2025-06-21 14:00", OnceTrigger(datetime(2025, 6, 21, 17, 0, tzinfo=UTC))),
        ("once @ 2025-06-21 9:00", OnceTrigger(datetime(2025, 6, 21, 12, 0, tzinfo=UTC))),  # as in 'daily at 9:00'
        # ... whichever separator ISO and RFC 3339 allow (a capital T was refused, a lowercase one taken)
        ("once @ 2025-06-21T9:00", OnceTrigger(datetime(2025, 6, 21, 12, 0, tzinfo=UTC))),
        ("once @ 2025-06-21t9:00", OnceTrigger(datetime(2025, 6, 21, 12, 0, tzinfo=UTC))),
        ("once @ 2025-06-21T9:00:00-03:00", OnceTrigger(datetime(2025, 6, 21, 12, 0, tzinfo=UTC))),
        # intervals, anchored by ``from`` or at ``now``
        ("every 10 minutes from 2025-06-21T17:00:00+00:00", IntervalTrigger(timedelta(minutes=10), ANCHOR)),
        ("every 10 minutes from 2025-06-21T14:00:00-03:00", IntervalTrigger(timedelta(minutes=10), ANCHOR)),
        ("every 10 minutes from 2025-06-21T17:00:00Z", IntervalTrigger(timedelta(minutes=10), ANCHOR)),
        ("every 10 minutes", IntervalTrigger(timedelta(minutes=10), NOW)),
        ("every 1 minute", IntervalTrigger(timedelta(minutes=1), NOW)),
        ("every 30 seconds", IntervalTrigger(timedelta(seconds=30), NOW)),
        ("every 2 hours", IntervalTrigger(timedelta(hours=2), NOW)),
        ("every 3 days", IntervalTrigger(timedelta(days=3), NOW)),
        ("every second", IntervalTrigger(timedelta(seconds=1), NOW)),
        ("every minute", IntervalTrigger(timedelta(minutes=1), NOW)),
        ("every hour", IntervalTrigger(timedelta(hours=1), NOW)),
        ("every day", IntervalTrigger(timedelta(days=1), NOW)),
        ("every week", IntervalTrigger(timedelta(weeks=1), NOW)),  # elapsed time, as a day is
        ("every 2 weeks", IntervalTrigger(timedelta(weeks=2), NOW)),
        ("every 1 week", IntervalTrigger(timedelta(weeks=1), NOW)),
        ("every 3 weeks from 2025-06-21T14:00:00-03:00", IntervalTrigger(timedelta(weeks=3), ANCHOR)),
        ("every 14 days", IntervalTrigger(timedelta(weeks=2), NOW)),  # the same trigger as 'every 2 weeks'
        ("every hour from 2025-06-21T17:00:00+00:00", IntervalTrigger(timedelta(hours=1), ANCHOR)),
        # Rocketry's durations: terms summed, its abbreviations, decimals, a clock duration last
        ("every 2 days 2 hours", IntervalTrigger(timedelta(hours=50), NOW)),
        ("every 1 hour 30 minutes", IntervalTrigger(timedelta(minutes=90), NOW)),
        ("every 1 day, 2 hours", IntervalTrigger(timedelta(hours=26), NOW)),
        ("every 10s", IntervalTrigger(timedelta(seconds=10), NOW)),
        ("every 1h 30min", IntervalTrigger(timedelta(minutes=90), NOW)),
        ("every 1h30m15s", IntervalTrigger(timedelta(hours=1, minutes=30, seconds=15), NOW)),
        ("every 90 secs", IntervalTrigger(timedelta(seconds=90), NOW)),
        ("every 2 hrs 5 sec", IntervalTrigger(timedelta(hours=2, seconds=5), NOW)),
        ("every 3 d", IntervalTrigger(timedelta(days=3), NOW)),
        ("every 1.5 hours", IntervalTrigger(timedelta(minutes=90), NOW)),
        ("every 0.1 hours", IntervalTrigger(timedelta(minutes=6), NOW)),  # exactly: no float's 360.00000000000006 s
        ("every 2500 ms 500 ms", IntervalTrigger(timedelta(seconds=3), NOW)),
        ("every 01:30:00", IntervalTrigger(timedelta(minutes=90), NOW)),
        ("every 1d 12:00:00", IntervalTrigger(timedelta(hours=36), NOW)),
        ("every 1 week 1 day", IntervalTrigger(timedelta(days=8), NOW)),
        ("every 1h 30min from 2025-06-21T17:00:00Z", IntervalTrigger(timedelta(minutes=90), ANCHOR)),
        ("every 2 days 2 hours until 2025-12-31",
         BoundedTrigger(IntervalTrigger(timedelta(hours=50), NOW), datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        # Rocketry's periods: on the local minute / hour, at midnight, Monday midnight
        ("secondly", IntervalTrigger(timedelta(seconds=1), datetime(2025, 6, 21, 17, 3, 7, tzinfo=UTC))),
        ("minutely", IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, tzinfo=UTC))),
        ("hourly", IntervalTrigger(timedelta(hours=1), ANCHOR)),
        ("daily", daily(time(0, 0))),
        ("weekly", weekly(time(0, 0), 0)),
        ("monthly", monthly(time(0, 0), 1)),  # the 1st at 00:00, Rocketry's period start
        # wall-clock times of day
        ("daily at 09:00", daily(time(9, 0))),
        ("daily at 9:05:30", daily(time(9, 5, 30))),
        ("every day at 18:30", daily(time(18, 30))),
        ("weekly on monday at 09:00", weekly(time(9, 0), 0)),
        ("weekly on mon,wed,fri at 09:00", weekly(time(9, 0), 0, 2, 4)),
        ("weekly on Tuesday, Thursday at 07:45:10", weekly(time(7, 45, 10), 1, 3)),
        ("weekly on sunday", weekly(time(0, 0), 6)),
        ("weekly on mon,tue,wed,thu,fri,sat,sun at 09:00", daily(time(9, 0))),
        ("every monday at 09:00", weekly(time(9, 0), 0)),
        ("every sat,sun at 10:00", weekly(time(10, 0), 5, 6)),
        ("every friday", weekly(time(0, 0), 4)),
        # ranges of weekdays, written out as the list (which the versions before ranges read)
        ("weekly on mon-fri at 09:00", weekly(time(9, 0), 0, 1, 2, 3, 4)),
        ("every Mon - Wed, fri at 10:00", weekly(time(10, 0), 0, 1, 2, 4)),
        ("every fri-mon", weekly(time(0, 0), 4, 5, 6, 0)),  # forwards, past Sunday
        ("every sunday-saturday at 07:00", daily(time(7, 0))),  # the whole week
        ("weekly on wed-wed", weekly(time(0, 0), 2)),
        # a repetition in a window of the day: from when it opens, every so often while it is open
        ("every 15 minutes between 08:00 and 18:00", window(timedelta(minutes=15), time(8, 0), time(18, 0))),
        ("every 15 minutes between 8:00 and 18:00 on mon-fri",
         window(timedelta(minutes=15), time(8, 0), time(18, 0), 0, 1, 2, 3, 4)),
        ("every hour between 22:00 and 06:00:30 on fri,sat", window(timedelta(hours=1), time(22, 0), time(6, 0, 30), 4, 5)),
        ("every 90 seconds between 09:30 and 09:45", window(timedelta(seconds=90), time(9, 30), time(9, 45))),
        ("every 23 hours between 00:00 and 23:59:59", window(timedelta(hours=23), time(0, 0), time(23, 59, 59))),
        ("every 15 minutes between 08:00 and 18:00 on mon-sun", window(timedelta(minutes=15), time(8, 0), time(18, 0))),
        ("every 1h 30min between 08:00 and 18:00", window(timedelta(minutes=90), time(8, 0), time(18, 0))),
        # a step written in days or weeks that sums to less than a day is a step like any other
        ("every 0.5 days between 08:00 and 20:00", window(timedelta(hours=12), time(8, 0), time(20, 0))),
        ("every 0 days 2 hours between 08:00 and 18:00", window(timedelta(hours=2), time(8, 0), time(18, 0))),
        ("every 0.1 weeks between 00:00 and 23:00", window(timedelta(hours=16, minutes=48), time(0, 0), time(23, 0))),
        ("every 0.5 d & time of day between 08:00 and 20:00", window(timedelta(hours=12), time(8, 0), time(20, 0))),
        ("every 15 minutes between 08:00 and 18:00 on mon-fri from 2025-07-01 until 2025-12-31",
         BoundedTrigger(window(timedelta(minutes=15), time(8, 0), time(18, 0), 0, 1, 2, 3, 4),
                        datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC), datetime(2025, 7, 1, 3, 0, tzinfo=UTC))),
        # Rocketry's conditions, as the rule that runs as each would: once a period, when its window opens
        ("daily between 10:00 and 12:00", daily(time(10, 0))),
        ("daily between 22:00 and 02:00", daily(time(22, 0))),  # a window over midnight opens at 22:00
        ("daily after 10:00", daily(time(10, 0))),
        ("daily starting 10:00:30", daily(time(10, 0, 30))),
        ("daily before 10:00", daily(time(0, 0))),  # the day's window opens at midnight
        ("Daily Between 9:00 And 17:00 until 2025-12-31",
         BoundedTrigger(daily(time(9, 0)), datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        ("weekly between Mon and Fri", weekly(time(0, 0), 0)),
        ("weekly after Friday", weekly(time(0, 0), 4)),
        ("weekly starting wed", weekly(time(0, 0), 2)),
        ("weekly before Friday", weekly(time(0, 0), 0)),  # the week starts on Monday, as Rocketry's does
        ("monthly starting 3rd", monthly(time(0, 0), 3)),
        ("monthly between 1st and 5th", monthly(time(0, 0), 1)),
        ("monthly after 15", monthly(time(0, 0), 15)),
        ("monthly before 15th", monthly(time(0, 0), 1)),
        ("monthly after last", monthly(time(0, 0), LAST_DAY)),
        # ... a day of the week or of the month with a time of day, as Rocketry's TimeOfWeek/TimeOfMonth take
        ("weekly after Fri 10:00", weekly(time(10, 0), 4)),
        ("weekly between Mon 09:00 and Fri 17:00", weekly(time(9, 0), 0)),
        ("weekly starting friday 9:30:15", weekly(time(9, 30, 15), 4)),
        ("weekly before Fri 17:00", weekly(time(0, 0), 0)),
        ("monthly after 15th 10:00", monthly(time(10, 0), 15)),
        ("monthly between last 18:00 and 3rd 09:00", monthly(time(18, 0), LAST_DAY)),
        ("hourly between 15:00 and 30:00", CronTrigger("15 * * * *", SP, EVALUATOR)),  # the local hour, as Rocketry's
        ("hourly after 45:00", CronTrigger("45 * * * *", SP, EVALUATOR)),
        ("hourly before 45:00", CronTrigger("0 * * * *", SP, EVALUATOR)),
        ("daily on 10:00", daily(time(10, 0))),  # Rocketry's 'on' (its 'at'): the hour from 10:00
        ("hourly on 15:00", CronTrigger("15 * * * *", SP, EVALUATOR)),
        # minutely (its bounds seconds of the minute) and secondly (milliseconds of the second) are
        # elapsed time: every minute (second) from that far into the local minute (second) now is in
        ("minutely after 30", IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, 30, tzinfo=UTC))),
        ("minutely after 5", IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, 5, tzinfo=UTC))),
        ("minutely starting 10.25",
         IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, 10, 250000, tzinfo=UTC))),
        ("minutely between 45 and 15",  # over the minute's end: it opens at 45
         IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, 45, tzinfo=UTC))),
        ("minutely before 30", IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, tzinfo=UTC))),
        ("minutely on 59", IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, 59, tzinfo=UTC))),
        ("secondly after 500", IntervalTrigger(timedelta(seconds=1), datetime(2025, 6, 21, 17, 3, 7, 500000, tzinfo=UTC))),
        ("secondly between 100 and 200",
         IntervalTrigger(timedelta(seconds=1), datetime(2025, 6, 21, 17, 3, 7, 100000, tzinfo=UTC))),
        ("secondly before 300", IntervalTrigger(timedelta(seconds=1), datetime(2025, 6, 21, 17, 3, 7, tzinfo=UTC))),
        ("secondly on 5", IntervalTrigger(timedelta(seconds=1), datetime(2025, 6, 21, 17, 3, 7, 5000, tzinfo=UTC))),
        ("Minutely After 30 until 2025-12-31",
         BoundedTrigger(IntervalTrigger(timedelta(minutes=1), datetime(2025, 6, 21, 17, 3, 30, tzinfo=UTC)),
                        datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        ("every 10 minutes & time of day between 08:00 and 18:00",
         window(timedelta(minutes=10), time(8, 0), time(18, 0))),
        ("time of day between 8:00 and 18:00 & every 1 minute", window(timedelta(minutes=1), time(8, 0), time(18, 0))),
        ("every 1h 30min & time of day between 08:00 and 18:00", window(timedelta(minutes=90), time(8, 0), time(18, 0))),
        ("every 10 mins & time of day between 08:00 and 18:00", window(timedelta(minutes=10), time(8, 0), time(18, 0))),
        ("every 15 minutes & time of day between 08:00 and 18:00 & time of week between Mon and Fri",
         window(timedelta(minutes=15), time(8, 0), time(18, 0), 0, 1, 2, 3, 4)),
        ("every hour & time of week on Sun & time of day between 10:00 and 12:00",
         window(timedelta(hours=1), time(10, 0), time(12, 0), 6)),
        # days of the month: numbers, ordinals, the month's last day
        ("monthly on 1", monthly(time(0, 0), 1)),
        ("monthly on 1,15,last at 09:00", monthly(time(9, 0), 1, 15, LAST_DAY)),
        ("monthly on 1st, 2nd,3rd ,4th,11th,12th,13th,21st,22nd,23rd,31st at 9:05:30",
         monthly(time(9, 5, 30), 1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)),
        ("monthly on last,15th,01 at 18:00", monthly(time(18, 0), 1, 15, LAST_DAY)),
        ("Monthly On LAST", monthly(time(0, 0), LAST_DAY)),
        ("monthly on 31,last at 23:59:59", monthly(time(23, 59, 59), 31, LAST_DAY)),  # both: one run on the 31st
        ("every month on 15th at 12:00", monthly(time(12, 0), 15)),
        ("every month on 1,last", monthly(time(0, 0), 1, LAST_DAY)),
        (f"monthly on {','.join(str(day) for day in range(1, 32))} at 07:00", daily(time(7, 0))),  # every day
        # cron, three ways
        ("cron 0 9 * * mon-fri", CronTrigger("0 9 * * MON-FRI", SP, EVALUATOR)),
        ("cron(*/15 * * * *)", CronTrigger("*/15 * * * *", SP, EVALUATOR)),
        ("cron ( 0 0 1 * * )", CronTrigger("0 0 1 * *", SP, EVALUATOR)),
        ("30 2 * * *", CronTrigger("30 2 * * *", SP, EVALUATOR)),
        ("0 0 L * *", CronTrigger("0 0 L * *", SP, EVALUATOR)),
        # cron's shorthands, with or without ``cron``, kept as their five fields
        ("@daily", CronTrigger("0 0 * * *", SP, EVALUATOR)),
        ("cron @midnight", CronTrigger("0 0 * * *", SP, EVALUATOR)),
        ("cron(@Hourly)", CronTrigger("0 * * * *", SP, EVALUATOR)),  # the local hour, unlike 'hourly'
        ("@weekly", CronTrigger("0 0 * * 0", SP, EVALUATOR)),  # Sunday, as in cron ('weekly' is Monday)
        ("@monthly", CronTrigger("0 0 1 * *", SP, EVALUATOR)),
        ("@yearly", CronTrigger("0 0 1 1 *", SP, EVALUATOR)),
        ("CRON @ANNUALLY", CronTrigger("0 0 1 1 *", SP, EVALUATOR)),
        ("@daily until 2025-12-31",
         BoundedTrigger(CronTrigger("0 0 * * *", SP, EVALUATOR), datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        # any recurring form, up to an end: an instant, a wall time, or a whole local date
        ("daily at 09:00 until 2025-07-01T12:00:00Z",
         BoundedTrigger(daily(time(9, 0)), datetime(2025, 7, 1, 12, 0, tzinfo=UTC))),
        ("every 10 minutes until 2025-06-21 18:00",
         BoundedTrigger(IntervalTrigger(timedelta(minutes=10), NOW), datetime(2025, 6, 21, 21, 0, tzinfo=UTC))),
        ("every 10 minutes from 2025-06-21T17:00:00Z until 2025-06-21T18:00:00-03:00",
         BoundedTrigger(IntervalTrigger(timedelta(minutes=10), ANCHOR), datetime(2025, 6, 21, 21, 0, tzinfo=UTC))),
        ("cron 0 9 * * mon-fri until 2025-12-31",  # through that whole date in the zone
         BoundedTrigger(CronTrigger("0 9 * * MON-FRI", SP, EVALUATOR),
                        datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        ("every monday at 09:00 UNTIL 2025-08-01T10:00:00.250Z",
         BoundedTrigger(weekly(time(9, 0), 0), datetime(2025, 8, 1, 10, 0, 0, 250000, tzinfo=UTC))),
        ("hourly until 2025-06-22T00:00:00.0004Z",  # cut to the millisecond, as fire times are
         BoundedTrigger(IntervalTrigger(timedelta(hours=1), ANCHOR), datetime(2025, 6, 22, tzinfo=UTC))),
        # a calendar or cron rule from a start (an interval's ``from`` is its anchor), and to an end
        ("daily at 09:00 from 2025-07-01",  # from the start of that date in the zone
         BoundedTrigger(daily(time(9, 0)), start=datetime(2025, 7, 1, 3, 0, tzinfo=UTC))),
        ("daily at 9:00 until 2025-08-01 9:30",
         BoundedTrigger(daily(time(9, 0)), datetime(2025, 8, 1, 12, 30, tzinfo=UTC))),
        ("every monday at 09:00 from 2025-07-07 09:00 until 2025-08-01",
         BoundedTrigger(weekly(time(9, 0), 0), datetime(2025, 8, 2, 2, 59, 59, 999000, tzinfo=UTC),
                        datetime(2025, 7, 7, 12, 0, tzinfo=UTC))),
        ("monthly on last at 18:00 until 2027-12-31",
         BoundedTrigger(monthly(time(18, 0), LAST_DAY), datetime(2028, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        ("every month on 1st at 09:00 from 2027-01-01 until 2027-06-30 12:00",
         BoundedTrigger(monthly(time(9, 0), 1), datetime(2027, 6, 30, 15, 0, tzinfo=UTC),
                        datetime(2027, 1, 1, 3, 0, tzinfo=UTC))),
        ("every 2 weeks until 2025-12-31",
         BoundedTrigger(IntervalTrigger(timedelta(weeks=2), NOW), datetime(2026, 1, 1, 2, 59, 59, 999000, tzinfo=UTC))),
        ("cron(0 9 * * *) FROM 2025-07-01T12:00:00.0004Z",  # rounded up: nothing fires before it
         BoundedTrigger(CronTrigger("0 9 * * *", SP, EVALUATOR), start=datetime(2025, 7, 1, 12, 0, 0, 1000, tzinfo=UTC))),
        # skipping listed dates of the zone (holidays), after the bounds
        ("weekly on mon-fri at 09:00 except 2025-12-25,2026-01-01",
         ExceptedTrigger(weekly(time(9, 0), 0, 1, 2, 3, 4), HOLIDAYS, SP)),
        ("every 10 seconds except 2025-12-25",
         ExceptedTrigger(IntervalTrigger(timedelta(seconds=10), NOW), frozenset({date(2025, 12, 25)}), SP)),
        ("daily at 09:00 from 2025-12-24 until 2026-01-02 except 2026-01-01 , 2025-12-25",
         ExceptedTrigger(BoundedTrigger(daily(time(9, 0)), start=datetime(2025, 12, 24, 3, tzinfo=UTC),
                                        until=datetime(2026, 1, 3, 2, 59, 59, 999000, tzinfo=UTC)), HOLIDAYS, SP)),
        ("cron 0 9 * * 1-5 until 2026-06-30 Except 2025-12-25,2026-01-01",
         ExceptedTrigger(BoundedTrigger(CronTrigger("0 9 * * 1-5", SP, EVALUATOR),
                                        until=datetime(2026, 7, 1, 2, 59, 59, 999000, tzinfo=UTC)), HOLIDAYS, SP)),
        ("every 15 minutes between 08:00 and 18:00 on mon-fri except 2025-12-25",
         ExceptedTrigger(window(timedelta(minutes=15), time(8), time(18), 0, 1, 2, 3, 4), frozenset({date(2025, 12, 25)}),
                         SP)),
        ("daily between 10:00 and 12:00 except 2025-12-25",  # Rocketry's condition, as the rule that means it
         ExceptedTrigger(daily(time(10, 0)), frozenset({date(2025, 12, 25)}), SP)),
        ("monthly on 1,15 except 2026-01-01",
         ExceptedTrigger(monthly(time(0, 0), 1, 15), frozenset({date(2026, 1, 1)}), SP)),
    ],
)
def test_every_form_parses(expression: str, expected: Trigger) -> None:
    trigger = parse(expression)
    assert trigger == expected
    assert parse(trigger.expression) == trigger


@pytest.mark.parametrize(("expression", "canonical"), [
    # weeks written as days: the versions before weeks read the stored rule too
    ("every 2 weeks from 2025-06-21T17:00:00Z", "every 14 days from 2025-06-21T17:00:00+00:00"),
    ("every week", "every 7 days from 2025-06-21T17:03:07.250000+00:00"),
    ("every 21 days from 2025-06-21T17:00:00Z", "every 21 days from 2025-06-21T17:00:00+00:00"),
    # Rocketry's durations as their total, in the largest unit that divides it
    ("every 2 days 2 hours from 2025-06-21T17:00:00Z", "every 50 hours from 2025-06-21T17:00:00+00:00"),
    ("every 1h 30min from 2025-06-21T17:00:00Z", "every 90 minutes from 2025-06-21T17:00:00+00:00"),
    ("every 1 day 24 hours from 2025-06-21T17:00:00Z", "every 2 days from 2025-06-21T17:00:00+00:00"),
    ("every 00:00:01 from 2025-06-21T17:00:00Z", "every second from 2025-06-21T17:00:00+00:00"),
    ("every 1h 30min between 08:00 and 18:00", "every 90 minutes between 08:00 and 18:00"),
    ("every 0.5 days between 08:00 and 20:00", "every 12 hours between 08:00 and 20:00"),
    # monthly rules: days ascending, ``last`` last, HH:MM as ``daily at`` writes it
    ("monthly", "monthly on 1 at 00:00"),
    ("every month on LAST, 15TH,1st at 9:00", "monthly on 1,15,last at 09:00"),
    ("monthly on 31st,last at 18:30:15", "monthly on 31,last at 18:30:15"),
    ("monthly on 5 until 2025-12-31", "monthly on 5 at 00:00 until 2026-01-01T02:59:59.999000+00:00"),
    # ranges of weekdays as the list of days; a window as its interval, times and days
    ("weekly on fri-mon at 9:00", "weekly on monday,friday,saturday,sunday at 09:00"),
    ("every 15 minutes between 8:00 and 18:00 on mon-fri",
     "every 15 minutes between 08:00 and 18:00 on monday,tuesday,wednesday,thursday,friday"),
    ("every 3600 seconds between 08:00:30 and 8:00", "every hour between 08:00:30 and 08:00"),
    ("every 1 minute between 00:00 and 12:00 on mon-sun", "every minute between 00:00 and 12:00"),
    # Rocketry's conditions as the rule that means each
    ("daily between 10:00 and 12:00", "daily at 10:00"),
    ("weekly between Mon and Fri", "weekly on monday at 00:00"),
    ("monthly starting 3rd", "monthly on 3 at 00:00"),
    ("hourly after 45:00", "45 * * * *"),
    ("hourly on 45:00", "45 * * * *"),
    ("weekly after Fri 10:00", "weekly on friday at 10:00"),
    ("monthly starting 1st 9:30", "monthly on 1 at 09:30"),
    ("daily on 10:00", "daily at 10:00"),
    ("secondly", "every second from 2025-06-21T17:03:07+00:00"),
    ("minutely after 30", "every minute from 2025-06-21T17:03:30+00:00"),
    ("secondly after 250", "every second from 2025-06-21T17:03:07.250000+00:00"),
    ("every 10 minutes & time of day between 08:00 and 18:00", "every 10 minutes between 08:00 and 18:00"),
    # the dates after 'except' ascending, comma-separated, after the bounds as instants
    ("every mon-fri at 9:00 EXCEPT 2026-01-01 , 2025-12-25",
     "weekly on monday,tuesday,wednesday,thursday,friday at 09:00 except 2025-12-25,2026-01-01"),
    ("daily between 10:00 and 12:00 until 2025-12-31 except 2025-12-25",
     "daily at 10:00 until 2026-01-01T02:59:59.999000+00:00 except 2025-12-25"),
    ("every 10 seconds except 2025-12-25", "every 10 seconds from 2025-06-21T17:03:07.250000+00:00 except 2025-12-25"),
    ("@daily except 2025-12-25", "0 0 * * * except 2025-12-25"),
])
def test_every_rule_has_one_canonical_spelling(expression: str, canonical: str) -> None:
    assert parse(expression).expression == canonical
    assert parse(canonical) == parse(expression)


def test_the_default_zone_is_the_callers_and_wall_times_follow_it() -> None:
    assert parse("once @ 2025-01-15 09:00", NY) == OnceTrigger(datetime(2025, 1, 15, 14, 0, tzinfo=UTC))
    assert parse("daily at 09:00", NY) == CalendarTrigger(time(9, 0), NY)
    # hourly follows the local hour: Kolkata is UTC+05:30, so its hours start at :30 UTC.
    assert parse("hourly", "Asia/Kolkata") == IntervalTrigger(
        timedelta(hours=1), datetime(2025, 6, 21, 16, 30, tzinfo=UTC))


def test_once_in_a_dst_gap_is_refused_and_in_a_fold_takes_the_first_pass() -> None:
    with pytest.raises(ValidationError) as error:
        parse("once @ 2024-03-10 02:30", NY)
    assert error.value.field == "schedule"
    assert "2024-03-10 02:30:00 does not exist in America/New_York" in error.value.message
    with pytest.raises(ValidationError, match="2018-11-04 00:15:00 does not exist in America/Sao_Paulo"):
        parse("once @ 2018-11-04 00:15", SP)
    assert parse("once @ 2024-11-03 01:30", NY) == OnceTrigger(datetime(2024, 11, 3, 5, 30, tzinfo=UTC))  # EDT
    assert parse("once @ 2019-02-16 23:30", SP) == OnceTrigger(datetime(2019, 2, 17, 1, 30, tzinfo=UTC))  # -02


def test_until_a_date_means_through_that_local_date_across_dst() -> None:
    """The end of a date is the last millisecond before the next date starts, there: São Paulo
    skipped 2018-11-04 00:00-01:00, so 2018-11-03 ended at 01:00 -02 (03:00 UTC); a wall-time end
    in a gap is refused, one in a fold takes the first pass (as ``once @``)."""
    assert parse("daily at 23:30 until 2018-11-03").until == datetime(2018, 11, 4, 2, 59, 59, 999000, tzinfo=UTC)
    assert parse("daily until 2024-03-10", NY).until == datetime(2024, 3, 11, 3, 59, 59, 999000, tzinfo=UTC)  # EDT
    with pytest.raises(ValidationError, match="2024-03-10 02:30:00 does not exist in America/New_York"):
        parse("hourly until 2024-03-10 02:30", NY)
    assert parse("hourly until 2024-11-03 01:30", NY).until == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # EDT


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("", SP, "accepted forms: once @ YYYY-MM-DD HH:MM[:SS]"),
        ("daily until", SP, "unknown schedule expression"),
        ("daily until tomorrow", SP, "the end after 'until' needs a date (YYYY-MM-DD) or a date and a time"),
        ("daily until 2025-13-01 10:00", SP, "the end after 'until' is not an ISO-8601 date-time: '2025-13-01 10:00'"),
        ("daily until 2025-02-30", SP, "the date after 'until' is not a date: '2025-02-30'"),
        ("daily until 9999-12-31", SP, "out of range"),
        ("once @ 2025-07-01 10:00 until 2025-08-01", SP, "'from' and 'until' bound a recurring rule"),
        ("daily until 2025-08-01 until 2025-09-01", SP, "a rule takes one 'from' and one 'until'"),
        ("daily from 2025-08-01 from 2025-09-01", SP, "a rule takes one 'from' and one 'until'"),
        ("hourly from 2025-08-01", SP, "an interval starts at its anchor: write 'every <n> <unit> from"),
        ("daily from soon", SP, "the start after 'from' needs a date (YYYY-MM-DD) or a date and a time"),
        ("daily from 2025-02-30", SP, "the date after 'from' is not a date"),
        ("daily at 09:00 until 20251231", SP, "the end after 'until' needs a date (YYYY-MM-DD) or a date and a time"),
        ("daily from 2025-W53", SP, "the start after 'from' needs a date (YYYY-MM-DD) or a date and a time"),
        ("daily until 2025-12-31 18", SP, "needs a date (YYYY-MM-DD) or a date and a time of day"),
        ("whenever until 2025-08-01", SP, "unknown schedule expression 'whenever'"),
        ("whenever you like", SP, "unknown schedule expression 'whenever you like'"),
        ("every 5 fortnights", SP, "daily at HH:MM[:SS]"),
        ("weekly on funday at 09:00", SP, "weekly on <weekday>[,<weekday>...] [at HH:MM[:SS]] (a weekday or a range"),
        ("weekly on mon-funday", SP, "unknown schedule expression 'weekly on mon-funday'"),
        # a repetition in a window of the day
        ("every 15 minutes between 8 and 18", SP, "'every 15 minutes between 8 and 18': a repetition in a window of "
                                                  "the day is 'every <n> seconds|minutes|hours between HH:MM[:SS] and"),
        ("every 15 minutes between 08:00 and 18:00 on weekdays", SP, "a repetition in a window of the day is"),
        ("every 2 days between 08:00 and 18:00", SP, "a window opens once a day, and repeats within it every so many "
                                                     "seconds, minutes or hours"),
        ("every week between 08:00 and 18:00", SP, "once a day is 'daily at HH:MM[:SS]'"),
        ("every 24 hours between 08:00 and 18:00", SP, "the interval in a window must be shorter than a day"),
        ("every 0 minutes between 08:00 and 18:00", SP, "a whole number of seconds, at least 1"),
        ("every 9999 hours between 08:00 and 18:00", SP, "shorter than a day"),
        ("every 99999999999999999999 hours between 08:00 and 18:00", SP, "too long"),
        ("every 15 minutes between 08:00 and 08:00", SP, "the window opens and closes at 08:00"),
        ("every 15 minutes between 24:00 and 08:00", SP, "invalid time of day '24:00'"),
        ("every 15 minutes between 08:00 and 18:00 from 2025-06-21T17:00:00Z until 2025-06-01", SP,
         "starts ('from', 2025-06-21T17:00:00.000Z) after it ends"),
        # Rocketry's conditions: the other bound is checked too; those with no instant meaning say why
        ("daily between 10:00 and 25:00", SP, "invalid time of day '25:00'"),
        ("daily before 9:60", SP, "invalid time of day '9:60'"),
        ("weekly between mon and funday", SP, "unknown schedule expression 'weekly between mon and funday'"),
        ("monthly between 1st and 32nd", SP, "the day '32nd' is outside 1 to 31"),
        ("monthly starting 2st", SP, "'2st' is not an ordinal: write 2 or 2nd"),
        ("hourly after 45:30", SP, "'hourly' at '45:30' of each hour: a rule here runs on a minute of the hour (MM:00)"),
        ("hourly between 15:00 and 60:00", SP, "invalid time of the hour '60:00' (expected MM:SS, 00:00 to 59:59)"),
        ("after task 'fetch'", SP, "\"after task 'fetch'\" is a Rocketry condition on the state of tasks or of the "
                                   "scheduler: here a schedule runs at the times of its rule alone"),
        ("after tasks 'a', 'b' succeeded", SP, "the first one's status webhook (callback_url)"),
        ("has failed today", SP, "is a Rocketry condition on the state of tasks"),
        ("task 'x' has succeeded this hour", SP, "is a Rocketry condition on the state of tasks"),
        ("while task 'x' is running", SP, "is a Rocketry condition on the state of tasks"),
        ("scheduler has more than 3 cycles", SP, "is a Rocketry condition on the state of tasks"),
        ("true", SP, "'true' is a Rocketry condition"),
        ("time of day between 08:00 and 18:00", SP, "'time of day between 08:00 and 18:00' alone is true all through "
                                                     "its window (Rocketry runs the task on every cycle"),
        ("time of week on Monday", SP, "alone is true all through its window"),
        ("daily & time of week between Mon and Fri", SP, "'daily & time of week between Mon and Fri': of Rocketry's "
                                                         "combinations ('&', '|', '~') a rule here takes only a "
                                                         "repetition in a window"),
        ("daily at 10:00 | daily at 19:00", SP, "for one rule or another ('|') create a schedule for each"),
        ("every 10 minutes & time of day between 08:00 and 18:00 | true", SP, "of Rocketry's combinations"),
        ("~true", SP, "of Rocketry's combinations"),
        ("every 10 minutes & every 5 minutes & time of day between 08:00 and 18:00", SP, "of Rocketry's combinations"),
        ("every 10 minutes & time of day between 08:00 and 18:00 & time of day between 09:00 and 10:00", SP,
         "of Rocketry's combinations"),
        ("every 10 minutes & time of day between 08:00 and 18:00 & true", SP, "of Rocketry's combinations"),
        ("every day & time of day between 08:00 and 18:00", SP, "of Rocketry's combinations"),
        ("every 10 minutes & time of day between 8 and 18", SP, "of Rocketry's combinations"),
        ("every 10 minutes & time of day between 08:00 and 25:00", SP, "invalid time of day '25:00'"),
        ("every 0 minutes", SP, "at least 1 second"),
        # Rocketry's durations: a whole number of seconds, at least one, the sum not too long
        ("every 500 ms", SP, "the interval '500 ms' is 0.5 seconds: an interval is a whole number of seconds"),
        ("every 1 s 1.5 s", SP, "the interval '1 s 1.5 s' is 2.5 seconds: an interval is a whole number of seconds"),
        ("every 0 h 0 min", SP, "at least 1 second"),
        ("every 99999999999 d 1 h", SP, "the interval '99999999999 d 1 h' is too long"),
        ("every 999999999 days 24 hours", SP, "too long"),  # each term fits, not their sum
        ("every 1:75:00", SP, "invalid duration '1:75:00' in the interval '1:75:00' (expected H:MM:SS, its minutes "
                              "and seconds 00 to 59)"),
        ("every 1h 0:00:60", SP, "invalid duration '0:00:60'"),
        ("every 10", SP, "unknown schedule expression 'every 10'"),  # a number needs its unit
        ("every -5 s", SP, "unknown schedule expression"),
        ("every 2 months 1 day", SP, "there is no 'every <n> months'"),
        ("every 1 day 2 h between 08:00 and 18:00", SP, "a window opens once a day, and repeats within it"),
        ("every 12 h 12 h between 08:00 and 18:00", SP, "the interval in a window must be shorter than a day"),
        ("every 2 days & time of day between 08:00 and 18:00", SP, "a window opens once a day"),
        # minutely's and secondly's bounds, both checked
        ("minutely after 60", SP, "invalid second of the minute '60' (expected SS[.fff], 00 to 59.999: a rule runs to "
                                  "the millisecond)"),
        ("minutely between 15 and 75", SP, "invalid second of the minute '75'"),
        ("minutely before 100", SP, "invalid second of the minute '100'"),
        ("minutely on 30.0001", SP, "invalid second of the minute '30.0001'"),
        ("secondly after 1000", SP, "invalid millisecond of the second '1000' (expected 0 to 999, whole: a rule runs "
                                    "to the millisecond)"),
        ("secondly between 100 and 5.5", SP, "invalid millisecond of the second '5.5'"),
        ("minutely after 30 from 2025-08-01", SP, "an interval starts at its anchor"),
        ("minutely after half", SP, "unknown schedule expression 'minutely after half'"),
        ("daily on 25:00", SP, "invalid time of day '25:00'"),
        ("weekly after Fri 25:00", SP, "invalid time of day '25:00'"),
        ("weekly between Mon 09:00 and Fri 24:00", SP, "invalid time of day '24:00'"),
        ("monthly between 1st 09:00 and 32nd 10:00", SP, "the day '32nd' is outside 1 to 31"),
        ("hourly on 15:30", SP, "'hourly' at '15:30' of each hour: a rule here runs on a minute of the hour"),
        ("every 99999999999 days", SP, "too long"),
        ("every 99999999999999999999 days", SP, "too long"),  # not "unknown": a number too big
        ("daily at 24:00", SP, "invalid time of day '24:00'"),
        ("daily at 09:60", SP, "invalid time of day '09:60'"),
        ("every 5 minutes from 2025-06-21 17:00", SP, "needs an offset or Z"),
        ("every 5 minutes from yesterday", SP, "is not an ISO-8601 date-time: 'yesterday'"),
        ("once @ tomorrow", SP, "needs a date and a time of day"),
        ("once @ 2025-06-21", SP, "needs a date and a time of day"),
        ("once @ 2025-13-01 10:00", SP, "is not an ISO-8601 date-time"),
        # A date with an offset, which Python's reader takes for a date and a time of day (03:00).
        ("once @ 2025-06-21-03:00", SP, "the date-time after 'once @' is not an ISO-8601 date-time: '2025-06-21-03:00'"),
        ("daily until 2025-08-01+05:45", SP, "the end after 'until' is not an ISO-8601 date-time: '2025-08-01+05:45'"),
        ("daily from 2025-08-01-03:00", SP, "the start after 'from' is not an ISO-8601 date-time"),
        ("every 5 minutes from 2025-06-21+03:00", SP, "the anchor after 'from' is not an ISO-8601 date-time"),
        ("once @ 2025-06-21x10:00", SP, "is not an ISO-8601 date-time: '2025-06-21x10:00'"),
        ("cron 61 * * * *", SP, "invalid cron expression '61 * * * *': bad minute field '61' (it takes 0-59;"),
        # monthly rules: the days, each once, each a day of the month
        ("monthly on", SP, "a monthly rule needs its days after 'on': a comma list of days of the month, each 1 to 31 "
                           "(or 1st, 2nd, 3rd ... 31st) or last"),
        ("every month on at 09:00", SP, "a monthly rule needs its days after 'on'"),
        ("monthly on 0", SP, "the day '0' is outside 1 to 31: a monthly rule takes a comma list of days of the month"),
        ("monthly on 32nd at 09:00", SP, "the day '32nd' is outside 1 to 31"),
        ("monthly on 1,999999999999999999999", SP, "the day '999999999999999999999' is outside 1 to 31"),
        ("monthly on 1,15,1st", SP, "the day '1st' is named twice in '1,15,1st' (as '1' first): a monthly rule takes"),
        ("monthly on last,LAST", SP, "the day 'LAST' is named twice"),
        ("monthly on 2st", SP, "'2st' is not an ordinal: write 2 or 2nd"),
        ("monthly on 11st", SP, "'11st' is not an ordinal: write 11 or 11th"),
        ("monthly on 23th", SP, "'23th' is not an ordinal: write 23 or 23rd"),
        ("monthly on first", SP, "'first' is not a day of the month in the days 'first': a monthly rule takes a comma"),
        ("monthly on 1,,15", SP, "an empty day in the days '1,,15'"),
        ("monthly on 1,", SP, "an empty day in the days '1,'"),
        ("monthly on 1 15", SP, "'1 15' is not a day of the month"),
        ("monthly on -1", SP, "'-1' is not a day of the month"),
        ("monthly on mon", SP, "'mon' is not a day of the month"),
        ("monthly on 1 at 9", SP, "invalid time of day '9' after 'at' (expected HH:MM[:SS]"),
        ("monthly on 1 at", SP, "'at' needs a time of day (expected HH:MM[:SS]"),
        ("monthly on 1 at 24:00", SP, "invalid time of day '24:00'"),
        ("monthly at 09:00", SP, "a monthly rule is 'monthly' (the 1st at 00:00) or 'monthly on <days> [at HH:MM[:SS]]'"),
        ("monthly 1st", SP, "a monthly rule is 'monthly'"),
        ("every month", SP, "there is no 'every <n> months'"),
        ("every 2 months", SP, "there is no 'every <n> months'"),
        ("every month from 2025-07-01", SP, "there is no 'every <n> months'"),
        ("every 0 weeks", SP, "at least 1 second"),
        ("every 99999999999 weeks", SP, "too long"),
        # A day none of the rule's months has: well formed, but it never fires (cronsim: "Bad day-of-month").
        ("cron 0 0 31 2 *", SP, "cron expression '0 0 31 2 *' never fires: none of its months (2) has a day 31"),
        ("0 0 30 2 *", SP, "never fires: none of its months (2) has a day 30"),
        ("cron(0 0 31 4,6,9,11 *)", SP, "never fires: none of its months (4,6,9,11) has a day 31"),
        ("cron 0 0 30,31 feb *", SP, "never fires: none of its months (FEB) has a day 30,31"),
        ("cron 0 0 31 2 */2", SP, "never fires"),  # a day-of-week from '*' still narrows the days (AND)
        # A day-of-month that is no day of any month is malformed, and says what the field takes.
        ("cron 0 0 32 * *", SP, "invalid cron expression '0 0 32 * *': bad day-of-month field '32' (it takes 1-31"),
        ("cron 0 0 32 2 *", SP, "bad day-of-month field '32'"),
        ("cron 0 0 0 * *", SP, "bad day-of-month field '0'"),
        ("cron 0 0 x * *", SP, "bad day-of-month field 'X'"),
        ("cron 0 0 * * 8", SP, "bad day-of-week field '8' (it takes 0-7 or SUN-SAT"),
        ("cron 0 9 * *", SP, "five fields"),
        ("cron(0 9 * * * *)", SP, "five fields"),
        ("@reboot", SP, "'@reboot' is not a cron shorthand this service takes: @yearly, @annually, @monthly"),
        ("cron @Fortnightly", SP, "'@Fortnightly' is not a cron shorthand"),
        ("@daily at 09:00", SP, "'@daily at 09:00' is not a cron shorthand"),
        ("daily", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("daily", "", "a time zone name is required"),
        # What is quoted is what was written, not a lowered copy of it.
        ("once @ 20270101T100000Z", SP, "got '20270101T100000Z'"),
        ("Daily at 09:00 UNTIL 2026-12-31T18:00:00+25:00", SP, "ISO-8601 date-time: '2026-12-31T18:00:00+25:00'"),
        # 'except': dates that exist, each once, after a recurring rule and its bounds
        ("daily except", SP, "'except' needs the dates to skip: a comma list of dates YYYY-MM-DD, each once "
                             "(2026-12-25,2027-01-01)"),
        ("daily except ,", SP, "an empty date in the dates ',' after 'except'"),
        ("daily except 2025-12-25,", SP, "an empty date in the dates '2025-12-25,' after 'except'"),
        ("daily except 2025-12-25,,2026-01-01", SP, "an empty date in the dates '2025-12-25,,2026-01-01'"),
        ("daily except 2025-02-30", SP, "the date '2025-02-30' after 'except' does not exist (day is out of range for "
                                        "month)"),
        ("daily except 2025-13-01", SP, "the date '2025-13-01' after 'except' does not exist"),
        ("daily except 0000-01-01", SP, "the date '0000-01-01' after 'except' does not exist"),
        ("daily except 20251225", SP, "'20251225' after 'except' is not a date YYYY-MM-DD: 'except' takes a comma list"),
        ("daily except 2025-W52-4", SP, "'2025-W52-4' after 'except' is not a date YYYY-MM-DD"),
        ("daily except 2025-12-25 09:00", SP, "'2025-12-25 09:00' after 'except' is not a date YYYY-MM-DD"),
        ("daily except christmas", SP, "'christmas' after 'except' is not a date YYYY-MM-DD"),
        ("daily except 2025-12-25,2026-01-01,2025-12-25", SP, "the date '2025-12-25' is named twice in "
                                                              "'2025-12-25,2026-01-01,2025-12-25' after 'except'"),
        ("daily except 2025-12-25 except 2026-01-01", SP, "a rule takes one 'except': name every date to skip in its "
                                                          "list"),
        ("daily except 2025-12-25 until 2026-06-30", SP, "'except' comes last, after 'from' and 'until'"),
        ("daily except 2025-12-25 from 2025-07-01", SP, "'except' comes last, after 'from' and 'until'"),
        ("once @ 2025-12-24 10:00 except 2025-12-25", SP, "'except' skips dates of a recurring rule; a one-off "
                                                          "('once @') runs on its one date anyway"),
        ("once @ 2025-12-24T10:00:00Z except 2025-12-25", SP, "'except' skips dates of a recurring rule"),
        ("whenever except 2025-12-25", SP, "unknown schedule expression 'whenever'"),
        ("except 2025-12-25", SP, "unknown schedule expression 'except 2025-12-25'"),
    ],
)
def test_bad_input_is_a_readable_validation_error(expression: str, zone: str, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse(expression, zone)
    assert message in error.value.message
    assert error.value.field == ("timezone" if "zone" in message else "schedule")


def test_a_day_only_some_of_a_rule_s_months_have_or_a_day_with_a_weekday_fires() -> None:
    """Only a day none of its months has is refused: cron matches a named day-of-week instead
    (OR), and February has a 29th in leap years."""
    after = datetime(2026, 1, 1, tzinfo=UTC)
    fired = {rule: parse(rule).next_fire_time(after) for rule in (
        "cron 0 0 31 2 mon", "cron 0 0 29 2 *", "cron 0 0 31 */2 *", "cron 0 0 30,31 2,3 *")}
    assert {rule: at.astimezone(ZoneInfo(SP)).date() if at else None for rule, at in fired.items()} == {
        "cron 0 0 31 2 mon": date(2026, 2, 2), "cron 0 0 29 2 *": date(2028, 2, 29),
        "cron 0 0 31 */2 *": date(2026, 1, 31), "cron 0 0 30,31 2,3 *": date(2026, 3, 30)}


def test_intervals_need_an_anchor_and_cron_needs_an_evaluator() -> None:
    for expression in ("every 5 minutes", "hourly", "minutely", "secondly", "minutely after 30", "every 1h 30min"):
        with pytest.raises(ValidationError, match="needs an anchor: add 'from <ISO-8601"):
            parse_trigger(expression, SP)
    with pytest.raises(ValidationError, match="a date-time needs an offset"):
        parse_trigger("every 5 minutes", SP, now=datetime(2025, 1, 1))  # naive now
    assert parse_trigger("every 5 minutes from 2025-06-21T17:00:00Z", SP) == IntervalTrigger(
        timedelta(minutes=5), ANCHOR)
    for expression in ("cron 0 9 * * *", "cron(0 9 * * *)", "0 9 * * *"):
        with pytest.raises(ValidationError) as error:
            parse_trigger(expression, SP)
        assert error.value.message == "cron expressions need a cron evaluator"
        assert error.value.field == "schedule"
    assert parse_trigger("daily at 09:00", SP) == daily(time(9, 0))  # the rest needs neither


# ---------------------------------------------------------------- properties

ZONES = st.sampled_from([SP, NY, "Europe/Lisbon", "UTC", "Asia/Kolkata", "Australia/Lord_Howe"])
INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC))
TIMES = st.times().map(lambda t: t.replace(microsecond=0))
DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
WEEKDAYS = st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1))
MONTH_DAYS = st.frozensets(st.one_of(st.integers(1, 31), st.just(LAST_DAY)), min_size=1)
CRON_FIELDS = st.tuples(
    st.sampled_from(["*", "0", "*/5", "15,45", "0-30/10", "59"]),
    st.sampled_from(["*", "9", "*/2", "8-18", "0,12", "23"]),
    st.sampled_from(["*", "1", "L", "1-15", "10,20"]),
    st.sampled_from(["*", "1", "JAN-JUN", "*/3", "12"]),
    st.sampled_from(["*", "MON-FRI", "0", "1,3,5", "SAT#2", "5L"]),
).map(" ".join)


@st.composite
def triggers(draw: st.DrawFn) -> tuple[Trigger, str]:
    zone = draw(ZONES)
    kind = draw(st.sampled_from(["once", "interval", "calendar", "monthly", "window", "cron"]))
    if kind == "once":
        return OnceTrigger(draw(INSTANTS)), zone
    if kind == "interval":
        every = timedelta(seconds=draw(st.one_of(st.integers(1, 10**8), st.sampled_from([60, 3600, 86400, 604800]))))
        return IntervalTrigger(every, draw(INSTANTS)), zone
    if kind == "calendar":
        trigger: Trigger = CalendarTrigger(draw(TIMES), zone, draw(WEEKDAYS))
    elif kind == "monthly":
        trigger = CalendarTrigger(draw(TIMES), zone, month_days=draw(MONTH_DAYS))
    elif kind == "window":
        start = draw(TIMES)
        end = draw(TIMES.filter(lambda end: end != start))
        trigger = WindowTrigger(timedelta(seconds=draw(st.integers(1, 86399))), start, end, zone, draw(WEEKDAYS))
    else:
        trigger = CronTrigger(draw(CRON_FIELDS), zone, EVALUATOR)
    bounds = draw(st.sampled_from(["", "until", "from", "from until"]))
    if bounds:  # starting and ending (a start after the end is refused: the later one ends)
        start, until = sorted([draw(INSTANTS), draw(INSTANTS)])
        until += timedelta(milliseconds=1)  # the start rounded up, the end cut down: still in order
        trigger = BoundedTrigger(trigger, until=until if "until" in bounds else None,
                                 start=start if "from" in bounds else None)
    if draw(st.booleans()):  # and skipping some dates
        trigger = ExceptedTrigger(trigger, draw(st.frozensets(DATES, min_size=1, max_size=6)), zone)
    return trigger, zone


@PROPS
@given(case=triggers(), after=INSTANTS)
def test_canonical_expressions_parse_back_to_an_equal_trigger(case: tuple[Trigger, str], after: datetime) -> None:
    trigger, zone = case
    parsed = parse_trigger(trigger.expression, zone, EVALUATOR)  # no ``now``: the anchor is in the text
    assert parsed == trigger
    assert parsed.expression == trigger.expression
    assert parsed.next_fire_time(after) == trigger.next_fire_time(after)


ACCEPTED = [
    "once @ 2025-06-21 14:00", "once @ 2025-06-21T17:00:00Z", "every 10 minutes", "every hour",
    "every 2 days from 2025-06-21T17:00:00+00:00", "hourly", "minutely", "daily", "weekly",
    "daily at 09:30", "every day at 09:30:15", "weekly on mon,fri at 18:00", "every sunday at 10:00",
    "cron 0 9 * * mon-fri", "cron(*/15 * * * *)", "0 0 l * *",
    "daily at 09:30 until 2025-12-31", "every 10 minutes until 2025-07-01T00:00:00Z",
    "cron 0 9 * * mon-fri until 2025-09-01 18:00", "daily at 10:00 from 2025-07-01 until 2025-07-31",
    "every friday from 2025-07-04T12:00:00Z", "monthly", "monthly on 1st,15,last at 09:00",
    "every month on 31st at 18:00:30", "monthly on last until 2025-12-31", "every 2 weeks", "every week",
    "weekly on mon-fri at 09:00", "every 15 minutes between 08:00 and 18:00 on mon-fri",
    "every hour between 22:00 and 06:00 until 2025-12-31", "daily between 10:00 and 12:00", "weekly after friday",
    "monthly starting 3rd", "hourly before 45:00", "secondly", "minutely after 30.5", "secondly between 100 and 900",
    "every 2 days 2 hours", "every 1h 30min", "every 1d, 12:00:00", "daily on 10:00", "hourly on 15:00",
    "every 10 minutes & time of day between 08:00 and 18:00 & time of week between mon and fri",
    "weekly on mon-fri at 09:00 except 2025-12-25,2026-01-01", "daily until 2025-12-31 except 2025-12-25",
    "every 15 minutes between 08:00 and 18:00 on mon-fri from 2025-07-01 except 2025-12-25",
]


@PROPS
@given(expression=st.sampled_from(ACCEPTED), data=st.data())
def test_case_and_extra_spaces_do_not_matter(expression: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(expression), max_size=len(expression)))
    shouted = "".join(c.upper() if flip else c.lower() for c, flip in zip(expression, flips, strict=True))
    spaced = " ".join(shouted.split(" "))
    padding = data.draw(st.sampled_from(["", " ", "  ", "\t"]))
    widened = padding + spaced.replace(" ", data.draw(st.sampled_from([" ", "  ", " \t "]))) + padding
    assert parse(widened) == parse(expression)


@PROPS
@given(text=st.text(max_size=40))
def test_arbitrary_text_parses_or_is_a_validation_error(text: str) -> None:
    try:
        trigger = parse(text)
    except ValidationError as error:
        assert error.field == "schedule"
    else:
        assert parse(trigger.expression) == trigger


@pytest.mark.parametrize("name", ["localtime", "Factory", "posixrules", "posix/America/Sao_Paulo", "right/UTC"])
def test_a_request_must_name_an_iana_zone_a_stored_schedule_is_read_as_stored(name: str) -> None:
    """tz database files that are no IANA zone: the host's own zone (``localtime``) would make one
    request mean different instants on different replicas. Refused in requests; a schedule an
    earlier version stored with one still loads (its trigger is parsed again when read)."""
    with pytest.raises(ValidationError, match="is not an IANA time zone") as error:
        iana_zone(name)
    assert error.value.field == "timezone"
    assert parse("daily at 09:00", name).next_fire_time(NOW) is not None
