"""Properties of monthly rules (``monthly on 1,15,last at 09:00``): on the requested days of the
month only, at the requested wall time or when a DST gap ends, none skipped, a day a month lacks
skipped in that month, ``last`` the month's last day: in any IANA zone, often right at one of its
changes of offset (Pacific/Apia's lost day and Australia/Lord_Howe's 30-minute DST among them).

The oracles are naive (a date's day compared by hand, the fire time found by scanning the clock
minute by minute) so that they share no code with the trigger they check.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.recurring import LAST_DAY, CalendarTrigger
from cronjob.domain.trigger import latest_fire_time
from tests.unit.test_triggers_properties import check_common, first_instant_reading, local, next_fires

SECOND = timedelta(seconds=1)
#: Zones with DST or odd changes of offset, aimed at more often than the rest.
ODD_ZONES = ("America/New_York", "Europe/Lisbon", "America/Sao_Paulo", "Australia/Lord_Howe", "Pacific/Apia",
             "Pacific/Chatham", "Europe/Berlin", "America/Santiago")
ALL_ZONES = tuple(sorted(available_timezones()))
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@functools.cache
def transitions_in(zone: str, year: int) -> tuple[datetime, ...]:
    """The instants (to the second) at which ``zone`` changes its offset in ``year``."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    day = utc(year, 1, 1)
    while day.year == year:
        following = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = day, following
            while high - low > SECOND:
                middle = (low + (high - low) / 2).replace(microsecond=0)
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        day = following
    return tuple(found)


def is_requested(day: date, days: frozenset[int]) -> bool:
    """The oracle's reading of a monthly rule's days: by the number, or the date whose next date
    starts another month."""
    return day.day in days or (LAST_DAY in days and (day + timedelta(days=1)).day == 1)


def oracle_fire_on(day: date, at: time, zone: str, days: frozenset[int]) -> datetime | None:
    if not is_requested(day, days):
        return None
    fire = first_instant_reading(datetime.combine(day, at), zone)
    return fire if local(fire, zone).date() == day else None


MONTH_DAYS = st.frozensets(st.one_of(st.integers(1, 31), st.integers(28, 31), st.just(LAST_DAY)),
                           min_size=1, max_size=5)
TIMES = st.one_of(
    st.times().map(lambda t: t.replace(microsecond=0)),
    st.builds(time, st.sampled_from([0, 1, 2, 3, 23]), st.sampled_from([0, 15, 30, 59]), st.sampled_from([0, 0, 30])),
)
INSTANTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC))


@st.composite
def monthly_case(draw: st.DrawFn) -> tuple[str, frozenset[int], time, datetime]:
    """A zone, the days, a time of day and an ``after``. Half the time aimed at one of the zone's
    changes of offset: its local date is one of the days, the time within 90 minutes of the wall
    time where the clocks jump, ``after`` up to two days before or two hours after it."""
    zone = draw(st.one_of(st.sampled_from(ODD_ZONES), st.sampled_from(ALL_ZONES)), label="zone")
    days = draw(MONTH_DAYS, label="days")
    year = draw(st.integers(1995, 2040), label="year")
    near = transitions_in(zone, year)
    if near and draw(st.booleans(), label="at a change of offset"):
        moment = draw(st.sampled_from(near), label="change")
        jump_wall = local(moment - SECOND, zone) + SECOND  # where the clock was about to read
        days = days | {jump_wall.day}
        at = (jump_wall + timedelta(minutes=draw(st.integers(-90, 90), label="minutes"))).time().replace(
            second=draw(st.sampled_from([0, 0, 30]), label="second"))
        after = moment - timedelta(minutes=draw(st.integers(-120, 48 * 60), label="after"),
                                   microseconds=draw(st.integers(0, 999_999), label="micros"))
        return zone, days, at, after
    return zone, days, draw(TIMES, label="at"), draw(INSTANTS, label="after")


def expected_days(days: frozenset[int]) -> frozenset[int] | None:
    return None if days >= frozenset(range(1, 32)) else days


@PROPS
@given(case=monthly_case(), data=st.data())
def test_monthly_fires_on_its_days_at_its_wall_time_and_skips_none(case: tuple[str, frozenset[int], time, datetime],
                                                                   data: st.DataObject) -> None:
    zone, days, at, after = case
    trigger = CalendarTrigger(at, zone, month_days=days)
    assert trigger.month_days == expected_days(days)
    check_common(trigger, after, data)  # later than after, UTC, whole ms, nothing between, increasing
    fires = next_fires(trigger, after, 6)
    assert all(a < b for a, b in zip([after, *fires], fires, strict=False))
    walls = [local(fire, zone) for fire in fires]
    assert len({wall.date() for wall in walls}) == len(walls)  # never twice on one local date
    for fire, wall in zip(fires, walls, strict=True):
        assert is_requested(wall.date(), days), (wall, days)
        target = datetime.combine(wall.date(), at)
        if wall == target:  # the requested wall time, on its first pass
            assert fire == target.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)
        else:  # the clocks jumped over it exactly at ``fire``
            assert local(fire - SECOND, zone) < target < wall
    # Every local date from the one before ``after`` to the last fire: a requested day with a
    # fire time after ``after`` is one of the fires, and no other date has one.
    day = local(after, zone).date() - timedelta(days=1)
    while day <= walls[-1].date():
        other = oracle_fire_on(day, at, zone, days)
        if other is not None and other > after:
            assert other in fires, (day, other)
        day += timedelta(days=1)
    assert sum(1 for fire in fires if oracle_fire_on(local(fire, zone).date(), at, zone, days) == fire) == 6


