"""Properties of a rule that skips listed dates (``weekly on mon-fri at 09:00 except 2026-12-25``):
it fires when its rule fires, but never at an instant whose local date is listed, and skips
nothing else; in zones whose clocks move at midnight (America/Sao_Paulo before 2019,
America/Santiago), by half an hour (Australia/Lord_Howe), skip a whole date (Pacific/Apia's
2011-12-30) or go back across midnight (America/St_Johns until 2010: 00:01 back to 23:01).

The oracle is naive: the rule's own occurrences, stepped one at a time, those on a listed date left
out; it shares no code with the trigger's jump past a listed date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.errors import ValidationError
from cronjob.domain.excepted import ExceptedTrigger
from cronjob.domain.recurring import LAST_DAY, CalendarTrigger, CronTrigger, IntervalTrigger
from cronjob.domain.trigger import OnceTrigger, Trigger
from cronjob.domain.window import WindowTrigger
from tests.unit.test_monthly_properties import PROPS, TIMES
from tests.unit.test_triggers_properties import (
    CRON_EXPRESSIONS,
    EVALUATOR,
    check_common,
    check_latest_fire_time,
    instants,
    local,
)

ZONES = ("America/Sao_Paulo", "America/Santiago", "Australia/Lord_Howe", "Pacific/Apia", "America/St_Johns",
         "America/New_York", "Europe/Lisbon", "Pacific/Chatham", "Asia/Kolkata", "UTC")
WEEKDAYS = st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1, max_size=6))
#: At least a minute apart, so that the oracle walks at most a few thousand occurrences a listed date.
EVERY = st.one_of(st.integers(60, 3 * 86400), st.sampled_from([60, 600, 1800, 3600, 86400])).map(
    lambda seconds: timedelta(seconds=seconds))
ANY_TIME = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC))
STEPS = 20_000


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def oracle_next(rule: Trigger, dates: frozenset[date], zone: str, after: datetime) -> datetime | None:
    """The rule's first occurrence after ``after`` whose local date is not listed, by stepping."""
    fire = rule.next_fire_time(after)
    for _ in range(STEPS):
        if fire is None or local(fire, zone).date() not in dates:
            return fire
        fire = rule.next_fire_time(fire)
    raise AssertionError("the oracle walked too far")  # pragma: no cover


@st.composite
def recurring_rules(draw: st.DrawFn, zone: str) -> Trigger:
    """Any recurring rule in ``zone``, often bounded by ``from`` and ``until``."""
    kind = draw(st.sampled_from(["interval", "calendar", "monthly", "window", "cron"]), label="kind")
    if kind == "interval":
        return IntervalTrigger(draw(EVERY, label="every"), draw(ANY_TIME, label="anchor"))
    rule: Trigger
    if kind == "calendar":
        rule = CalendarTrigger(draw(TIMES, label="at"), zone, draw(WEEKDAYS, label="weekdays"))
    elif kind == "monthly":
        days = st.frozensets(st.one_of(st.integers(1, 31), st.just(LAST_DAY)), min_size=1, max_size=4)
        rule = CalendarTrigger(draw(TIMES, label="at"), zone, month_days=draw(days, label="days of the month"))
    elif kind == "window":
        start = draw(TIMES, label="start")
        rule = WindowTrigger(draw(EVERY.filter(lambda every: every < timedelta(days=1)), label="every"), start,
                             draw(TIMES.filter(lambda end: end != start), label="end"), zone,
                             draw(WEEKDAYS, label="weekdays"))
    else:
        rule = CronTrigger(draw(CRON_EXPRESSIONS, label="expression"), zone, EVALUATOR)
    if draw(st.booleans(), label="bounded"):
        start, until = sorted([draw(ANY_TIME, label="from"), draw(ANY_TIME, label="until")])
        rule = BoundedTrigger(rule, start=start, until=until + timedelta(milliseconds=1))
    return rule


@st.composite
def excepted_case(draw: st.DrawFn) -> tuple[ExceptedTrigger, datetime]:
    """A rule skipping dates, and an ``after`` (often near one of the zone's changes of offset).
    The dates are mostly those of the rule's next occurrences, runs of them often (a holiday
    week), and now and then another date nearby or one the zone skipped."""
    zone = draw(st.sampled_from(ZONES), label="zone")
    rule = draw(recurring_rules(zone), label="rule")
    after = draw(instants(zone), label="after")
    upcoming: list[date] = []
    fire: datetime | None = after
    for _ in range(12):
        fire = rule.next_fire_time(fire)  # type: ignore[arg-type]
        if fire is None:
            break
        upcoming.append(local(fire, zone).date())
    start = local(after, zone).date()
    dates = set(draw(st.lists(st.sampled_from(upcoming), max_size=8), label="occurrences' dates")) if upcoming else set()
    if upcoming and draw(st.booleans(), label="a run of dates"):
        first = draw(st.sampled_from(upcoming), label="run from")
        dates.update(first + timedelta(days=offset) for offset in range(draw(st.integers(1, 4), label="run of")))
    dates.update(start + timedelta(days=offset)
                 for offset in draw(st.lists(st.integers(-2, 10), max_size=3), label="other dates"))
    if zone == "Pacific/Apia" and draw(st.booleans(), label="the skipped date"):
        dates.add(date(2011, 12, 30))
    return ExceptedTrigger(rule, frozenset(dates or {start}), zone), after


