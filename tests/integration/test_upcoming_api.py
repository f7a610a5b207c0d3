"""``GET /v1/schedules/{id}/upcoming`` and ``GET /v1/rules/preview`` through the container
(store=memory, sender=recording, a clock the test drives), in memory via httpx's ASGI transport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, make_container
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures

#: A Friday, two days before Berlin's clocks jump from 02:00 to 03:00 (Sunday 2026-03-29).
NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
TEXT = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}


async def create(client: httpx.AsyncClient, schedule: str, timezone: str = "America/Sao_Paulo",
                 **fields: Any) -> dict[str, Any]:
    created = await client.post("/v1/schedules", headers=AUTH,
                                json={"task": TEXT, "schedule": schedule, "timezone": timezone, **fields})
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def upcoming(client: httpx.AsyncClient, schedule_id: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(f"/v1/schedules/{schedule_id}/upcoming", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def preview(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/v1/rules/preview", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def local(body: dict[str, Any]) -> list[str]:
    return [run["local"] for run in body["runs"]]


async def test_a_daily_time_in_berlin_s_spring_forward_gap_runs_when_the_gap_ends(client: httpx.AsyncClient) -> None:
    shown = await preview(client, schedule="every day at 02:30", timezone="Europe/Berlin", count=3)
    assert shown == {"schedule": "daily at 02:30", "timezone": "Europe/Berlin", "recurring": True, "runs": [
        {"at": "2026-03-28T01:30:00.000Z", "local": "2026-03-28T02:30:00+01:00", "retry": False},
        {"at": "2026-03-29T01:00:00.000Z", "local": "2026-03-29T03:00:00+02:00", "retry": False},  # the gap day
        {"at": "2026-03-30T00:30:00.000Z", "local": "2026-03-30T02:30:00+02:00", "retry": False}]}
    # Created, the schedule runs at the times the preview showed.
    created = await create(client, "every day at 02:30", "Europe/Berlin")
    assert created["next_run_at"] == shown["runs"][0]["at"]
    assert await upcoming(client, created["id"], count=3) == {
        "schedule": "daily at 02:30", "timezone": "Europe/Berlin", "status": "scheduled", "runs": shown["runs"]}


async def test_the_count_defaults_to_five_and_the_runs_follow_the_rule(client: httpx.AsyncClient) -> None:
    created = await create(client, "every day at 02:30", "Europe/Berlin")
    assert len((await upcoming(client, created["id"]))["runs"]) == 5
    hundred = await upcoming(client, created["id"], count=100)
    assert len(hundred["runs"]) == 100 and hundred["runs"][-1]["local"] == "2026-07-05T02:30:00+02:00"


async def test_a_cron_rule_in_new_york_keeps_its_wall_time_across_the_change(client: httpx.AsyncClient,
                                                                              clock: FixedClock) -> None:
    clock.set(datetime(2026, 3, 5, 12, tzinfo=UTC))  # New York springs forward on Sunday 2026-03-08
    shown = await preview(client, schedule="cron 0 9 * * 1-5", timezone="America/New_York", count=3)
    assert shown["schedule"] == "0 9 * * 1-5" and shown["recurring"] is True
    assert local(shown) == ["2026-03-05T09:00:00-05:00", "2026-03-06T09:00:00-05:00", "2026-03-09T09:00:00-04:00"]
    assert [run["at"] for run in shown["runs"]] == [
        "2026-03-05T14:00:00.000Z", "2026-03-06T14:00:00.000Z", "2026-03-09T13:00:00.000Z"]


async def test_cron_s_shorthands_are_kept_as_their_five_fields(client: httpx.AsyncClient) -> None:
    shown = await preview(client, schedule="@weekly", timezone="America/Sao_Paulo", count=2)
    assert shown["schedule"] == "0 0 * * 0"  # Sunday, as in cron
    assert local(shown) == ["2026-03-29T00:00:00-03:00", "2026-04-05T00:00:00-03:00"]
    created = await create(client, "cron @daily")
    assert created["schedule"] == "0 0 * * *" and created["next_run_at"] == "2026-03-28T03:00:00.000Z"


async def test_an_interval_is_shown_with_its_anchor_and_milliseconds_when_it_has_them(
        client: httpx.AsyncClient) -> None:
    shown = await preview(client, schedule="every 90 minutes from 2026-03-27T12:00:00.250Z", timezone="UTC", count=2)
    assert shown["schedule"] == "every 90 minutes from 2026-03-27T12:00:00.250000+00:00"
    # The anchor is a quarter of a second after now: the first run.
    assert shown["runs"] == [{"at": "2026-03-27T12:00:00.250Z", "local": "2026-03-27T12:00:00.250+00:00", "retry": False},
                             {"at": "2026-03-27T13:30:00.250Z", "local": "2026-03-27T13:30:00.250+00:00", "retry": False}]


async def test_weeks_are_elapsed_time_not_wall_time(client: httpx.AsyncClient) -> None:
    shown = await preview(client, schedule="every 2 weeks from 2026-03-27T14:00:00+01:00", timezone="Europe/Berlin",
                          count=2)
    assert shown["schedule"] == "every 14 days from 2026-03-27T13:00:00+00:00"  # as earlier versions read it
    # 14 × 24 hours later, the clocks in Berlin have moved forward an hour: 15:00, not 14:00.
    assert local(shown) == ["2026-03-27T14:00:00+01:00", "2026-04-10T15:00:00+02:00"]
    same = await preview(client, schedule="every 14 days from 2026-03-27T13:00:00Z", timezone="UTC", count=1)
    assert same["schedule"] == shown["schedule"]


async def test_runs_whose_wall_time_falls_past_the_calendar_are_left_out(client: httpx.AsyncClient) -> None:
    rule = "every 1 second from 9999-12-31T09:59:58Z"  # in Kiritimati (+14) that is 23:59:58, then the year 10000
    shown = await preview(client, schedule=rule, timezone="Pacific/Kiritimati", count=5)
    assert local(shown) == ["9999-12-31T23:59:58+14:00", "9999-12-31T23:59:59+14:00"]
    assert len((await preview(client, schedule=rule, timezone="UTC", count=5))["runs"]) == 5


async def test_a_one_off_runs_once(client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    shown = await preview(client, schedule="once @ 2026-03-29 10:00", timezone="Europe/Berlin", count=5)
    assert shown == {"schedule": "once @ 2026-03-29T08:00:00+00:00", "timezone": "Europe/Berlin", "recurring": False,
                     "runs": [{"at": "2026-03-29T08:00:00.000Z", "local": "2026-03-29T10:00:00+02:00", "retry": False}]}
    message = (await client.post("/schedule-message", headers=AUTH,
                                 json={**SEED, "send_at": "2026-03-28T14:00:00-03:00"})).json()
    assert (await upcoming(client, message["id"]))["runs"] == [
        {"at": "2026-03-28T17:00:00.000Z", "local": "2026-03-28T14:00:00-03:00", "retry": False}]
    # Sent: it ended, and runs no more.
    clock.set(datetime(2026, 3, 28, 17, tzinfo=UTC))
    dispatcher = container.dispatcher()
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    assert await upcoming(client, message["id"]) == {"schedule": "once @ 2026-03-28T17:00:00+00:00",
                                                     "timezone": "America/Sao_Paulo", "status": "succeeded",
                                                     "runs": []}


async def test_a_run_too_late_to_run_is_not_shown(client: httpx.AsyncClient, container: Container,
                                                   clock: FixedClock) -> None:
    message = (await client.post("/schedule-message", headers=AUTH, json={
        **SEED, "send_at": "2026-03-28T14:00:00-03:00", "send_by": "2026-03-28T15:00:00-03:00"})).json()
    daily = await create(client, "daily at 09:00", misfire_grace_seconds=3600)  # 12:00 UTC
    clock.set(datetime(2026, 3, 28, 17, 30, tzinfo=UTC))  # the scheduler was down since before either fell due
    assert (await upcoming(client, message["id"]))["runs"][0]["at"] == "2026-03-28T17:00:00.000Z"  # late, in time
    assert [run["at"] for run in (await upcoming(client, daily["id"], count=2))["runs"]] == [
        "2026-03-29T12:00:00.000Z", "2026-03-30T12:00:00.000Z"]  # 5.5 h late: the 28th's is missed
    clock.set(datetime(2026, 3, 28, 18, 1, tzinfo=UTC))
    assert (await upcoming(client, message["id"]))["runs"] == []  # past its send_by
    # ... as the scheduler then does.
    dispatcher = container.dispatcher()
    assert await dispatcher.dispatch_due() == 2
    await dispatcher.drain(5)
    assert (await client.get(f"/v1/schedules/{message['id']}", headers=AUTH)).json()["status"] == "missed"
    after = (await client.get(f"/v1/schedules/{daily['id']}", headers=AUTH)).json()
    assert after["status"] == "scheduled" and after["next_run_at"] == "2026-03-29T12:00:00.000Z"


async def test_a_paused_schedule_shows_what_a_resume_now_would_do(client: httpx.AsyncClient,
                                                                   clock: FixedClock) -> None:
    created = await create(client, "daily at 09:00")  # São Paulo: 12:00 UTC, the first on Saturday the 28th
    path = f"/v1/schedules/{created['id']}"
    assert (await client.post(f"{path}/pause", headers=AUTH)).status_code == 200
    waiting = await upcoming(client, created["id"], count=2)
    assert waiting["status"] == "paused"
    assert [run["at"] for run in waiting["runs"]] == ["2026-03-28T12:00:00.000Z", "2026-03-29T12:00:00.000Z"]
    clock.set(datetime(2026, 3, 30, 15, tzinfo=UTC))  # two occurrences fell due while it was paused
    overdue = await upcoming(client, created["id"], count=2)
    assert local(overdue) == ["2026-03-31T09:00:00-03:00", "2026-04-01T09:00:00-03:00"]  # skipped, not made up for
    resumed = (await client.post(f"{path}/resume", headers=AUTH)).json()
    assert resumed["next_run_at"] == overdue["runs"][0]["at"]
    assert (await upcoming(client, created["id"], count=2))["runs"] == overdue["runs"]


async def test_a_run_waiting_to_retry_comes_first_and_says_so(client: httpx.AsyncClient, container: Container,
                                                              clock: FixedClock) -> None:
    created = await create(client, "every 1 hour from 2026-03-27T12:00:00Z", "UTC",
                           retry={"max_attempts": 3, "initial_delay_seconds": 90 * 60, "max_delay_seconds": 90 * 60})
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(DeliveryError("131000", "try later", retryable=True))
    clock.set(datetime(2026, 3, 27, 13, tzinfo=UTC))
    dispatcher = container.dispatcher()
    assert await dispatcher.dispatch_due() == 1
    await dispatcher.drain(5)
    waiting = (await client.get(f"/v1/schedules/{created['id']}", headers=AUTH)).json()
    assert waiting["status"] == "scheduled" and waiting["send_at"] == "2026-03-27T13:00:00.000Z"
    retry_at = datetime.fromisoformat(waiting["next_run_at"])
    assert timedelta(seconds=1) <= retry_at - clock.now() <= timedelta(minutes=90)  # jittered
    shown = await upcoming(client, created["id"], count=3)
    assert shown["runs"][0]["retry"] is True and shown["runs"][0]["at"] == waiting["next_run_at"]
    assert datetime.fromisoformat(shown["runs"][0]["local"]) == retry_at
    # Then the rule's occurrences, those that pass while it waits coalesced (the default).
    following = [datetime.fromisoformat(run["at"]) for run in shown["runs"][1:]]
    assert following[0] == retry_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert following[1] - following[0] == timedelta(hours=1)
    assert not any(run["retry"] for run in shown["runs"][1:])


async def test_ended_schedules_run_no_more(client: httpx.AsyncClient) -> None:
    created = await create(client, "daily at 09:00")
    assert (await client.delete(f"/v1/schedules/{created['id']}", headers=AUTH)).status_code == 200
    assert await upcoming(client, created["id"]) == {"schedule": "daily at 09:00", "timezone": "America/Sao_Paulo",
                                                     "status": "cancelled", "runs": []}


async def test_an_unknown_schedule_is_a_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/schedules/nope/upcoming", headers=AUTH)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["title"] == "Not found" and "nope" in answer.json()["detail"]


@pytest.mark.parametrize(("params", "field"), [
    ({"schedule": "sometimes"}, "schedule"),
    ({"schedule": "every 0 minutes"}, "schedule"),
    ({"schedule": "cron 61 * * * *"}, "schedule"),
    ({"schedule": "@reboot"}, "schedule"),
    ({"schedule": "once @ 2026-03-29 02:30", "timezone": "Europe/Berlin"}, "schedule"),  # skipped by DST
    ({"schedule": "once @ 2026-03-20 10:00"}, "schedule"),  # a week ago
    ({"schedule": "daily at 09:00", "timezone": "Nowhere/Land"}, "timezone"),
    ({"schedule": "daily at 09:00", "timezone": "localtime"}, "timezone"),
    ({"schedule": ""}, "schedule"),
    ({"schedule": "x" * 201}, "schedule"),
])
async def test_a_bad_rule_or_zone_is_refused_as_creating_it_would_be(
        client: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    answer = await client.get("/v1/rules/preview", params=params, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in answer.json()["errors"]] == [field]
    created = await client.post("/v1/schedules", headers=AUTH, json={"task": TEXT, **params})
    assert created.status_code == 422 and created.json()["errors"] == answer.json()["errors"]


@pytest.mark.parametrize("count", ["0", "101", "-1", "five", "2.5", ""])
async def test_a_count_out_of_range_is_refused(client: httpx.AsyncClient, count: str) -> None:
    created = await create(client, "daily at 09:00")
    for path, params in ((f"/v1/schedules/{created['id']}/upcoming", {}), ("/v1/rules/preview", {"schedule": "daily"})):
        answer = await client.get(path, params={**params, "count": count}, headers=AUTH)
        assert answer.status_code == 422, (path, count, answer.text)
        assert [error["field"] for error in answer.json()["errors"]] == ["count"]


async def test_unknown_query_parameters_and_a_missing_token_are_refused(client: httpx.AsyncClient) -> None:
    created = await create(client, "daily at 09:00")
    for path, params in ((f"/v1/schedules/{created['id']}/upcoming", {}), ("/v1/rules/preview", {"schedule": "daily"})):
        typo = await client.get(path, params={**params, "cuont": "3"}, headers=AUTH)
        assert typo.status_code == 422
        assert typo.json()["errors"] == [{"field": "cuont", "message": "unknown query parameter"}]
        twice = await client.get(path, params=[*params.items(), ("count", "2"), ("count", "3")], headers=AUTH)
        assert twice.status_code == 422 and [e["field"] for e in twice.json()["errors"]] == ["count"]
        assert (await client.get(path, params=params)).status_code == 401
        head = await client.head(path, params=params, headers=AUTH)
        assert head.status_code == 200 and head.content == b""


async def test_the_default_zone_is_the_service_s(clock: FixedClock) -> None:
    container = make_container(clock, default_timezone="Asia/Tokyo")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        shown = await preview(http, schedule="daily at 09:00", count=1)
    assert shown["timezone"] == "Asia/Tokyo" and local(shown) == ["2026-03-28T09:00:00+09:00"]


async def test_openapi_describes_both_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    upcoming_op = spec["paths"]["/v1/schedules/{schedule_id}/upcoming"]["get"]
    preview_op = spec["paths"]["/v1/rules/preview"]["get"]
    assert upcoming_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UpcomingView"}
    assert "404" in upcoming_op["responses"]
    assert preview_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RulePreviewView"}
    count = next(p for p in preview_op["parameters"] if p["name"] == "count")
    assert (count["schema"]["minimum"], count["schema"]["maximum"], count["schema"]["default"]) == (1, 100, 5)
    run = spec["components"]["schemas"]["RunView"]
    assert set(run["properties"]) == {"at", "local", "retry"}
    assert run["properties"]["at"]["pattern"] == r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
    for operation in (upcoming_op, preview_op):
        assert operation["security"], "behind the bearer token"