@PROPS
@given(days=MONTH_DAYS, at=TIMES, zone=st.sampled_from(ODD_ZONES), start=INSTANTS)
def test_a_day_a_month_lacks_has_no_run_that_month_and_last_is_the_month_s_end(
        days: frozenset[int], at: time, zone: str, start: datetime) -> None:
    """Over two years: each month runs on exactly the requested days it has (the 31st only in
    months of 31 days, the 29th of February in leap years), ``last`` on the month's last day, and
    no month is left out."""
    trigger = CalendarTrigger(at, zone, month_days=days)
    first_month = local(start, zone).date().replace(day=1) + timedelta(days=32)
    first_month = first_month.replace(day=1)  # the first whole month after ``start``
    fires = next_fires(trigger, start, 24 * 6 + 1)
    by_month: dict[tuple[int, int], set[int]] = {}
    for fire in fires:
        wall = local(fire, zone)
        by_month.setdefault((wall.year, wall.month), set()).add(wall.day)
    month = first_month
    for _ in range(24):
        length = ((month + timedelta(days=31)).replace(day=1) - month).days
        wanted = {day for day in days if day != LAST_DAY and day <= length} | ({length} if LAST_DAY in days else set())
        got = by_month.get((month.year, month.month), set())
        if zone == "Pacific/Apia" and (month.year, month.month) == (2011, 12):
            wanted.discard(30)  # Apia skipped 2011-12-30 whole: no fire that date
        assert got == wanted, (month, days)
        month = (month + timedelta(days=31)).replace(day=1)


@PROPS
@given(days=MONTH_DAYS, at=TIMES, zone=st.sampled_from(ODD_ZONES), after=INSTANTS,
       span=st.integers(0, 800 * 86400))
def test_coalescing_finds_the_latest_monthly_occurrence_in_a_window(
        days: frozenset[int], at: time, zone: str, after: datetime, span: int) -> None:
    trigger = CalendarTrigger(at, zone, month_days=days)
    until = after + timedelta(seconds=span)
    walked = None
    fire = trigger.next_fire_time(after)
    while fire is not None and fire <= until:
        walked, fire = fire, trigger.next_fire_time(fire)
    assert latest_fire_time(trigger, after, until) == walked


@pytest.mark.parametrize(
    ("zone", "days", "at", "after", "expected"),
    [
        # The 31st: only in the months that have one.
        ("UTC", {31}, time(9, 0), utc(2026, 1, 31, 10),
         ["2026-03-31T09:00:00+00:00", "2026-05-31T09:00:00+00:00", "2026-07-31T09:00:00+00:00"]),
        # last: the month's own end, February's 28th or 29th.
        ("America/Sao_Paulo", {LAST_DAY}, time(18, 0), utc(2027, 12, 31, 22),
         ["2028-01-31T18:00:00-03:00", "2028-02-29T18:00:00-03:00", "2028-03-31T18:00:00-03:00"]),
        # 31 and last: one run on the 31st, where they are the same date.
        ("UTC", {31, LAST_DAY}, time(0, 0), utc(2026, 1, 30),
         ["2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00"]),
        # New York springs forward on 2024-03-10 02:00 -> 03:00: 02:30 runs when the gap ends.
        ("America/New_York", {10}, time(2, 30), utc(2024, 3, 1),
         ["2024-03-10T03:00:00-04:00", "2024-04-10T02:30:00-04:00"]),
        # ... and falls back on 2024-11-03 02:00 -> 01:00: 01:30 runs on its first pass only.
        ("America/New_York", {3}, time(1, 30), utc(2024, 11, 1),
         ["2024-11-03T01:30:00-04:00", "2024-12-03T01:30:00-05:00"]),
        # Lord Howe jumps 02:00 -> 02:30 on 2024-10-06: 02:15 runs at 02:30.
        ("Australia/Lord_Howe", {6}, time(2, 15), utc(2024, 9, 30),
         ["2024-10-06T02:30:00+11:00", "2024-11-06T02:15:00+11:00"]),
        # São Paulo skipped 2018-11-04 00:00-01:00: midnight on the 4th runs at 01:00.
        ("America/Sao_Paulo", {4}, time(0, 0), utc(2018, 10, 5),
         ["2018-11-04T01:00:00-02:00", "2018-12-04T00:00:00-02:00"]),
        # Apia skipped 2011-12-30 whole: the 30th has no run that month.
        ("Pacific/Apia", {30}, time(9, 0), utc(2011, 12, 1),
         ["2012-01-30T09:00:00+14:00", "2012-03-30T09:00:00+14:00"]),
    ],
)
def test_monthly_examples(zone: str, days: set[int], at: time, after: datetime, expected: list[str]) -> None:
    fires = next_fires(CalendarTrigger(at, zone, month_days=frozenset(days)), after, len(expected))
    assert [fire.astimezone(ZoneInfo(zone)).isoformat() for fire in fires] == expected


def test_a_monthly_rule_until_an_end_runs_on_its_days_up_to_it() -> None:
    rule = CalendarTrigger(time(18, 0), "America/Sao_Paulo", month_days=frozenset({LAST_DAY}))
    bounded = BoundedTrigger(rule=rule, until=utc(2028, 1, 1, 2, 59, 59, 999000))  # through 2027-12-31
    fires = next_fires(bounded, utc(2027, 10, 1), 3)
    assert [local(fire, "America/Sao_Paulo").date() for fire in fires] == [
        date(2027, 10, 31), date(2027, 11, 30), date(2027, 12, 31)]
    assert bounded.next_fire_time(fires[-1]) is None
