"""instant_text: the one text form of an instant, and the domain's instants written with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob.domain.instants import instant_text
from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import MisfirePolicy
from cronjob_adapters.web.instants import shown_instant, wall_time_text
from tests.support.builders import T0, one_off

SHAPE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

#: Any fixed offset Python allows (under a day, to the microsecond).
offsets = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59, seconds=-59, microseconds=-999_999),
                        max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999))
# Local times whose UTC instant stays within the years 1 to 9999.
instants = st.builds(lambda local, offset: local.replace(tzinfo=timezone(offset)),
                     st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), offsets)


def _millisecond_of(value: datetime) -> datetime:
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@given(instants)
def test_the_text_is_the_utc_instant_truncated_to_its_millisecond(value: datetime) -> None:
    text = instant_text(value)
    assert SHAPE.match(text), text
    back = datetime.fromisoformat(text)
    assert back == _millisecond_of(value) and back.utcoffset() == timedelta(0)
    assert timedelta(0) <= value - back < timedelta(milliseconds=1)  # never later than the instant


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)), offsets)
def test_the_same_instant_at_any_offset_is_the_same_text(value: datetime, offset: timedelta) -> None:
    assert instant_text(value) == instant_text(value.astimezone(timezone(offset))) == instant_text(value.astimezone(UTC))


@pytest.mark.parametrize(("value", "text"), [
    (datetime(2026, 11, 27, 21, tzinfo=UTC), "2026-11-27T21:00:00.000Z"),
    (datetime(2026, 11, 27, 18, 0, 0, 123999, tzinfo=timezone(timedelta(hours=-3))), "2026-11-27T21:00:00.123Z"),
    (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
    (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
])
def test_examples(value: datetime, text: str) -> None:
    assert instant_text(value) == text


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        instant_text(datetime(2026, 11, 27, 21))


def test_the_events_and_delivery_statuses_write_their_instants_so() -> None:
    schedule = one_off(T0, now=T0 - timedelta(minutes=1))  # T0 is 12:00:00.123
    assert schedule.events[-1].data == {"next_run_at": "2030-01-15T12:00:00.123Z"}
    ran = T0 + timedelta(microseconds=456)  # the dispatcher's clock, which stores truncate
    schedule.claim(owner="r1", attempt_id="a1", now=ran, until=ran + timedelta(seconds=30))
    schedule.mark_started(attempt_id="a1", now=ran)
    assert schedule.events[-1].data == {"owner": "r1", "occurrence": "2030-01-15T12:00:00.123Z"}
    retry_at = ran + timedelta(seconds=2)
    schedule.fail(attempt_id="a1", now=ran, error=ErrorInfo("boom", "it broke", retryable=True),
                  decision=RetryDecision(retry_at, "retry 2 of 3"))
    assert schedule.events[-1].data == {"retry_at": "2030-01-15T12:00:02.123Z", "reason": "retry 2 of 3"}
    schedule.claim(owner="r1", attempt_id="a2", now=retry_at, until=retry_at + timedelta(seconds=30))
    schedule.succeed(attempt_id="a2", now=retry_at, provider_message_id="wamid.1")
    read_at = datetime(2030, 1, 15, 9, 0, 5, tzinfo=timezone(timedelta(hours=-3)))
    schedule.record_delivery_status(status="read", at=read_at, now=retry_at)
    assert schedule.delivery == {"status": "read", "read_at": "2030-01-15T12:00:05.000Z"}
    assert schedule.events[-1].data == {"at": "2030-01-15T12:00:05.000Z"}


def test_a_missed_deadline_names_it_so() -> None:
    schedule = one_off(T0, now=T0 - timedelta(minutes=1))
    schedule.send_by, schedule.misfire = T0 + timedelta(seconds=1), MisfirePolicy(grace=None)
    reason = schedule.misfire_reason(T0 + timedelta(minutes=1))
    assert reason == "not run by its send_by deadline 2030-01-15T12:00:01.123Z"


@pytest.mark.parametrize(("stored", "shown"), [
    ("2025-06-21T14:00:00-03:00", "2025-06-21T17:00:00.000Z"),
    ("2025-06-21T17:00:00.123456+00:00", "2025-06-21T17:00:00.123Z"),
    ("2025-06-21T17:00:00.123Z", "2025-06-21T17:00:00.123Z"),
    ("", ""),  # rescheduled_from of a schedule that had no next run
    ("2025-06-21T17:00:00", "2025-06-21T17:00:00"),  # no offset: no instant, shown as stored
    ("9999-12-31T23:00:00-03:00", "9999-12-31T23:00:00-03:00"),  # past the calendar in UTC
    ("soon", "soon"),
])
def test_the_api_shows_stored_text_as_an_instant_only_when_it_is_one(stored: str, shown: str) -> None:
    assert shown_instant(stored) == shown


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(["America/Sao_Paulo", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"]))
def test_a_wall_time_names_the_same_millisecond_as_the_instant_text(value: datetime, zone: str) -> None:
    text = wall_time_text(value, ZoneInfo(zone))
    read = datetime.fromisoformat(text)
    assert read == datetime.fromisoformat(instant_text(value))  # the same instant, cut to the millisecond
    assert read.utcoffset() == value.astimezone(ZoneInfo(zone)).utcoffset()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?[+-]\d\d:\d\d", text), text
    assert ("." in text) == (value.microsecond >= 1000)  # milliseconds only when there are some


def test_a_wall_time_past_the_calendar_is_an_overflow() -> None:
    assert wall_time_text(datetime(2026, 3, 29, 1, 0, 0, 999, tzinfo=UTC), ZoneInfo("Europe/Berlin")) == \
        "2026-03-29T03:00:00+02:00"
    with pytest.raises(OverflowError):
        wall_time_text(datetime(9999, 12, 31, 23, tzinfo=UTC), ZoneInfo("Pacific/Kiritimati"))
