"""Properties of a repetition in a window of the day (``every 15 minutes between 08:00 and 18:00 on
mon-fri``): the window opens at its wall time, or when a DST gap ends, on its days only (a date the
zone skipped has none), the rule fires then and every ``every`` of elapsed time while the window is
open, never at or after it closes, and skips none: in any IANA zone, often right at one of its
changes of offset (Pacific/Apia's lost day, Australia/Lord_Howe's 30-minute DST and
America/Sao_Paulo's midnight changes among them), over midnight too (``between 22:00 and 06:00``).

The oracle is naive: the instants a window opens and closes are found by scanning the clock minute
by minute, then second by second, and its fire times by stepping from the opening; it shares no
code with the trigger it checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.window import WindowTrigger
from tests.unit.test_monthly_properties import ALL_ZONES, ODD_ZONES, PROPS, TIMES, transitions_in
from tests.unit.test_triggers_properties import check_common, first_instant_reading, local, next_fires

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
EVERY = st.one_of(st.integers(1, 86_399), st.sampled_from([60, 300, 900, 1800, 3600, 5400, 7200, 6 * 3600])).map(
    lambda seconds: timedelta(seconds=seconds))
WEEKDAYS = st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1, max_size=6))
INSTANTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def oracle_window(trigger: WindowTrigger, day: date) -> tuple[datetime, datetime] | None:
    """When the window of the local date ``day`` opens and closes, by scanning the clock."""
    if trigger.weekdays is not None and day.weekday() not in trigger.weekdays:
        return None
    opens = first_instant_reading(datetime.combine(day, trigger.start), trigger.zone)
    if local(opens, trigger.zone).date() != day:
        return None  # the clocks went from before the opening time straight to a later date
    closing_date = day if trigger.start < trigger.end else day + DAY
    closes = first_instant_reading(datetime.combine(closing_date, trigger.end), trigger.zone)
    return (opens, closes) if opens < closes else None


def oracle_fires(trigger: WindowTrigger, after: datetime) -> Iterator[datetime]:
    """The fire times later than ``after``: each window's opening and every step after it that is
    still before it closes, window after window, from two dates before ``after``'s."""
    day = local(after, trigger.zone).date() - 2 * DAY
    while True:
        window = oracle_window(trigger, day)
        if window is not None:
            fire, closes = window
            while fire < closes:
                if fire > after:
                    yield fire
                fire += trigger.every
        day += DAY


@st.composite
def window_case(draw: st.DrawFn) -> tuple[WindowTrigger, datetime]:
    """A window rule and an ``after``. Half the time aimed at one of the zone's changes of offset:
    the window opens or closes within 90 minutes of the wall time where the clocks jump, and
    ``after`` is up to two days before it or two hours after it."""
    zone = draw(st.one_of(st.sampled_from(ODD_ZONES), st.sampled_from(ALL_ZONES)), label="zone")
    every, weekdays = draw(EVERY, label="every"), draw(WEEKDAYS, label="weekdays")
    start, end = draw(TIMES, label="start"), draw(TIMES, label="end")
    after = draw(INSTANTS, label="after")
    near = transitions_in(zone, draw(st.integers(1995, 2040), label="year"))
    if near and draw(st.booleans(), label="at a change of offset"):
        moment = draw(st.sampled_from(near), label="change")
        jump_wall = local(moment - SECOND, zone) + SECOND  # where the clock was about to read
        near_jump = (jump_wall + timedelta(minutes=draw(st.integers(-90, 90), label="minutes"))).time().replace(
            second=draw(st.sampled_from([0, 0, 30]), label="second"))
        if draw(st.booleans(), label="opens there"):
            start = near_jump
        else:
            end = near_jump
        if weekdays is not None:
            weekdays = weekdays | {jump_wall.weekday(), (jump_wall - DAY).weekday()}
        after = moment - timedelta(minutes=draw(st.integers(-120, 48 * 60), label="after"),
                                   microseconds=draw(st.integers(0, 999_999), label="micros"))
    if start == end:
        end = (datetime.combine(date(2000, 1, 1), start) + timedelta(minutes=1)).time()
    return WindowTrigger(every, start, end, zone, weekdays), after


