"""A recurring rule that skips listed dates (``weekly on mon-fri at 09:00 except 2026-12-25``) through
the API: ``GET /v1/rules/preview``, ``POST /v1/schedules`` (and the batch), ``/upcoming`` and
``PATCH``; the rule kept as its canonical text and taken back, the 422s naming ``schedule``, and a
schedule run by the container's dispatcher on SQLite, the rule parsed back from the store; a clock
the test drives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.app import AUTH
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures
from tests.support.rules_api import (
    TEXT,
    check_moved_then_respelt,
    check_refused_on_every_route,
    create,
    local,
    preview,
    run_on_sqlite,
)

#: Tuesday 2026-01-20 09:00 in São Paulo (12:00 UTC).
NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
BUSINESS_DAYS = "monday,tuesday,wednesday,thursday,friday"


@pytest.mark.parametrize(("rule", "kept", "first_runs"), [
    # Wednesday and Thursday listed: from Tuesday 09:00, Friday's run, then Monday's.
    ("weekly on mon-fri at 09:00 except 2026-01-22,2026-01-21", f"weekly on {BUSINESS_DAYS} at 09:00 except "
                                                                 "2026-01-21,2026-01-22",
     ["2026-01-23T09:00:00-03:00", "2026-01-26T09:00:00-03:00"]),
    # every 10 seconds, but not today: the first run is at the start of tomorrow, in São Paulo.
    ("every 10 seconds except 2026-01-20", "every 10 seconds from 2026-01-20T12:00:00+00:00 except 2026-01-20",
     ["2026-01-21T00:00:00-03:00", "2026-01-21T00:00:10-03:00"]),
    ("every 15 minutes between 08:00 and 18:00 on mon-fri until 2026-01-31 except 2026-01-20",
     f"every 15 minutes between 08:00 and 18:00 on {BUSINESS_DAYS} until 2026-02-01T02:59:59.999000+00:00 except "
     "2026-01-20", ["2026-01-21T08:00:00-03:00", "2026-01-21T08:15:00-03:00"]),
    ("daily between 10:00 and 12:00 from 2026-01-20 except 2026-01-20", "daily at 10:00 from 2026-01-20T03:00:00+00:00 "
                                                                          "except 2026-01-20",
     ["2026-01-21T10:00:00-03:00", "2026-01-22T10:00:00-03:00"]),
    ("cron 0 9 * * 1-5 except 2026-01-21", "0 9 * * 1-5 except 2026-01-21",
     ["2026-01-22T09:00:00-03:00", "2026-01-23T09:00:00-03:00"]),
])
async def test_a_rule_skipping_dates_is_kept_in_one_spelling_and_runs_as_previewed(
        client: httpx.AsyncClient, rule: str, kept: str, first_runs: list[str]) -> None:
    shown = await preview(client, rule, "America/Sao_Paulo", 2)
    assert (shown["schedule"], shown["recurring"], local(shown)) == (kept, True, first_runs)
    created = await create(client, rule)
    assert created["schedule"] == kept and created["next_run_at"] == shown["runs"][0]["at"]
    upcoming = await client.get(f"/v1/schedules/{created['id']}/upcoming", params={"count": 2}, headers=AUTH)
    assert upcoming.status_code == 200, upcoming.text
    assert upcoming.json()["runs"] == shown["runs"]
    again = await preview(client, kept, "America/Sao_Paulo", 2)  # what the API shows, it takes back
    assert (again["schedule"], again["runs"]) == (kept, shown["runs"])


async def test_a_listed_date_is_the_schedule_s_local_date(client: httpx.AsyncClient) -> None:
    """2026-01-21 00:30 in São Paulo is still 2026-01-20 in New York... and 03:30 UTC on the 21st:
    the date is read in the schedule's zone."""
    rule = "daily at 00:30 except 2026-01-21"
    assert local(await preview(client, rule, "America/Sao_Paulo", 1)) == ["2026-01-22T00:30:00-03:00"]
    assert local(await preview(client, rule, "America/New_York", 1)) == ["2026-01-22T00:30:00-05:00"]
    assert local(await preview(client, "daily at 00:30 except 2026-01-20", "Asia/Tokyo", 1)) == [
        "2026-01-21T00:30:00+09:00"]  # 21:00 in Tokyo now: the 20th's run has passed anyway


async def test_a_schedule_moves_to_a_rule_skipping_dates_and_the_same_rule_spelt_otherwise_changes_nothing(
        client: httpx.AsyncClient) -> None:
    created = await create(client, "weekly on mon-fri at 09:30")
    assert created["next_run_at"] == "2026-01-20T12:30:00.000Z"
    await check_moved_then_respelt(client, created["id"], "weekly on mon-fri at 09:30 except 2026-01-20",
                                   "Every Mon-Fri At 9:30 EXCEPT 2026-01-20",
                                   f"weekly on {BUSINESS_DAYS} at 09:30 except 2026-01-20", "2026-01-21T12:30:00.000Z")


#: What 'except' takes, as its 422s say.
TAKES = "a comma list of dates YYYY-MM-DD, each once (2026-12-25,2027-01-01)"


