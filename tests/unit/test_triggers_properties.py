"""Properties of every trigger: later than ``after``, aligned to its rule, nothing skipped, increasing,
and right across daylight saving time (New York, Lisbon, São Paulo before 2019, and a few odd zones).

The oracles here are deliberately naive (linear scans, a hand-written cron matcher) so that they do
not share code with the triggers they check.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronjob.domain.bounded import BoundedTrigger
from cronjob.domain.errors import ValidationError
from cronjob.domain.recurring import LAST_DAY, CalendarTrigger, CronTrigger, IntervalTrigger
from cronjob.domain.trigger import OnceTrigger, Trigger, fire_millisecond, latest_fire_time, whole_millisecond
from cronjob.domain.window import WindowTrigger
from cronjob_adapters.cron import CronsimEvaluator

EVALUATOR = CronsimEvaluator()
DST_ZONES = ("America/New_York", "Europe/Lisbon", "America/Sao_Paulo")
# Lord Howe jumps by 30 minutes; Chatham (+12:45/+13:45) by an hour at 02:45/03:45, off the hour.
ZONES = (*DST_ZONES, "UTC", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham")
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def z(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(instant: datetime, zone: str) -> datetime:
    """Naive wall-clock reading of ``instant`` in ``zone``."""
    return instant.astimezone(z(zone)).replace(tzinfo=None)


@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """Every UTC offset change of ``zone`` in 2000-2100, to the second (daily scan, then bisection)."""
    tz = z(zone)
    found: list[datetime] = []
    day = utc(2000, 1, 1)
    offset = day.astimezone(tz).utcoffset()
    while day < utc(2100, 1, 1):
        nxt = day + timedelta(days=1)
        if nxt.astimezone(tz).utcoffset() != offset:
            low, high = day, nxt
            while high - low > SECOND:
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle.astimezone(tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = nxt.astimezone(tz).utcoffset()
        day = nxt
    return tuple(found)


def next_fires(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    current: datetime | None = after
    for _ in range(count):
        current = trigger.next_fire_time(current)  # type: ignore[arg-type]
        assert current is not None
        out.append(current)
    return out


# ---------------------------------------------------------------- strategies

ANY_INSTANT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                           timezones=st.just(UTC))
MICROS = st.one_of(st.just(0), st.integers(0, 999_999))


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """Anywhere in 2000-2100, or within four hours of one of ``zone``'s DST transitions."""
    near = transitions(zone)
    if near and draw(st.booleans()):
        return (draw(st.sampled_from(near)) + timedelta(seconds=draw(st.integers(-4 * 3600, 4 * 3600)))
                + timedelta(microseconds=draw(MICROS)))
    return draw(ANY_INSTANT)


#: Times of day, often in the small hours where the transitions are (São Paulo's at midnight).
TIMES = st.one_of(
    st.times().map(lambda t: t.replace(microsecond=0)),
    st.builds(time, st.sampled_from([0, 1, 2, 3, 23]), st.sampled_from([0, 15, 30, 59]),
              st.sampled_from([0, 0, 30])),
)


@st.composite
def time_and_after(draw: st.DrawFn, zone: str) -> tuple[time, datetime]:
    """A rule time and an ``after``; half the time aimed at a transition of ``zone``: the time is
    within 90 minutes of the wall time where the clocks jump (so often skipped or repeated), and
    ``after`` is up to a day before the transition or up to two hours after it."""
    near = transitions(zone)
    if near and draw(st.booleans()):
        moment = draw(st.sampled_from(near))
        jump_wall = local(moment - SECOND, zone) + SECOND  # where the clock was about to read
        at = (jump_wall + timedelta(minutes=draw(st.integers(-90, 90)))).time().replace(
            second=draw(st.sampled_from([0, 0, 30])))
        minutes = draw(st.one_of(st.integers(-120, 120), st.integers(-120, 26 * 60)))
        after = moment - timedelta(minutes=minutes, microseconds=draw(MICROS))
        return at, after
    return draw(TIMES), draw(instants(zone))


WEEKDAYS = st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1, max_size=6))