@PROPS
@given(case=window_case(), data=st.data())
def test_a_window_fires_when_it_opens_and_every_step_while_it_is_open_and_skips_none(
        case: tuple[WindowTrigger, datetime], data: st.DataObject) -> None:
    trigger, after = case
    check_common(trigger, after, data)  # later than after, UTC, whole ms, nothing between, increasing
    fires = next_fires(trigger, after, 8)
    expected = oracle_fires(trigger, after)
    assert fires == [next(expected) for _ in fires]


@PROPS
@given(case=window_case(), data=st.data())
def test_each_window_has_its_share_of_runs_and_no_two_windows_meet(case: tuple[WindowTrigger, datetime],
                                                                   data: st.DataObject) -> None:
    """Over a fortnight, window by window: the first run is its opening, each next one a step of
    exactly ``every`` later, as many as fit before it closes, and the one after its last is the
    next window's opening (none in between, none in another window's time)."""
    trigger, after = case
    day = local(after, trigger.zone).date() + DAY
    windows = [window for offset in range(15) if (window := oracle_window(trigger, day + offset * DAY))]
    ms = timedelta(milliseconds=1)
    for (opens, closes), following in zip(windows, [*windows[1:], None], strict=True):
        steps = -(-(closes - opens) // trigger.every)  # as many as fit: ceil((closes - opens) / every)
        assert trigger.next_fire_time(opens - ms) == opens
        for k in {0, steps - 2, steps - 1, data.draw(st.integers(0, steps - 1), label="step")} - {-1}:
            step = opens + k * trigger.every
            assert trigger.next_fire_time(step - ms) == step
            if k < steps - 1:
                assert trigger.next_fire_time(step) == step + trigger.every
        last = opens + (steps - 1) * trigger.every
        assert last < closes <= last + trigger.every
        if following is not None:
            assert trigger.next_fire_time(last) == following[0]


@pytest.mark.parametrize(
    ("rule", "after", "expected"),
    [
        # Business hours on weekdays: Friday's last run at 17:45, then Monday 08:00.
        (WindowTrigger(timedelta(minutes=15), time(8, 0), time(18, 0), "America/Sao_Paulo", frozenset(range(5))),
         utc(2026, 1, 16, 20, 30),  # Friday 17:30 in São Paulo
         ["2026-01-16T17:45:00-03:00", "2026-01-19T08:00:00-03:00", "2026-01-19T08:15:00-03:00"]),
        # New York springs forward 02:00 -> 03:00 on 2024-03-10: the window goes on, one hour shorter.
        (WindowTrigger(timedelta(minutes=30), time(1, 0), time(4, 0), "America/New_York"), utc(2024, 3, 10, 5),
         ["2024-03-10T01:00:00-05:00", "2024-03-10T01:30:00-05:00", "2024-03-10T03:00:00-04:00",
          "2024-03-10T03:30:00-04:00", "2024-03-11T01:00:00-04:00"]),
        # ... and falls back 02:00 -> 01:00 on 2024-11-03: the repeated hour runs too (elapsed time).
        (WindowTrigger(timedelta(minutes=30), time(0, 30), time(2, 0), "America/New_York"), utc(2024, 11, 3, 4),
         ["2024-11-03T00:30:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00",
          "2024-11-03T01:00:00-05:00", "2024-11-03T01:30:00-05:00", "2024-11-04T00:30:00-05:00"]),
        # Lord Howe jumps 02:00 -> 02:30 on 2024-10-06: an hour after 01:00 the clock reads 02:30.
        (WindowTrigger(timedelta(hours=1), time(1, 0), time(5, 0), "Australia/Lord_Howe"), utc(2024, 10, 5, 14),
         ["2024-10-06T01:00:00+10:30", "2024-10-06T02:30:00+11:00", "2024-10-06T03:30:00+11:00",
          "2024-10-06T04:30:00+11:00", "2024-10-07T01:00:00+11:00"]),
        # São Paulo skipped 2018-11-04 00:00-01:00: a window opening at midnight opens at 01:00.
        (WindowTrigger(timedelta(minutes=30), time(0, 0), time(2, 0), "America/Sao_Paulo"), utc(2018, 11, 4, 2),
         ["2018-11-04T01:00:00-02:00", "2018-11-04T01:30:00-02:00", "2018-11-05T00:00:00-02:00"]),
        # Apia skipped 2011-12-30 whole: that date has no window.
        (WindowTrigger(timedelta(hours=8), time(6, 0), time(23, 0), "Pacific/Apia"), utc(2011, 12, 29, 12),
         ["2011-12-29T06:00:00-10:00", "2011-12-29T14:00:00-10:00", "2011-12-29T22:00:00-10:00",
          "2011-12-31T06:00:00+14:00"]),
        # ... so a night window opening on the 29th stops when the clocks jump, and none opens on the 30th.
        (WindowTrigger(timedelta(hours=1), time(22, 0), time(6, 0), "Pacific/Apia"), utc(2011, 12, 30, 7),
         ["2011-12-29T22:00:00-10:00", "2011-12-29T23:00:00-10:00", "2011-12-31T22:00:00+14:00"]),
        # A night window over the fall-back: 22:00 to 06:00 runs nine times that night, eight the next.
        (WindowTrigger(timedelta(hours=1), time(22, 0), time(6, 0), "America/New_York", frozenset({5})),
         utc(2024, 11, 3, 1),
         ["2024-11-02T22:00:00-04:00", "2024-11-02T23:00:00-04:00", "2024-11-03T00:00:00-04:00",
          "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00",
          "2024-11-03T03:00:00-05:00", "2024-11-03T04:00:00-05:00", "2024-11-03T05:00:00-05:00",
          "2024-11-09T22:00:00-05:00"]),
    ],
)
def test_window_examples(rule: WindowTrigger, after: datetime, expected: list[str]) -> None:
    zone = ZoneInfo(rule.zone)
    assert [fire.astimezone(zone).isoformat() for fire in next_fires(rule, after, len(expected))] == expected


def test_a_window_s_expression_and_what_it_refuses() -> None:
    rule = WindowTrigger(timedelta(seconds=90), time(8, 0, 30), time(18, 0), "UTC", frozenset({0, 4}))
    assert rule.expression == "every 90 seconds between 08:00:30 and 18:00 on monday,friday"
    assert WindowTrigger(timedelta(hours=1), time(22, 0), time(6, 0), "UTC", frozenset(range(7))).expression == (
        "every hour between 22:00 and 06:00")
    for every in (timedelta(0), timedelta(milliseconds=1500), timedelta(days=1)):
        with pytest.raises(ValidationError) as refused:
            WindowTrigger(every, time(8, 0), time(18, 0), "UTC")
        assert refused.value.field == "schedule"
    with pytest.raises(ValidationError, match="opens and closes at 08:00"):
        WindowTrigger(timedelta(hours=1), time(8, 0), time(8, 0), "UTC")
    with pytest.raises(ValidationError, match="at least one weekday"):
        WindowTrigger(timedelta(hours=1), time(8, 0), time(9, 0), "UTC", frozenset())
    with pytest.raises(ValidationError) as refused:
        WindowTrigger(timedelta(hours=1), time(8, 0), time(9, 0), "Mars/Olympus_Mons")
    assert refused.value.field == "timezone"
    assert WindowTrigger(timedelta(hours=1), time(8, 0), time(9, 0), "UTC").next_fire_time(
        datetime(9999, 12, 31, 12, tzinfo=UTC)) is None