@pytest.mark.parametrize(("rule", "message"), [
    ("daily at 09:00 except 2026-12-25,2027-01-01,2026-12-25",
     f"the date '2026-12-25' is named twice in '2026-12-25,2027-01-01,2026-12-25' after 'except': it takes {TAKES}"),
    ("daily at 09:00 except 2026-02-30", "the date '2026-02-30' after 'except' does not exist (day is out of range "
                                         "for month)"),
    ("daily at 09:00 except 2026-2-3", f"'2026-2-3' after 'except' is not a date YYYY-MM-DD: 'except' takes {TAKES}"),
    ("daily at 09:00 except", f"'except' needs the dates to skip: {TAKES}"),
    ("daily at 09:00 except 2026-12-25,", f"an empty date in the dates '2026-12-25,' after 'except': it takes {TAKES}"),
    ("once @ 2026-12-24 10:00 except 2026-12-25", "'except' skips dates of a recurring rule; a one-off ('once @') runs "
                                                  "on its one date anyway"),
    ("daily at 09:00 except 2026-12-25 until 2027-12-31", "'except' comes last, after 'from' and 'until': '<rule> "
                                                          "[from ...] [until ...] except <dates>'; got the dates "
                                                          "'2026-12-25 until 2027-12-31'"),
    ("daily at 09:00 except 2026-12-25 except 2027-01-01", "a rule takes one 'except': name every date to skip in its "
                                                           "list, comma-separated"),
    # every remaining occurrence listed: refused as a rule that never fires is
    ("daily at 09:00 from 2027-01-01 until 2027-01-02 except 2027-01-01,2027-01-02",
     "'daily at 09:00 from 2027-01-01 until 2027-01-02 except 2027-01-01,2027-01-02' never fires after now: each "
     "occurrence it has left falls on a date listed after 'except'"),
    # a rule that ended says so, as it does without 'except'
    ("daily at 09:00 until 2025-12-31 except 2025-12-25",
     "'daily at 09:00 until 2025-12-31 except 2025-12-25' never fires: it ended at 2026-01-01T02:59:59.999Z"),
])
async def test_a_wrong_date_list_is_a_422_naming_schedule_on_every_route(
        client: httpx.AsyncClient, rule: str, message: str) -> None:
    await check_refused_on_every_route(client, rule, message)


async def test_a_rule_kept_longer_than_300_characters_is_a_422(client: httpx.AsyncClient) -> None:
    """21 dates fit beside a weekday rule (297 characters kept), 22 do not."""
    dates = [f"2026-{month:02d}-{day:02d}" for month in (2, 3, 4) for day in (2, 3, 4, 5, 6, 9, 10)]
    fits = f"weekly on mon-fri at 09:00 except {','.join(dates)}"
    assert len((await preview(client, fits, "America/Sao_Paulo", 1))["schedule"]) == 297
    too_long = f"{fits},2026-05-04"
    answer = await client.post("/v1/schedules", json={"task": TEXT, "schedule": too_long}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "schedule" and "308 characters, more than the 300 a rule may have" in error["message"]


async def test_a_schedule_on_sqlite_does_not_run_on_a_listed_date_and_runs_on_the_next(tmp_path: Path) -> None:
    """Today (Tuesday 2026-01-20 in São Paulo) listed: no run at 09:30 today, tomorrow's runs; the
    rule kept in SQLite as its canonical text and parsed back at each read."""
    rule = "daily at 09:30 except 2026-01-20,2026-01-22"
    async with run_on_sqlite(tmp_path, NOW, rule) as run:
        assert run.created["next_run_at"] == "2026-01-21T12:30:00.000Z"  # not today's 09:30
        assert await run.run_at(datetime(2026, 1, 20, 12, 30, tzinfo=UTC)) == 0
        assert await run.run_at(datetime(2026, 1, 21, 12, 29, 59, tzinfo=UTC)) == 0
        assert await run.run_at(datetime(2026, 1, 21, 12, 30, tzinfo=UTC)) == 1
        stored = await run.stored()
        assert (stored["schedule"], stored["next_run_at"]) == (rule, "2026-01-23T12:30:00.000Z")  # the 22nd skipped
        assert await run.run_at(datetime(2026, 1, 22, 12, 30, tzinfo=UTC)) == 0
        # Down from Friday 08:00 to Sunday 10:00: one run, as the latest due (Sunday 09:30), then Monday's.
        assert await run.run_at(datetime(2026, 1, 25, 13, 0, tzinfo=UTC)) == 1
        stored = await run.stored()
        assert [attempt["scheduled_for"] for attempt in stored["attempts"]] == [
            "2026-01-21T12:30:00.000Z", "2026-01-25T12:30:00.000Z"]
        assert [event["type"] for event in (await run.http.get(
            f"/v1/schedules/{run.created['id']}/events", headers=AUTH)).json()["items"]].count("missed") == 0
        assert stored["status"] == "scheduled" and stored["next_run_at"] == "2026-01-26T12:30:00.000Z"
        assert len(run.sender.sent) == 2
