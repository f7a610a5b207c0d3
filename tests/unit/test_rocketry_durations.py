"""Rocketry's spellings of an interval (``every 2 days 2 hours``, ``every 1h 30min``) and its
``minutely``/``secondly`` windows, through parse_trigger: the arithmetic as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.recurring import IntervalTrigger, interval_text
from cronjob.domain.trigger_parser import parse_trigger
from cronjob_adapters.cron import CronsimEvaluator

EVALUATOR = CronsimEvaluator()
PROPS = settings(max_examples=300, deadline=None)
ANCHOR = "2025-06-21T17:00:00+00:00"
#: Each spelling Rocketry's TimeDelta reads (and weeks, which it lacks), with its length in seconds.
SPELLINGS = {
    "ms": Fraction(1, 1000), "millisecond": Fraction(1, 1000), "milliseconds": Fraction(1, 1000),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), Fraction(1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), Fraction(60)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), Fraction(3600)),
    **dict.fromkeys(("d", "day", "days"), Fraction(86400)),
    **dict.fromkeys(("week", "weeks"), Fraction(604800)),
}
ZONES = st.sampled_from(["America/Sao_Paulo", "America/New_York", "UTC", "Asia/Kolkata", "Australia/Lord_Howe",
                         "Asia/Kathmandu"])
INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC))


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """A count as Rocketry writes one: whole, or with up to three decimals (``1.5``, ``0.125``)."""
    places = draw(st.integers(0, 3))
    return str(Decimal(draw(st.integers(0, 10**5))).scaleb(-places))


@st.composite
def durations(draw: st.DrawFn) -> tuple[str, Fraction]:
    """A duration written in terms (and perhaps a clock duration last) and what it sums to."""
    text, total = "", Fraction(0)
    for index in range(draw(st.integers(1, 5))):
        number, spelling = draw(numbers()), draw(st.sampled_from(sorted(SPELLINGS)))
        separator = draw(st.sampled_from([" ", ", ", ",", ""])) if index else ""
        text += f"{separator}{number}{draw(st.sampled_from(['', ' ']))}{spelling}"
        total += Fraction(number) * SPELLINGS[spelling]
    if draw(st.booleans()):
        hours, minutes, seconds = draw(st.integers(0, 99)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        text += f"{draw(st.sampled_from([' ', ', ']))}{hours:02d}:{minutes:02d}:{seconds:02d}"
        total += hours * 3600 + minutes * 60 + seconds
    return text, total


@PROPS
@given(written=durations())
def test_any_combination_of_units_sums_to_its_total_and_is_shown_as_it(written: tuple[str, Fraction]) -> None:
    text, total = written
    rule = f"every {text} from {ANCHOR}"
    if total.denominator != 1 or total < 1:
        with pytest.raises(ValidationError) as error:
            parse_trigger(rule, "UTC", EVALUATOR)
        assert error.value.field == "schedule"
        assert ("a whole number of seconds" if total.denominator != 1 else "at least 1 second") in error.value.message
        return
    trigger = parse_trigger(rule, "UTC", EVALUATOR)
    assert trigger == IntervalTrigger(timedelta(seconds=int(total)), datetime(2025, 6, 21, 17, tzinfo=UTC))
    # shown as today's intervals are, in the largest unit that divides it, and read back as the same rule
    assert trigger.expression == f"every {interval_text(timedelta(seconds=int(total)))} from {ANCHOR}"
    assert parse_trigger(trigger.expression, "UTC", EVALUATOR) == trigger


@PROPS
@given(now=INSTANTS, zone=ZONES, second=st.integers(0, 59), millisecond=st.integers(0, 999),
       word=st.sampled_from(["after", "starting", "on", "between"]))
def test_minutely_in_a_window_runs_once_a_minute_when_the_window_opens(
        now: datetime, zone: str, second: int, millisecond: int, word: str) -> None:
    bound = f"{second:02d}.{millisecond:03d}"
    rule = f"minutely {word} {bound}" + (" and 59" if word == "between" else "")
    trigger = parse_trigger(rule, zone, EVALUATOR, now=now)
    first = trigger.next_fire_time(now)
    assert first is not None and now < first <= now + timedelta(minutes=1)
    for fire in (first, trigger.next_fire_time(first)):
        assert fire is not None
        local = fire.astimezone(ZoneInfo(zone))
        assert (local.second, local.microsecond) == (second, millisecond * 1000)
    assert trigger.next_fire_time(first) == first + timedelta(minutes=1)
    assert parse_trigger(trigger.expression, zone, EVALUATOR) == trigger  # shown, taken back


@PROPS
@given(now=INSTANTS, zone=ZONES, millisecond=st.integers(0, 999), word=st.sampled_from(["after", "starting", "on"]))
def test_secondly_in_a_window_runs_once_a_second_when_the_window_opens(
        now: datetime, zone: str, millisecond: int, word: str) -> None:
    trigger = parse_trigger(f"secondly {word} {millisecond}", zone, EVALUATOR, now=now)
    first = trigger.next_fire_time(now)
    assert first is not None and now < first <= now + timedelta(seconds=1)
    assert first.microsecond == millisecond * 1000
    assert trigger.next_fire_time(first) == first + timedelta(seconds=1)
    assert parse_trigger(trigger.expression, zone, EVALUATOR) == trigger