@PROPS
@given(case=excepted_case(), data=st.data())
def test_it_fires_as_its_rule_does_but_never_on_a_listed_local_date(
        case: tuple[ExceptedTrigger, datetime], data: st.DataObject) -> None:
    trigger, after = case
    current: datetime | None = after
    for _ in range(8):  # step by step, as the engine does: the oracle's walk every time
        expected = oracle_next(trigger.rule, trigger.dates, trigger.zone, current)  # type: ignore[arg-type]
        assert trigger.next_fire_time(current) == expected, current  # type: ignore[arg-type]
        if expected is None:
            break
        assert local(expected, trigger.zone).date() not in trigger.dates
        current = expected
    fires = [trigger.next_fire_time(after)]
    while len(fires) < 7 and fires[-1] is not None:
        fires.append(trigger.next_fire_time(fires[-1]))
    if fires[-1] is not None:  # (a bounded rule may end before its seventh)
        check_common(trigger, after, data)


@PROPS
@given(case=excepted_case(), span=st.integers(0, 30 * 86400 * 1000))
def test_coalescing_finds_the_latest_occurrence_on_a_date_not_listed(
        case: tuple[ExceptedTrigger, datetime], span: int) -> None:
    """What a late run coalesces to: the last fire time in (after, until], as stepping finds it."""
    trigger, after = case
    check_latest_fire_time(trigger, after, after + timedelta(milliseconds=span), 3000)


@dataclass
class Counting(Trigger):
    """A rule that counts how often it is asked for its next fire time."""

    rule: Trigger
    asked: list[datetime] = field(default_factory=list)

    @property
    def expression(self) -> str:
        return self.rule.expression

    @property
    def recurring(self) -> bool:
        return True

    def next_fire_time(self, after: datetime) -> datetime | None:
        self.asked.append(after)
        return self.rule.next_fire_time(after)


def test_a_listed_date_is_passed_in_one_question_to_the_rule_not_one_per_occurrence() -> None:
    """``every 10 seconds except 2026-12-25``: 8,640 occurrences on Christmas, none stepped
    through; a week of listed dates costs a question each, and one more."""
    sao_paulo = "America/Sao_Paulo"
    christmas_eve_end = utc(2026, 12, 25, 2, 59, 55)  # 23:59:55 local
    rule = Counting(IntervalTrigger(timedelta(seconds=10), utc(2026, 1, 1)))
    trigger = ExceptedTrigger(rule, frozenset({date(2026, 12, 25)}), sao_paulo)
    assert trigger.next_fire_time(christmas_eve_end) == utc(2026, 12, 26, 3)  # 2026-12-26 00:00 local
    assert len(rule.asked) == 2
    holidays = frozenset(date(2026, 12, 21) + timedelta(days=offset) for offset in range(12))  # 103,680 occurrences
    rule.asked.clear()
    assert ExceptedTrigger(rule, holidays, sao_paulo).next_fire_time(utc(2026, 12, 21, 2, 59, 55)) == utc(2027, 1, 2, 3)
    assert len(rule.asked) == 13  # once from each listed date's start, and once from the one after