def cron_field(low: int, high: int, *, star_weight: int = 1) -> st.SearchStrategy[str]:
    """One cron field in the forms ``*``, ``*/n``, ``a``, ``a,b``, ``a-b``, ``a-b/n``."""
    value = st.integers(low, high)
    return st.one_of(
        *([st.just("*")] * star_weight),
        st.integers(2, max(2, (high - low) // 2)).map(lambda n: f"*/{n}"),
        value.map(str),
        st.lists(value, min_size=2, max_size=4, unique=True).map(lambda v: ",".join(map(str, sorted(v)))),
        st.tuples(value, value).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(value, value, st.integers(1, 5)).map(lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"),
    )


CRON_EXPRESSIONS = st.tuples(
    cron_field(0, 59),
    cron_field(0, 23),
    cron_field(1, 28, star_weight=6),
    cron_field(1, 12, star_weight=6),
    cron_field(0, 6, star_weight=4),
).map(" ".join)


# ---------------------------------------------------------------- a naive cron matcher (the oracle)

@functools.cache
def field_values(spec: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in spec.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = map(int, base.split("-"))
        else:
            first = last = int(base)
            if step:
                last = high
        values.update(range(first, last + 1, int(step) if step else 1))
    return frozenset(values)


def cron_matches(expression: str, wall: datetime) -> bool:
    minute, hour, dom, month, dow = expression.split()
    if wall.minute not in field_values(minute, 0, 59) or wall.hour not in field_values(hour, 0, 23):
        return False
    if wall.month not in field_values(month, 1, 12):
        return False
    day_ok = wall.day in field_values(dom, 1, 31)
    weekday_ok = (wall.isoweekday() % 7) in field_values(dow, 0, 6)
    if dom.startswith("*") or dow.startswith("*"):
        return day_ok and weekday_ok
    return day_ok or weekday_ok  # both restricted: either one (Vixie cron)


def is_fixed_time(expression: str) -> bool:
    """Debian cron's rule: neither the minute nor the hour field starts with ``*``."""
    minute, hour, *_ = expression.split()
    return not minute.startswith("*") and not hour.startswith("*")


def is_second_pass(instant: datetime, zone: str) -> bool:
    """Whether the wall time at ``instant`` was already shown once (second pass of a fold)."""
    loc = instant.astimezone(z(zone))
    return loc.fold == 1 and loc.replace(fold=0).utcoffset() != loc.utcoffset()


# ---------------------------------------------------------------- a naive calendar oracle

def first_instant_reading(wall: datetime, zone: str) -> datetime:
    """First instant whose wall clock reads ``wall`` or later, by scanning (not bisecting)."""
    tz = z(zone)
    probe = wall.replace(tzinfo=tz, fold=1).astimezone(UTC) - timedelta(hours=2)
    while local(probe, zone) < wall:
        probe += MINUTE
    while local(probe - SECOND, zone) >= wall:
        probe -= SECOND
    return probe


def calendar_fire_on(trigger: CalendarTrigger, day: date) -> datetime | None:
    if trigger.weekdays is not None and day.weekday() not in trigger.weekdays:
        return None
    fire = first_instant_reading(datetime.combine(day, trigger.at), trigger.zone)
    return fire if local(fire, trigger.zone).date() == day else None


# ---------------------------------------------------------------- shared checks

def check_common(trigger: Trigger, after: datetime, data: st.DataObject) -> datetime:
    """Later than ``after``, UTC, a whole millisecond (a store keeps it unchanged), nothing between
    (by stepping), strictly increasing from a fire."""
    fire = trigger.next_fire_time(after)
    assert fire is not None
    assert fire > after
    assert fire.utcoffset() == timedelta(0)
    assert whole_millisecond(fire) == fire
    # No fire time between ``after`` and ``fire``: from anywhere in [after, fire) the answer is the same.
    for probe in (after, fire - timedelta(microseconds=1),
                  after + (fire - after) * data.draw(st.floats(0, 1, exclude_max=True), label="step")):
        if after <= probe < fire:
            assert trigger.next_fire_time(probe) == fire, probe
    later = next_fires(trigger, fire, 6)
    assert all(a < b for a, b in zip([fire, *later], later, strict=False))
    return fire


# ---------------------------------------------------------------- OnceTrigger

@PROPS
@given(at=ANY_INSTANT, after=ANY_INSTANT)
def test_once_fires_at_its_instant_iff_after_is_earlier_then_never(at: datetime, after: datetime) -> None:
    trigger = OnceTrigger(at)
    fires = fire_millisecond(at.astimezone(UTC))  # fire times are whole milliseconds
    assert trigger.at == fires
    assert timedelta(0) <= fires - at < timedelta(milliseconds=1)  # never before the instant asked for
    assert trigger.next_fire_time(after) == (fires if after < fires else None)
    assert trigger.next_fire_time(fires) is None
    assert not trigger.recurring


# ---------------------------------------------------------------- IntervalTrigger

EVERY = st.one_of(st.integers(1, 3 * 86400), st.sampled_from([60, 3600, 86400, 7 * 86400])).map(
    lambda s: timedelta(seconds=s))


@PROPS
@given(every=EVERY, anchor=ANY_INSTANT, zone=st.sampled_from(ZONES), data=st.data())
def test_interval_fires_on_multiples_of_every_from_the_anchor(
        every: timedelta, anchor: datetime, zone: str, data: st.DataObject) -> None:
    after = data.draw(instants(zone), label="after")
    trigger = IntervalTrigger(every, anchor)
    asked = anchor
    anchor = fire_millisecond(anchor)  # rounded up to the millisecond, like every instant asked for
    assert trigger.anchor == anchor
    assert timedelta(0) <= anchor - asked < timedelta(milliseconds=1)
    fire = check_common(trigger, after, data)
    assert fire >= anchor
    assert (fire - anchor) % every == timedelta(0)
    assert fire == anchor or fire - every <= after  # the previous multiple is not after ``after``
    assert next_fires(trigger, fire, 3) == [fire + k * every for k in (1, 2, 3)]  # elapsed time, DST or not


def test_interval_ignores_dst_and_refuses_bad_intervals() -> None:
    trigger = IntervalTrigger(timedelta(days=1), utc(2024, 3, 9, 17))  # 12:00 EST the day before the jump
    fire = trigger.next_fire_time(utc(2024, 3, 9, 18))
    assert fire == utc(2024, 3, 10, 17)
    assert local(fire, "America/New_York") == datetime(2024, 3, 10, 13)  # 24 h later is 13:00 EDT
    for bad in (timedelta(0), timedelta(seconds=-5), timedelta(milliseconds=500), timedelta(seconds=1.5)):
        with pytest.raises(ValidationError):
            IntervalTrigger(bad, utc(2024, 1, 1))
    with pytest.raises(ValidationError):
        IntervalTrigger(timedelta(minutes=1), datetime(2024, 1, 1))  # naive anchor


# ---------------------------------------------------------------- CalendarTrigger

@PROPS
@given(zone=st.sampled_from(ZONES), weekdays=WEEKDAYS, data=st.data())
def test_calendar_fires_at_the_wall_time_first_pass_or_when_the_gap_ends(
        zone: str, weekdays: frozenset[int] | None, data: st.DataObject) -> None:
    at, after = data.draw(time_and_after(zone), label="at, after")
    trigger = CalendarTrigger(at, zone, weekdays)
    fire = check_common(trigger, after, data)
    wall = local(fire, zone)
    if weekdays is not None:
        assert wall.weekday() in weekdays
    target = datetime.combine(wall.date(), at)
    if wall == target:  # the rule's wall time, on its first pass
        assert fire == target.replace(tzinfo=z(zone), fold=0).astimezone(UTC)
    else:  # the clocks jumped over the rule's time exactly at ``fire``
        assert local(fire - SECOND, zone) < target < wall
    # Against the scanning oracle: this date's fire, and no date in between has one after ``after``.
    assert calendar_fire_on(trigger, wall.date()) == fire
    day = local(after, zone).date() - timedelta(days=1)
    while day < wall.date():
        other = calendar_fire_on(trigger, day)
        assert other is None or other <= after
        day += timedelta(days=1)


@settings(max_examples=40, deadline=None)
@given(at=TIMES, zone=st.sampled_from(DST_ZONES), start=ANY_INSTANT)
def test_daily_fires_exactly_once_per_local_date_over_400_days(at: time, zone: str, start: datetime) -> None:
    for trigger in (CalendarTrigger(at, zone), CronTrigger(f"{at.minute} {at.hour} * * *", zone, EVALUATOR)):
        if isinstance(trigger, CronTrigger):
            start = start.replace(second=0)  # cron has minute resolution: compare whole minutes only
            if at.second:
                continue
        fires = next_fires(trigger, start, 400)
        dates = [local(f, zone).date() for f in fires]
        first = dates[0]
        assert dates == [first + timedelta(days=k) for k in range(400)], trigger


@PROPS
@given(zone=st.sampled_from(DST_ZONES), weekdays=WEEKDAYS, data=st.data())
def test_fixed_time_cron_agrees_with_the_calendar_trigger(
        zone: str, weekdays: frozenset[int] | None, data: st.DataObject) -> None:
    at, after = data.draw(time_and_after(zone), label="at, after")
    hour, minute = at.hour, at.minute
    dow = "*" if weekdays is None else ",".join(str((d + 1) % 7) for d in sorted(weekdays))
    cron = CronTrigger(f"{minute} {hour} * * {dow}", zone, EVALUATOR)
    calendar = CalendarTrigger(time(hour, minute), zone, weekdays)
    assert next_fires(cron, after, 4) == next_fires(calendar, after, 4)


@pytest.mark.parametrize(
    ("zone", "at", "after", "expected_local"),
    [
        # New York, spring forward 2024-03-10 02:00 -> 03:00: 02:30 fires at 03:00 EDT.
        ("America/New_York", time(2, 30), utc(2024, 3, 9, 12), "2024-03-10T03:00:00-04:00"),
        ("America/New_York", time(2, 0), utc(2024, 3, 9, 12), "2024-03-10T03:00:00-04:00"),
        ("America/New_York", time(3, 0), utc(2024, 3, 9, 12), "2024-03-10T03:00:00-04:00"),
        # New York, fall back 2024-11-03 02:00 -> 01:00: 01:30 fires on the first pass (EDT).
        ("America/New_York", time(1, 30), utc(2024, 11, 2, 12), "2024-11-03T01:30:00-04:00"),
        # Lisbon, spring forward 2024-03-31 01:00 -> 02:00 and fall back 2024-10-27 02:00 -> 01:00.
        ("Europe/Lisbon", time(1, 30), utc(2024, 3, 30, 12), "2024-03-31T02:00:00+01:00"),
        ("Europe/Lisbon", time(1, 30), utc(2024, 10, 26, 12), "2024-10-27T01:30:00+01:00"),
        # São Paulo (DST until 2019), at midnight: 2018-11-04 00:00 -> 01:00, 2019-02-17 00:00 -> 2019-02-16 23:00.
        ("America/Sao_Paulo", time(0, 0), utc(2018, 11, 3, 12), "2018-11-04T01:00:00-02:00"),
        ("America/Sao_Paulo", time(0, 30), utc(2018, 11, 3, 12), "2018-11-04T01:00:00-02:00"),
        ("America/Sao_Paulo", time(23, 30), utc(2019, 2, 16, 12), "2019-02-16T23:30:00-02:00"),
        ("America/Sao_Paulo", time(0, 0), utc(2019, 11, 2, 12), "2019-11-03T00:00:00-03:00"),  # no DST since 2019
        # Lord Howe jumps 02:00 -> 02:30.
        ("Australia/Lord_Howe", time(2, 15, 30), utc(2024, 10, 5, 3), "2024-10-06T02:30:00+11:00"),
    ],
)
def test_calendar_dst_examples(zone: str, at: time, after: datetime, expected_local: str) -> None:
    fire = CalendarTrigger(at, zone).next_fire_time(after)
    assert fire is not None
    assert fire.astimezone(z(zone)).isoformat() == expected_local


def test_calendar_fold_fires_once_and_the_next_day_resumes() -> None:
    trigger = CalendarTrigger(time(1, 30), "America/New_York")
    fires = next_fires(trigger, utc(2024, 11, 2, 12), 3)
    assert fires == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30), utc(2024, 11, 5, 6, 30)]
    # From inside the second pass (01:15 EST), the first pass is over: next is tomorrow.
    assert trigger.next_fire_time(utc(2024, 11, 3, 6, 15)) == utc(2024, 11, 4, 6, 30)
    # São Paulo's fold crosses midnight: 23:30 on 2019-02-16 fires once, on the first pass (-02).
    sao = CalendarTrigger(time(23, 30), "America/Sao_Paulo")
    assert next_fires(sao, utc(2019, 2, 16, 12), 2) == [utc(2019, 2, 17, 1, 30), utc(2019, 2, 18, 2, 30)]


def test_calendar_skips_a_date_that_the_zone_skipped() -> None:
    # Samoa moved across the date line: 2011-12-29 23:59:59 was followed by 2011-12-31 00:00.
    trigger = CalendarTrigger(time(9, 0), "Pacific/Apia")
    fires = next_fires(trigger, datetime(2011, 12, 29, 12, tzinfo=z("Pacific/Apia")), 2)
    assert [local(f, "Pacific/Apia") for f in fires] == [datetime(2011, 12, 31, 9), datetime(2012, 1, 1, 9)]


def test_weekly_calendar_and_validation() -> None:
    trigger = CalendarTrigger(time(9, 0), "America/Sao_Paulo", frozenset({0, 4}))  # Monday, Friday
    fires = next_fires(trigger, utc(2025, 6, 21, 12), 3)  # a Saturday
    assert [local(f, "America/Sao_Paulo") for f in fires] == [
        datetime(2025, 6, 23, 9), datetime(2025, 6, 27, 9), datetime(2025, 6, 30, 9)]
    assert CalendarTrigger(time(9, 0), "UTC", frozenset(range(7))) == CalendarTrigger(time(9, 0), "UTC")
    with pytest.raises(ValidationError) as error:
        CalendarTrigger(time(9, 0), "Nowhere/Land")
    assert error.value.field == "timezone"
    for weekdays in (frozenset(), frozenset({7}), frozenset({-1})):
        with pytest.raises(ValidationError):
            CalendarTrigger(time(9, 0), "UTC", weekdays)
    with pytest.raises(ValidationError):
        CalendarTrigger(time(9, 0, 0, 500), "UTC")


# ---------------------------------------------------------------- CronTrigger

@PROPS
@given(expression=CRON_EXPRESSIONS, zone=st.sampled_from(ZONES), data=st.data())
def test_cron_fires_when_the_expression_matches_the_local_wall_clock(
        expression: str, zone: str, data: st.DataObject) -> None:
    at, after = data.draw(time_and_after(zone), label="at, after")
    if data.draw(st.booleans(), label="aim the hour field at the transition"):
        minute, _, *days = expression.split()
        expression = " ".join([minute, str(at.hour), *days])
    trigger = CronTrigger(expression, zone, EVALUATOR)
    fire = check_common(trigger, after, data)
    wall = local(fire, zone)
    assert wall.second == 0 and fire.microsecond == 0
    if not cron_matches(expression, wall):
        # Only a fixed-time job, at the end of a gap that swallowed one of its times.
        assert is_fixed_time(expression)
        before = local(fire - SECOND, zone)
        assert before + SECOND < wall, "not the end of a gap"
        minutes = ((before + SECOND) + k * MINUTE for k in range(int((wall - before) / MINUTE) + 1))
        assert any(cron_matches(expression, m) for m in minutes if m < wall)
    if is_fixed_time(expression):
        assert not is_second_pass(fire, zone)  # a repeated wall time fires on its first pass only
    if fire - after <= timedelta(days=1):
        # Brute force: no matching minute in between that should have fired.
        probe = (after + MINUTE).replace(second=0, microsecond=0)
        while probe < fire:
            wall_probe = local(probe, zone)
            if cron_matches(expression, wall_probe):
                assert is_fixed_time(expression) and is_second_pass(probe, zone), probe
            probe += MINUTE


def scan_cron_fires(expression: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    """The fire times in (``after``, ``until``] by reading the clock minute by minute: a wildcard
    job at every minute whose wall time matches (both passes of a fold), a fixed-time job at the
    first pass only, and also when a gap ends that swallowed a matching wall time."""
    fires: list[datetime] = []
    probe = after.replace(second=0, microsecond=0) + MINUTE
    while probe <= until:
        wall, before = local(probe, zone), local(probe - MINUTE, zone)
        if is_fixed_time(expression):
            skipped = (before + k * MINUTE for k in range(1, int((wall - before) / MINUTE)))
            fire = ((cron_matches(expression, wall) and not is_second_pass(probe, zone))
                    or any(cron_matches(expression, m) for m in skipped))
        else:
            fire = cron_matches(expression, wall)
        if fire:
            fires.append(probe)
        probe += MINUTE
    return fires


@PROPS
@given(expression=CRON_EXPRESSIONS, zone=st.sampled_from([zone for zone in ZONES if transitions(zone)]),
       data=st.data())
def test_cron_fires_what_a_scan_of_the_clock_finds_across_a_transition(
        expression: str, zone: str, data: st.DataObject) -> None:
    """Every fire time from four hours before a change of offset to four hours after it, the
    hour field often aimed at the wall time where the clocks jump."""
    moment = data.draw(st.sampled_from(transitions(zone)), label="transition")
    if data.draw(st.booleans(), label="aim the hour field at the transition"):
        minute, _, *days = expression.split()
        hour = (local(moment - SECOND, zone) + data.draw(st.sampled_from([-MINUTE, SECOND]), label="side")).hour
        expression = " ".join([minute, str(hour), *days])
    after = moment - timedelta(hours=4, microseconds=data.draw(MICROS, label="micros"))
    until = moment + timedelta(hours=4)
    trigger = CronTrigger(expression, zone, EVALUATOR)
    fires: list[datetime] = []
    fire = trigger.next_fire_time(after)
    while fire is not None and fire <= until:
        fires.append(fire)
        fire = trigger.next_fire_time(fire)
    assert fires == scan_cron_fires(expression, zone, after, until)


@pytest.mark.parametrize(
    ("zone", "expression", "after", "expected"),
    [
        ("America/New_York", "30 2 * * *", utc(2024, 3, 9, 12),
         ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]),
        ("America/New_York", "30 1 * * *", utc(2024, 11, 2, 12),
         ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]),
        # Wildcard jobs follow elapsed time (Debian cron): both passes of the fold.
        ("America/New_York", "*/30 * * * *", utc(2024, 11, 3, 4, 45),
         ["2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00",
          "2024-11-03T01:00:00-05:00", "2024-11-03T01:30:00-05:00"]),
        ("America/New_York", "*/30 * * * *", utc(2024, 3, 10, 6, 10),
         ["2024-03-10T01:30:00-05:00", "2024-03-10T03:00:00-04:00"]),
        ("Europe/Lisbon", "30 1 * * *", utc(2024, 3, 30, 12), ["2024-03-31T02:00:00+01:00"]),
        ("Europe/Lisbon", "30 1 * * *", utc(2024, 10, 26, 12),
         ["2024-10-27T01:30:00+01:00", "2024-10-28T01:30:00+00:00"]),
        ("America/Sao_Paulo", "0 0 * * *", utc(2018, 11, 3, 12),
         ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"]),
        ("America/Sao_Paulo", "30 23 * * *", utc(2019, 2, 16, 12),
         ["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"]),
        # cronsim answers the imaginary 00:00 when it rolls the date into São Paulo's midnight gap;
        # the adapter restarts before the gap, as for any wildcard job: the skipped minutes do not fire.
        ("America/Sao_Paulo", "* 0 4 * *", utc(2018, 11, 3, 15), ["2018-12-04T00:00:00-02:00"]),
        # Lord Howe jumps 02:00 -> 02:30; cronsim alone answers 03:30 here, skipping 03:00-03:29.
        ("Australia/Lord_Howe", "* 3 * * *", utc(2024, 10, 5, 15, 45),
         ["2024-10-06T03:00:00+11:00", "2024-10-06T03:01:00+11:00"]),
        ("Australia/Lord_Howe", "15 2 * * *", utc(2024, 10, 5, 3), ["2024-10-06T02:30:00+11:00"]),
        # Lord Howe falls back 02:00 -> 01:30: a wildcard job fires in the second half hour again.
        ("Australia/Lord_Howe", "50 * * * *", utc(2026, 4, 4, 14, 45),
         ["2026-04-05T01:50:00+11:00", "2026-04-05T01:50:00+10:30", "2026-04-05T02:50:00+10:30"]),
        # Chatham falls back 03:45 -> 02:45 (+13:45 -> +12:45): 02:45-03:44 come twice.
        ("Pacific/Chatham", "*/10 2 * * *", utc(2026, 4, 4, 13),
         ["2026-04-05T02:50:00+13:45", "2026-04-05T02:50:00+12:45", "2026-04-06T02:00:00+12:45"]),
        ("Pacific/Chatham", "*/5 3 * * *", utc(2026, 4, 4, 13, 50),  # cronsim alone found no time after 03:40
         ["2026-04-05T03:40:00+13:45", "2026-04-05T03:00:00+12:45", "2026-04-05T03:05:00+12:45"]),
        # ... and springs forward 02:45 -> 03:45 (+12:45 -> +13:45): 03:45-03:59 are real.
        ("Pacific/Chatham", "*/5 3 * * *", utc(2026, 9, 26, 13),
         ["2026-09-27T03:45:00+13:45", "2026-09-27T03:50:00+13:45", "2026-09-27T03:55:00+13:45",
          "2026-09-28T03:00:00+13:45"]),
        ("Pacific/Chatham", "50 2 * * *", utc(2026, 9, 26, 13), ["2026-09-27T03:45:00+13:45"]),  # fixed time
    ],
)
def test_cron_dst_examples(zone: str, expression: str, after: datetime, expected: list[str]) -> None:
    fires = next_fires(CronTrigger(expression, zone, EVALUATOR), after, len(expected))
    assert [f.astimezone(z(zone)).isoformat() for f in fires] == expected


def test_cron_from_the_second_pass_of_a_fold_is_not_sent_back_to_the_first() -> None:
    # 01:15 EST is the second pass; cronsim alone answers 01:30 EDT, which is earlier.
    trigger = CronTrigger("30 1 * * *", "America/New_York", EVALUATOR)
    assert trigger.next_fire_time(utc(2024, 11, 3, 6, 15)) == utc(2024, 11, 4, 6, 30)
    assert CronTrigger("30,45 1 * * *", "America/New_York", EVALUATOR).next_fire_time(
        utc(2024, 11, 3, 6, 15)) == utc(2024, 11, 4, 6, 30)


def test_cron_validation() -> None:
    for bad in ("61 * * * *", "* * * *", "0 0 * * * *", "0 0 31 2 *", "every day"):
        with pytest.raises(ValidationError) as error:
            CronTrigger(bad, "UTC", EVALUATOR)
        assert error.value.field == "schedule"
    with pytest.raises(ValidationError) as error:
        CronTrigger("0 9 * * *", "Not/AZone", EVALUATOR)
    assert error.value.field == "timezone"
    assert CronTrigger(" 0  9 * *  mon-fri ", "UTC", EVALUATOR).expression == "0 9 * * MON-FRI"


# ---------------------------------------------------------------- the latest fire time in a window

@st.composite
def any_trigger(draw: st.DrawFn) -> Trigger:
    zone = draw(st.sampled_from(ZONES), label="zone")
    kind = draw(st.sampled_from(["interval", "calendar", "monthly", "window", "cron", "once"]), label="kind")
    if kind == "interval":
        return IntervalTrigger(timedelta(seconds=draw(st.integers(1, 7200), label="every")),
                               draw(ANY_INSTANT, label="anchor"))
    if kind == "window":
        start = draw(TIMES, label="start")
        return WindowTrigger(timedelta(seconds=draw(st.integers(1, 7200), label="every")), start,
                             draw(TIMES.filter(lambda end: end != start), label="end"), zone,
                             draw(WEEKDAYS, label="weekdays"))
    if kind == "calendar":
        return CalendarTrigger(draw(TIMES, label="at"), zone, draw(WEEKDAYS, label="weekdays"))
    if kind == "monthly":
        days = st.frozensets(st.one_of(st.integers(1, 31), st.just(LAST_DAY)), min_size=1, max_size=4)
        return CalendarTrigger(draw(TIMES, label="at"), zone, month_days=draw(days, label="days of the month"))
    if kind == "cron":
        return CronTrigger(draw(CRON_EXPRESSIONS, label="expression"), zone, EVALUATOR)
    return OnceTrigger(draw(ANY_INSTANT, label="at"))


@st.composite
def any_rule(draw: st.DrawFn) -> Trigger:
    """Any trigger, a recurring one ending (``until``) now and then."""
    trigger = draw(any_trigger())
    if trigger.recurring and draw(st.booleans(), label="ends"):
        return BoundedTrigger(rule=trigger, until=draw(ANY_INSTANT, label="until"))
    return trigger


@PROPS
@given(trigger=any_rule(), after=ANY_INSTANT, span=st.integers(0, 400 * 86400 * 1000), data=st.data())
def test_the_latest_fire_time_in_a_window_is_the_last_of_those_walked_to(
        trigger: Trigger, after: datetime, span: int, data: st.DataObject) -> None:
    """What coalescing runs as: the last fire time in (after, until], as stepping one fire time
    at a time finds it (the windows are kept to a few thousand fire times for the walk)."""
    check_latest_fire_time(trigger, after, after + timedelta(milliseconds=span), 5000)


def check_latest_fire_time(trigger: Trigger, after: datetime, until: datetime, steps: int) -> None:
    """:func:`latest_fire_time` in (``after``, ``until``] is the last fire time stepping finds there
    (the window cut at the last of ``steps`` fire times walked to)."""
    walked: datetime | None = None
    fire = trigger.next_fire_time(after)
    for _ in range(steps):
        if fire is None or fire > until:
            break
        walked, fire = fire, trigger.next_fire_time(fire)
    else:
        until = walked  # type: ignore[assignment]  # too many to walk: the window ends at the last one walked to
    assert latest_fire_time(trigger, after, until) == walked


# ---------------------------------------------------------------- BoundedTrigger (``until``)

@PROPS
@given(rule=any_trigger().filter(lambda t: t.recurring), after=ANY_INSTANT,
       until=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)),
       data=st.data())
