"""Monthly rules (``monthly on 1,15,last at 09:00``) through the API: ``GET /v1/rules/preview``, ``POST /v1/schedules`` and ``/upcoming``, ``PATCH``
(the 422s on every route: ``tests/integration/test_api.py``), and runs by the container's dispatcher on SQLite (the rule stored as its canonical text
and parsed back), coalescing after downtime; a clock the test drives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cronjob.domain.schedule import ScheduleStatus
from tests.support.app import AUTH
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures
from tests.support.rules_api import create, local, preview, run_on_sqlite

#: A Tuesday in January 2026 (not a leap year); Berlin's clocks jump 02:00 -> 03:00 on 2026-03-29.
NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


async def test_a_monthly_rule_previews_on_its_days_and_runs_as_previewed(client: httpx.AsyncClient) -> None:
    shown = await preview(client, "every month on 1st, 15th, LAST at 9:00", "America/Sao_Paulo", 6)
    assert (shown["schedule"], shown["recurring"]) == ("monthly on 1,15,last at 09:00", True)
    assert local(shown) == ["2026-01-31T09:00:00-03:00", "2026-02-01T09:00:00-03:00", "2026-02-15T09:00:00-03:00",
                            "2026-02-28T09:00:00-03:00", "2026-03-01T09:00:00-03:00", "2026-03-15T09:00:00-03:00"]
    assert shown["runs"][0]["at"] == "2026-01-31T12:00:00.000Z"
    created = await create(client, "every month on 1st, 15th, LAST at 9:00")
    assert created["schedule"] == shown["schedule"] and created["next_run_at"] == shown["runs"][0]["at"]
    upcoming = await client.get(f"/v1/schedules/{created['id']}/upcoming", params={"count": 6}, headers=AUTH)
    assert upcoming.status_code == 200, upcoming.text
    assert upcoming.json()["runs"] == shown["runs"]


async def test_a_day_a_month_lacks_has_no_run_in_it_and_a_dst_gap_runs_when_it_ends(
        client: httpx.AsyncClient) -> None:
    assert local(await preview(client, "monthly on 31st at 10:00", "UTC", 4)) == [
        "2026-01-31T10:00:00+00:00", "2026-03-31T10:00:00+00:00", "2026-05-31T10:00:00+00:00",
        "2026-07-31T10:00:00+00:00"]
    # February 2026 has no 29th; Berlin skips 02:00-03:00 on 2026-03-29: that run is at 03:00.
    assert local(await preview(client, "monthly on 29 at 02:30", "Europe/Berlin", 3)) == [
        "2026-01-29T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-04-29T02:30:00+02:00"]
    assert local(await preview(client, "monthly", "Europe/Berlin", 2)) == [
        "2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"]


async def test_a_monthly_rule_until_an_end_stops_there(client: httpx.AsyncClient) -> None:
    created = await create(client, "monthly on last at 18:00 until 2026-05-31")
    assert created["schedule"] == "monthly on last at 18:00 until 2026-06-01T02:59:59.999000+00:00"
    upcoming = await client.get(f"/v1/schedules/{created['id']}/upcoming", params={"count": 10}, headers=AUTH)
    assert local(upcoming.json()) == ["2026-01-31T18:00:00-03:00", "2026-02-28T18:00:00-03:00",
                                      "2026-03-31T18:00:00-03:00", "2026-04-30T18:00:00-03:00",
                                      "2026-05-31T18:00:00-03:00"]


@pytest.mark.parametrize("rule", ["monthly", "every month on 31st,1st at 23:59:59", "monthly on 15 from 2026-06-01",
                                  "every 2 weeks", "every week from 2026-03-20T09:00:00+01:00"])
async def test_every_monthly_or_weekly_rule_the_api_shows_it_takes_back(client: httpx.AsyncClient, rule: str) -> None:
    created = await create(client, rule, "Europe/Berlin")
    kept = created["schedule"]
    again = await preview(client, kept, "Europe/Berlin", 5)
    assert again["schedule"] == kept
    assert again["runs"] == (await preview(client, rule, "Europe/Berlin", 5))["runs"]
    moved = await client.patch(f"/v1/schedules/{created['id']}", json={"schedule": kept}, headers=AUTH)
    assert moved.status_code == 200, moved.text
    assert moved.json()["schedule"] == kept and moved.json()["updated_at"] == created["updated_at"]  # the same rule


async def test_a_recurring_schedule_moves_to_a_monthly_rule_and_the_same_rule_spelt_otherwise_changes_nothing(
        client: httpx.AsyncClient) -> None:
    created = await create(client, "daily at 08:00")
    moved = await client.patch(f"/v1/schedules/{created['id']}", json={"schedule": "every month on 15th at 08:00"},
                               headers=AUTH)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["schedule"], moved.json()["next_run_at"]) == ("monthly on 15 at 08:00",
                                                                       "2026-02-15T11:00:00.000Z")
    events = (await client.get(f"/v1/schedules/{created['id']}/events", headers=AUTH)).json()
    again = await client.patch(f"/v1/schedules/{created['id']}", json={"schedule": "Monthly on 15 at 8:00"},
                               headers=AUTH)
    assert again.status_code == 200 and again.json()["updated_at"] == moved.json()["updated_at"]
    assert (await client.get(f"/v1/schedules/{created['id']}/events", headers=AUTH)).json() == events


async def test_a_monthly_schedule_on_sqlite_runs_on_its_days_and_coalesces_after_downtime(tmp_path: Path) -> None:
    """Kept in SQLite as its canonical text and parsed back at each read; each run by the
    container's dispatcher at the time the clock is set to."""
    async with run_on_sqlite(tmp_path, NOW, "monthly on 15th, last at 18:00") as run:
        created, run_at, sender = run.created, run.run_at, run.sender
        assert await run_at(datetime(2026, 1, 31, 20, 59, tzinfo=UTC)) == 0  # 17:59 in São Paulo: not yet
        assert await run_at(datetime(2026, 1, 31, 21, 0, tzinfo=UTC)) == 1
        stored = await run.stored()
        assert (stored["status"], stored["next_run_at"]) == ("scheduled", "2026-02-15T21:00:00.000Z")
        # Down from before Feb 15 to April 20: Feb 15, Feb 28, Mar 15, Mar 31 and Apr 15 fell due;
        # one run, as the latest of them, then on to April's last day.
        assert await run_at(datetime(2026, 4, 20, 12, 0, tzinfo=UTC)) == 1
        assert await run_at(datetime(2026, 4, 20, 12, 0, 1, tzinfo=UTC)) == 0
        stored = await run.stored()
        assert stored["schedule"] == "monthly on 15,last at 18:00"
        assert stored["status"] == ScheduleStatus.SCHEDULED.value
        assert [attempt["scheduled_for"] for attempt in stored["attempts"]] == [
            "2026-01-31T21:00:00.000Z", "2026-04-15T21:00:00.000Z"]
        assert stored["next_run_at"] == "2026-04-30T21:00:00.000Z"
        assert [message.idempotency_key for message in sender.sent] == [
            f"{created['id']}:2026-01-31T21:00:00+00:00", f"{created['id']}:2026-04-15T21:00:00+00:00"]