@pytest.mark.parametrize(("zone", "rule", "dates", "after", "expected_local"), [
    # São Paulo skipped 2018-11-04 00:00-01:00: the date after the listed one starts at 01:00.
    ("America/Sao_Paulo", "every hour", ["2018-11-03"], "2018-11-03T12:00:00-03:00", "2018-11-04T01:00:00-02:00"),
    # ... and 2019-02-16 23:00-23:59 came twice: both passes are on the listed date.
    ("America/Sao_Paulo", "every 30 minutes", ["2019-02-16"], "2019-02-16T22:30:00-02:00",
     "2019-02-17T00:00:00-03:00"),
    # Santiago jumps from 24:00 to 01:00 on 2026-09-06.
    ("America/Santiago", "every hour", ["2026-09-05"], "2026-09-05T10:00:00-04:00", "2026-09-06T01:00:00-03:00"),
    ("America/Santiago", "daily at 00:00", ["2026-09-05"], "2026-09-04T12:00:00-04:00",
     "2026-09-06T01:00:00-03:00"),
    # Apia skipped 2011-12-30 whole: the date after 2011-12-29 is 2011-12-31.
    ("Pacific/Apia", "daily at 09:00", ["2011-12-29"], "2011-12-28T12:00:00-10:00", "2011-12-31T09:00:00+14:00"),
    ("Pacific/Apia", "every hour", ["2011-12-29", "2011-12-30"], "2011-12-29T01:00:00-10:00",
     "2011-12-31T00:00:00+14:00"),
    # Lord Howe goes back half an hour at 02:00 (to 01:30): the listed date holds both passes.
    ("Australia/Lord_Howe", "every 30 minutes", ["2026-04-05"], "2026-04-04T23:30:00+11:00",
     "2026-04-06T00:00:00+10:30"),
    # St John's went back from Sunday 00:01 to Saturday 23:01: a Sunday's first minute, then
    # Saturday's last hour again; each occurrence is on the date its clock reads.
    ("America/St_Johns", "every 30 seconds", ["2010-11-07"], "2010-11-07T00:00:00-02:30",
     "2010-11-06T23:01:00-03:30"),
    ("America/St_Johns", "every 30 seconds", ["2010-11-06"], "2010-11-06T23:59:30-02:30",
     "2010-11-07T00:00:00-02:30"),
    ("America/St_Johns", "every 30 seconds", ["2010-11-06"], "2010-11-07T00:00:30-02:30",
     "2010-11-07T00:00:00-03:30"),
])
def test_a_listed_date_ends_where_its_clock_leaves_it(
        zone: str, rule: str, dates: list[str], after: str, expected_local: str) -> None:
    every = {"every hour": timedelta(hours=1), "every 30 minutes": timedelta(minutes=30),
             "every 30 seconds": timedelta(seconds=30)}
    inner: Trigger = (IntervalTrigger(every[rule], utc(2000, 1, 1)) if rule in every
                      else CalendarTrigger(time.fromisoformat(rule.split(" at ")[1]), zone))
    counted = Counting(inner)
    trigger = ExceptedTrigger(counted, frozenset(date.fromisoformat(day) for day in dates), zone)
    fire = trigger.next_fire_time(datetime.fromisoformat(after))
    assert fire is not None and fire.astimezone(ZoneInfo(zone)).isoformat() == expected_local
    assert len(counted.asked) <= len(dates) + 1  # a question per listed date, not per occurrence on it
    assert fire == oracle_next(inner, trigger.dates, zone, datetime.fromisoformat(after))


def test_it_skips_recurring_rules_once_with_dates_and_keeps_them_in_one_spelling() -> None:
    daily = CalendarTrigger(time(9, 0), "UTC")
    with pytest.raises(ValidationError, match=r"'except' skips dates of a recurring rule") as refused:
        ExceptedTrigger(OnceTrigger(utc(2030, 1, 1)), frozenset({date(2030, 1, 1)}), "UTC")
    assert refused.value.field == "schedule"
    once = ExceptedTrigger(daily, frozenset({date(2030, 1, 1)}), "UTC")
    with pytest.raises(ValidationError, match="a rule takes one 'except'"):
        ExceptedTrigger(once, frozenset({date(2030, 1, 2)}), "UTC")
    with pytest.raises(ValidationError, match="'from' and 'until' come before 'except'"):
        BoundedTrigger(once, until=utc(2030, 2, 1))
    with pytest.raises(ValidationError, match="needs at least one date"):
        ExceptedTrigger(daily, frozenset(), "UTC")
    with pytest.raises(ValidationError, match="are dates"):
        ExceptedTrigger(daily, frozenset({datetime(2030, 1, 1)}), "UTC")
    with pytest.raises(ValidationError) as unknown:
        ExceptedTrigger(daily, frozenset({date(2030, 1, 1)}), "Mars/Olympus_Mons")
    assert unknown.value.field == "timezone"
    assert ExceptedTrigger(daily, frozenset({date(2030, 1, 3), date(2029, 12, 25)}), "UTC").expression == (
        "daily at 09:00 except 2029-12-25,2030-01-03")
    assert once.recurring and once == ExceptedTrigger(daily, frozenset([date(2030, 1, 1)]), "UTC")
    assert once.next_fire_time(utc(2029, 12, 31, 9)) == utc(2030, 1, 2, 9)


def test_the_last_date_of_the_calendar_listed_ends_the_rule() -> None:
    trigger = ExceptedTrigger(CalendarTrigger(time(9, 0), "America/Sao_Paulo"), frozenset({date(9999, 12, 31)}),
                              "America/Sao_Paulo")
    assert trigger.next_fire_time(utc(9999, 12, 30, 12, 30)) is None
    hourly = ExceptedTrigger(IntervalTrigger(timedelta(hours=1), utc(2000, 1, 1)), frozenset({date(9999, 12, 31)}),
                             "UTC")
    assert hourly.next_fire_time(utc(9999, 12, 30, 23)) is None
    assert hourly.next_fire_time(utc(9999, 12, 30, 22)) == utc(9999, 12, 30, 23)
