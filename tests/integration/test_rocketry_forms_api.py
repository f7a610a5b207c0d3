"""Rocketry's condition strings and a repetition in a window of the day through the API:
``GET /v1/rules/preview``, ``POST /v1/schedules`` (and the batch), ``/upcoming`` and ``PATCH``; the
rule kept as its canonical text (what an earlier version reads, where it can), the 422s naming
``schedule``, and a window schedule run by the container's dispatcher on SQLite, the rule parsed back
from the store; a clock the test drives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
import httpx
import pytest

from tests.support.app import AUTH
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures
from tests.support.rules_api import (
    check_moved_then_respelt,
    check_refused_on_every_route,
    create,
    local,
    preview,
    run_on_sqlite,
)

#: Tuesday 2026-01-20 09:00 in São Paulo (12:00 UTC). NOW in tests.support.memory_api is the same.
NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
BUSINESS_DAYS = "monday,tuesday,wednesday,thursday,friday"


async def test_the_memory_api_clock_is_the_one_this_file_counts_from(client: httpx.AsyncClient) -> None:
    shown = await preview(client, "every minute between 00:00 and 23:59", "UTC", 1)
    assert shown["runs"][0]["at"] == "2026-01-20T12:01:00.000Z"


@pytest.mark.parametrize(("rule", "kept", "first_runs"), [
    # Rocketry's once-a-period windows: run once, when the window opens
    ("daily between 10:00 and 12:00", "daily at 10:00", ["2026-01-20T10:00:00-03:00", "2026-01-21T10:00:00-03:00"]),
    ("daily after 18:30", "daily at 18:30", ["2026-01-20T18:30:00-03:00", "2026-01-21T18:30:00-03:00"]),
    ("daily before 08:00", "daily at 00:00", ["2026-01-21T00:00:00-03:00", "2026-01-22T00:00:00-03:00"]),
    ("weekly between Mon and Fri", "weekly on monday at 00:00",
     ["2026-01-26T00:00:00-03:00", "2026-02-02T00:00:00-03:00"]),
    ("monthly starting 3rd", "monthly on 3 at 00:00", ["2026-02-03T00:00:00-03:00", "2026-03-03T00:00:00-03:00"]),
    ("weekly between Mon 09:00 and Fri 17:00", "weekly on monday at 09:00",
     ["2026-01-26T09:00:00-03:00", "2026-02-02T09:00:00-03:00"]),
    ("monthly after 15th 10:00", "monthly on 15 at 10:00", ["2026-02-15T10:00:00-03:00", "2026-03-15T10:00:00-03:00"]),
    ("hourly after 45:00", "45 * * * *", ["2026-01-20T09:45:00-03:00", "2026-01-20T10:45:00-03:00"]),
    ("hourly on 15:00", "15 * * * *", ["2026-01-20T09:15:00-03:00", "2026-01-20T10:15:00-03:00"]),
    ("daily on 10:00", "daily at 10:00", ["2026-01-20T10:00:00-03:00", "2026-01-21T10:00:00-03:00"]),
    # minutely and secondly in a window of each period: every minute (second) from where it opens
    ("minutely after 30", "every minute from 2026-01-20T12:00:30+00:00",
     ["2026-01-20T09:00:30-03:00", "2026-01-20T09:01:30-03:00"]),
    ("minutely between 45 and 15", "every minute from 2026-01-20T12:00:45+00:00",
     ["2026-01-20T09:00:45-03:00", "2026-01-20T09:01:45-03:00"]),
    ("minutely before 30", "every minute from 2026-01-20T12:00:00+00:00",
     ["2026-01-20T09:01:00-03:00", "2026-01-20T09:02:00-03:00"]),
    ("secondly", "every second from 2026-01-20T12:00:00+00:00", ["2026-01-20T09:00:01-03:00", "2026-01-20T09:00:02-03:00"]),
    ("secondly after 500", "every second from 2026-01-20T12:00:00.500000+00:00",
     ["2026-01-20T09:00:00.500-03:00", "2026-01-20T09:00:01.500-03:00"]),
    # Rocketry's durations, kept as their total in the largest unit that divides it
    ("every 2 days 2 hours", "every 50 hours from 2026-01-20T12:00:00+00:00",
     ["2026-01-22T11:00:00-03:00", "2026-01-24T13:00:00-03:00"]),
    ("every 1h 30min", "every 90 minutes from 2026-01-20T12:00:00+00:00",
     ["2026-01-20T10:30:00-03:00", "2026-01-20T12:00:00-03:00"]),
    ("every 10s", "every 10 seconds from 2026-01-20T12:00:00+00:00",
     ["2026-01-20T09:00:10-03:00", "2026-01-20T09:00:20-03:00"]),
    ("every 1h 30min & time of day between 08:00 and 18:00", "every 90 minutes between 08:00 and 18:00",
     ["2026-01-20T09:30:00-03:00", "2026-01-20T11:00:00-03:00"]),
    # a repetition in a window, ours and Rocketry's spelling
    ("every 15 minutes between 08:00 and 18:00 on mon-fri", f"every 15 minutes between 08:00 and 18:00 on {BUSINESS_DAYS}",
     ["2026-01-20T09:15:00-03:00", "2026-01-20T09:30:00-03:00"]),
    ("every 15 minutes & time of day between 08:00 and 18:00 & time of week between Mon and Fri",
     f"every 15 minutes between 08:00 and 18:00 on {BUSINESS_DAYS}",
     ["2026-01-20T09:15:00-03:00", "2026-01-20T09:30:00-03:00"]),
    ("every mon-fri at 9:30", f"weekly on {BUSINESS_DAYS} at 09:30", ["2026-01-20T09:30:00-03:00",
                                                                     "2026-01-21T09:30:00-03:00"]),
])
async def test_a_rocketry_form_is_kept_as_the_rule_that_means_it_and_runs_as_previewed(
        client: httpx.AsyncClient, rule: str, kept: str, first_runs: list[str]) -> None:
    shown = await preview(client, rule, "America/Sao_Paulo", 2)
    assert (shown["schedule"], local(shown)) == (kept, first_runs)
    created = await create(client, rule)
    assert created["schedule"] == kept and created["next_run_at"] == shown["runs"][0]["at"]
    upcoming = await client.get(f"/v1/schedules/{created['id']}/upcoming", params={"count": 2}, headers=AUTH)
    assert upcoming.status_code == 200, upcoming.text
    assert upcoming.json()["runs"] == shown["runs"]
    again = await preview(client, kept, "America/Sao_Paulo", 2)  # what the API shows, it takes back
    assert (again["schedule"], again["runs"]) == (kept, shown["runs"])


async def test_a_window_previews_its_business_hours_and_a_dst_change_inside_it(client: httpx.AsyncClient) -> None:
    # Friday 17:15 to Monday: the last two of Friday's window, then Monday's from 08:00.
    shown = await preview(client, "every 15 minutes between 08:00 and 18:00 on mon-fri from 2026-01-23 17:15",
                          "America/Sao_Paulo", 4)
    assert local(shown) == ["2026-01-23T17:15:00-03:00", "2026-01-23T17:30:00-03:00", "2026-01-23T17:45:00-03:00",
                            "2026-01-26T08:00:00-03:00"]
    # New York falls back 02:00 -> 01:00 on 2026-11-01: a night window runs its repeated hour too.
    night = await preview(client, "every hour between 23:00 and 03:00 from 2026-10-31 12:00", "America/New_York", 6)
    assert local(night) == ["2026-10-31T23:00:00-04:00", "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00",
                            "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00", "2026-11-01T23:00:00-05:00"]


async def test_a_schedule_moves_to_a_window_and_the_same_window_spelt_otherwise_changes_nothing(
        client: httpx.AsyncClient) -> None:
    created = await create(client, "daily at 08:00")
    await check_moved_then_respelt(client, created["id"], "every 30 minutes & time of day between 10:00 and 11:00",
                                   "Every 1800 Seconds Between 10:00 And 11:00 on mon-sun",
                                   "every 30 minutes between 10:00 and 11:00", "2026-01-20T13:00:00.000Z")


#: How a window is written, as its 422s say.
WINDOW = "every <n> seconds|minutes|hours between HH:MM[:SS] and HH:MM[:SS] [on <weekday>[-<weekday>][,...]]"


@pytest.mark.parametrize(("rule", "message"), [
    ("after task 'fetch' succeeded",
     "\"after task 'fetch' succeeded\" is a Rocketry condition on the state of tasks or of the scheduler: here a "
     "schedule runs at the times of its rule alone, each occurrence once. Give it a time rule ('daily at 10:00', "
     "'every 10 minutes'); to run one task after another, run both in one task, or create the second schedule when "
     "the first one's status webhook (callback_url) says it succeeded"),
    ("time of day between 08:00 and 18:00",
     "'time of day between 08:00 and 18:00' alone is true all through its window (Rocketry runs the task on every "
     "cycle of its scheduler there): here a window restricts a repetition, as in 'every 15 minutes between 08:00 and "
     "18:00', or runs once when it opens, as in 'daily at 08:00'"),
    ("daily & time of week between Mon and Fri",
     "'daily & time of week between Mon and Fri': of Rocketry's combinations ('&', '|', '~') a rule here takes only "
     "a repetition in a window, 'every <n> <unit> & time of day between HH:MM and HH:MM [& time of week between "
     "<day> and <day>]' (or 'every 15 minutes between 08:00 and 18:00 on mon-fri'); for one rule or another ('|') "
     "create a schedule for each, for other combinations write cron ('cron */15 8-17 * * mon-fri')"),
    ("every 15 minutes between 8 and 18", f"'every 15 minutes between 8 and 18': a repetition in a window of the day "
                                          f"is '{WINDOW}'"),
    ("every 2 days between 08:00 and 18:00", "a window opens once a day, and repeats within it every so many "
                                             f"seconds, minutes or hours ('{WINDOW}'): once a day is 'daily at "
                                             "HH:MM[:SS]'"),
    ("every 15 minutes between 09:00 and 09:00", "the window opens and closes at 09:00: a window ends at another time "
                                                 "of day (all day long is 'every <n> <unit>')"),
    ("daily between 10:00 and 24:00", "invalid time of day '24:00' (expected HH:MM[:SS], 00:00 to 23:59:59)"),
    ("hourly after 15:30", "'hourly' at '15:30' of each hour: a rule here runs on a minute of the hour (MM:00), as "
                           "'cron <minute> * * * *' does"),
    ("minutely between 15 and 75", "invalid second of the minute '75' (expected SS[.fff], 00 to 59.999: a rule runs to "
                                   "the millisecond)"),
    ("secondly after 1000", "invalid millisecond of the second '1000' (expected 0 to 999, whole: a rule runs to the "
                            "millisecond)"),
    ("every 500 ms", "the interval '500 ms' is 0.5 seconds: an interval is a whole number of seconds"),
    ("every 0h 0min", "the interval must be at least 1 second"),
    ("every 999999999 days 24 hours", "the interval '999999999 days 24 hours' is too long"),
])
async def test_a_rocketry_form_with_no_instant_meaning_is_a_422_naming_schedule_on_every_route(
        client: httpx.AsyncClient, rule: str, message: str) -> None:
    await check_refused_on_every_route(client, rule, message)


async def test_a_window_schedule_on_sqlite_runs_in_its_window_and_coalesces_after_downtime(tmp_path: Path) -> None:
    """Kept in SQLite as its canonical text and parsed back at each read; each run by the
    container's dispatcher at the time the clock is set to."""
    async with run_on_sqlite(tmp_path, NOW, "every 20 minutes between 09:00 and 10:00 on mon-fri") as run:
        created, run_at, sender = run.created, run.run_at, run.sender
        assert created["next_run_at"] == "2026-01-20T12:20:00.000Z"  # 09:20 in São Paulo
        assert await run_at(datetime(2026, 1, 20, 12, 19, 59, tzinfo=UTC)) == 0
        assert await run_at(datetime(2026, 1, 20, 12, 20, tzinfo=UTC)) == 1
        assert await run_at(datetime(2026, 1, 20, 12, 40, tzinfo=UTC)) == 1
        stored = await run.stored()
        assert stored["next_run_at"] == "2026-01-21T12:00:00.000Z"  # 10:00 closes the window: tomorrow 09:00
        # Down from Wednesday 08:00 to Friday 09:50: one run, as the latest due (Friday 09:40), then Monday's.
        assert await run_at(datetime(2026, 1, 23, 12, 50, tzinfo=UTC)) == 1
        stored = await run.stored()
        assert stored["schedule"] == f"every 20 minutes between 09:00 and 10:00 on {BUSINESS_DAYS}"
        assert [attempt["scheduled_for"] for attempt in stored["attempts"]] == [
            "2026-01-20T12:20:00.000Z", "2026-01-20T12:40:00.000Z", "2026-01-23T12:40:00.000Z"]
        assert stored["next_run_at"] == "2026-01-26T12:00:00.000Z"
        assert len(sender.sent) == 3


async def test_minutely_in_a_window_on_sqlite_is_kept_as_an_interval_and_runs_when_the_window_opens(
        tmp_path: Path) -> None:
    """``minutely after 30`` kept as the interval form earlier versions read, parsed back from
    the store at each read, run once a minute at its 30th second."""
    async with run_on_sqlite(tmp_path, NOW, "minutely after 30") as run:
        assert run.created["schedule"] == "every minute from 2026-01-20T12:00:30+00:00"
        assert run.created["next_run_at"] == "2026-01-20T12:00:30.000Z"
        assert await run.run_at(datetime(2026, 1, 20, 12, 0, 29, 999000, tzinfo=UTC)) == 0
        assert await run.run_at(datetime(2026, 1, 20, 12, 0, 30, tzinfo=UTC)) == 1
        assert await run.run_at(datetime(2026, 1, 20, 12, 1, 29, tzinfo=UTC)) == 0
        assert await run.run_at(datetime(2026, 1, 20, 12, 1, 30, tzinfo=UTC)) == 1
        stored = await run.stored()
        assert (stored["schedule"], stored["next_run_at"]) == (
            "every minute from 2026-01-20T12:00:30+00:00", "2026-01-20T12:02:30.000Z")
        assert len(run.sender.sent) == 2