def test_until_keeps_the_rule_s_fire_times_up_to_its_end_inclusive_then_none(
        rule: Trigger, after: datetime, until: datetime, data: st.DataObject) -> None:
    bounded = BoundedTrigger(rule=rule, until=until)
    end = whole_millisecond(until)  # fire times are whole milliseconds: none is cut off
    assert bounded.until == end and bounded.recurring
    walked: list[datetime] = []
    current: datetime | None = after
    for _ in range(20):  # the bounded walk is the rule's walk, cut at the end
        expected = rule.next_fire_time(current)  # type: ignore[arg-type]
        current = bounded.next_fire_time(current)  # type: ignore[arg-type]
        assert current == (expected if expected is not None and expected <= end else None)
        if current is None:
            break
        walked.append(current)
    if walked:
        check_common(BoundedTrigger(rule=rule, until=datetime(2200, 1, 1, tzinfo=UTC)), after, data)
    assert bounded.next_fire_time(end) is None
    if rule.next_fire_time(end - timedelta(milliseconds=1)) == end:
        assert bounded.next_fire_time(end - timedelta(milliseconds=1)) == end  # the end itself fires


def test_until_bounds_a_recurring_rule_once() -> None:
    daily = CalendarTrigger(time(9, 0), "UTC")
    with pytest.raises(ValidationError, match="'from' and 'until' bound a recurring rule") as refused:
        BoundedTrigger(rule=OnceTrigger(utc(2030, 1, 1)), until=utc(2030, 2, 1))
    assert refused.value.field == "schedule"
    with pytest.raises(ValidationError, match="one 'from' and one 'until'"):
        BoundedTrigger(rule=BoundedTrigger(rule=daily, until=utc(2030, 2, 1)), until=utc(2030, 3, 1))
    with pytest.raises(ValidationError, match="needs 'from' or 'until'"):
        BoundedTrigger(rule=daily)
    with pytest.raises(ValidationError, match="an interval starts at its anchor"):
        BoundedTrigger(rule=IntervalTrigger(timedelta(hours=1), utc(2030, 1, 1)), start=utc(2030, 2, 1))
    with pytest.raises(ValidationError, match="offset"):
        BoundedTrigger(rule=daily, until=datetime(2030, 1, 1))
    with pytest.raises(ValidationError, match=r"starts \('from', 2030-02-01T00:00:00.000Z\) after it ends"):
        BoundedTrigger(rule=daily, start=utc(2030, 2, 1), until=utc(2030, 1, 31, 23, 59))
    assert BoundedTrigger(rule=daily, start=utc(2030, 2, 1), until=utc(2030, 2, 1)).start == utc(2030, 2, 1)
    bounded = BoundedTrigger(rule=daily, until=utc(2030, 1, 3, 9))
    assert next_fires(bounded, utc(2030, 1, 1), 2) == [utc(2030, 1, 1, 9), utc(2030, 1, 2, 9)]
    assert bounded.next_fire_time(utc(2030, 1, 2, 9)) == utc(2030, 1, 3, 9)  # the end itself fires
    assert bounded.next_fire_time(utc(2030, 1, 3, 9)) is None
    assert bounded.expression == "daily at 09:00 until 2030-01-03T09:00:00+00:00"
    window = BoundedTrigger(rule=daily, start=utc(2030, 1, 2, 9), until=utc(2030, 1, 3, 9))
    assert window.next_fire_time(utc(2000, 1, 1)) == utc(2030, 1, 2, 9)  # the start itself fires
    assert next_fires(window, utc(2000, 1, 1), 2) == [utc(2030, 1, 2, 9), utc(2030, 1, 3, 9)]
    assert window.expression == "daily at 09:00 from 2030-01-02T09:00:00+00:00 until 2030-01-03T09:00:00+00:00"


@PROPS
@given(rule=any_trigger().filter(lambda t: t.recurring and not isinstance(t, IntervalTrigger)),
       after=ANY_INSTANT, start=ANY_INSTANT, data=st.data())
def test_from_keeps_the_rule_s_fire_times_from_its_start_inclusive(
        rule: Trigger, after: datetime, start: datetime, data: st.DataObject) -> None:
    bounded = BoundedTrigger(rule=rule, start=start)
    begin = fire_millisecond(start)  # fire times are whole milliseconds: none is left out
    assert bounded.start == begin
    fire = bounded.next_fire_time(after)
    first_at_or_after_start = rule.next_fire_time(begin - timedelta(milliseconds=1))
    assert fire == (rule.next_fire_time(after) if after >= begin else first_at_or_after_start)
    if fire is not None:
        assert fire >= begin and fire > after
        check_common(bounded, after, data)


def test_triggers_past_year_9999_never_fire_again() -> None:
    end = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert IntervalTrigger(timedelta(days=1), utc(2000, 1, 1)).next_fire_time(end) is None
    assert CalendarTrigger(time(9, 0), "UTC").next_fire_time(end) is None
    assert CronTrigger("0 9 * * *", "UTC", EVALUATOR).next_fire_time(end) is None


def test_an_instant_in_the_last_millisecond_of_the_calendar_is_refused_not_an_overflow() -> None:
    last = datetime(9999, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)  # rounds up past the end
    with pytest.raises(ValidationError, match="out of range|between"):
        OnceTrigger(last)
    with pytest.raises(ValidationError) as refused:
        IntervalTrigger(timedelta(days=1), last)
    assert refused.value.field == "anchor"
    assert OnceTrigger(last.replace(microsecond=999_000)).at == last.replace(microsecond=999_000)
