"""Who changed a schedule, through the real app over HTTP with two API tokens, on the in-memory
and the SQLite store: every event a request causes names the token that made it by its
fingerprint (``data.by``: ``token:`` and the first 12 hex digits of its SHA-256) and the request
(``data.request_id``, its ``X-Request-ID``); a bulk change names one request on every schedule it
changes; the engine's events name no one; and the token itself reaches no event, response,
status webhook or log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.observability.logs import JsonFormatter
from cronjob_bootstrap.container import Container
from tests.support.app import api_client, by, make_container, set_up
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.webhook_receiver import Receiver

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)  # an hour before the seed's send_at
ALPHA = "alpha-team-token-5d1f0c8e2b"
BETA = "beta-system-token-94a7e3c610"
A = {"Authorization": f"Bearer {ALPHA}"}
B = {"Authorization": f"Bearer {BETA}"}
TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
EXPIRED = DeliveryError("190", "Error validating access token", retryable=False)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(params=["memory", "sqlite"])
async def container(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> AsyncIterator[Container]:
    async with set_up(clock, request.param, tmp_path, api_tokens=f"{ALPHA}, {BETA}") as built:
        yield built


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container) as http:
        yield http


def ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def events(client: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    return ok(await client.get(f"/v1/schedules/{schedule_id}/events", headers=A))["items"]  # type: ignore[no-any-return]


async def last(client: httpx.AsyncClient, schedule_id: str) -> dict[str, Any]:
    return (await events(client, schedule_id))[-1]


def made(token: str, answer: httpx.Response) -> dict[str, str]:
    """The audit entries of the events ``answer``'s request, made with ``token``, caused."""
    return {"by": by(token), "request_id": answer.headers["X-Request-ID"]}


async def kill(container: Container, clock: FixedClock, at: datetime) -> None:
    """Run what is due at ``at``, every send failing for good: each ends ``dead``."""
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(*[EXPIRED] * 10)
    clock.set(at)
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        pass
    await dispatcher.drain(5)


async def test_each_change_one_schedule_is_given_names_the_token_and_the_request_that_made_it(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    assert by(ALPHA) != by(BETA)
    recurring = await client.post("/v1/schedules", headers={**A, "X-Request-ID": "deploy-42.create"},
                                  json={"task": TASK, "schedule": "every 1 hours", "timezone": "UTC"})
    first = (await events(client, ok(recurring, 201)["id"]))[0]
    assert (first["type"], first["data"]) == ("scheduled", {"next_run_at": ok(recurring, 201)["next_run_at"],
                                                            "by": by(ALPHA), "request_id": "deploy-42.create"})
    message = await client.post("/schedule-message", json=SEED, headers=B)
    path = f"/v1/schedules/{ok(message, 201)['id']}"
    assert (await last(client, ok(message, 201)["id"]))["data"] == {"next_run_at": "2025-06-21T17:00:00.000Z",
                                                                   **made(BETA, message)}
    replayed = await client.post("/schedule-message", json=SEED, headers={**A, "Idempotency-Key": "k1"})
    again = await client.post("/schedule-message", json=SEED, headers={**B, "Idempotency-Key": "k1"})
    assert ok(again)["id"] == ok(replayed, 201)["id"]  # a replay by another token changes nothing
    assert [e["data"]["by"] for e in await events(client, ok(again)["id"])] == [by(ALPHA)]

    for token, action in [(ALPHA, "pause"), (BETA, "resume")]:
        answer = await client.post(f"{path}/{action}", headers={"Authorization": f"Bearer {token}"})
        assert ok(answer)["status"] == ("scheduled" if action == "resume" else "paused")
        shown = await last(client, ok(message, 201)["id"])
        assert (shown["type"], shown["data"]) == (f"{action}d", {"next_run_at": "2025-06-21T17:00:00.000Z",
                                                                  **made(token, answer)})
    moved = await client.patch(path, headers=A, json={"send_at": "2025-06-21T15:30:00-03:00", "labels": {"k": "v"}})
    assert (await last(client, ok(moved)["id"]))["data"] == {
        "next_run_at": "2025-06-21T18:30:00.000Z", "rescheduled_from": "2025-06-21T17:00:00.000Z",
        "labels_changed": "true", **made(ALPHA, moved)}
    run = await client.post(f"{path}/run", headers=B)
    assert (await last(client, ok(run)["id"]))["data"] == {
        "next_run_at": "2025-06-21T16:00:00.000Z", "run_now_from": "2025-06-21T18:30:00.000Z", **made(BETA, run)}
    cancelled = await client.delete(f"/v1/schedules/{ok(recurring, 201)['id']}", headers=B)
    shown = await last(client, ok(cancelled)["id"])
    assert (shown["type"], shown["data"]) == ("cancelled", made(BETA, cancelled))

    await kill(container, clock, NOW + timedelta(minutes=1))  # the message run now dies
    log = await events(client, ok(message, 201)["id"])
    assert [e["type"] for e in log[-3:]] == ["started", "failed", "dead"]
    assert all(not {"by", "request_id"} & set(e["data"]) for e in log[-3:])  # the engine's: no one's
    retried = await client.post(f"{path}/retry", headers=A)
    shown = await last(client, ok(retried)["id"])
    assert (shown["type"], shown["data"]["retried_from"]) == ("scheduled", "dead")
    assert {k: shown["data"][k] for k in ("by", "request_id")} == made(ALPHA, retried)


async def test_a_bulk_change_and_a_batch_name_one_request_on_every_schedule_they_change(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    item = {"task": TASK, "schedule": "once @ 2025-06-21 17:00", "timezone": "UTC", "labels": {"campaign": "c1"}}
    batch = await client.post("/v1/schedules:batch", headers=B, json={"schedules": [item, item, item]})
    ids = [r["id"] for r in ok(batch)["results"]]
    assert [(await last(client, i))["data"] for i in ids] == [
        {"next_run_at": "2025-06-21T17:00:00.000Z", **made(BETA, batch)}] * 3

    selection = {"labels": {"campaign": "c1"}}
    for token, action, changed in [(ALPHA, "pause", "paused"), (BETA, "resume", "resumed"),
                                   (ALPHA, "cancel", "cancelled")]:
        answer = await client.post(f"/v1/schedules:{action}", json=selection,
                                   headers={"Authorization": f"Bearer {token}"})
        assert sorted(ok(answer)[changed]) == sorted(ids)
        for schedule_id in ids:
            shown = await last(client, schedule_id)
            assert shown["type"] == changed
            assert {k: shown["data"][k] for k in ("by", "request_id")} == made(token, answer)

    dead = [ok(await client.post("/schedule-message", json=SEED, headers=A), 201)["id"] for _ in range(2)]
    await kill(container, clock, NOW + timedelta(hours=1))
    redrive = await client.post("/v1/schedules:retry", json={"status": "dead"}, headers=B)
    assert sorted(ok(redrive)["retried"]) == sorted(dead)
    for schedule_id in dead:
        shown = await last(client, schedule_id)
        assert shown["data"] == {"next_run_at": "2025-06-21T17:00:00.001Z", "retried_from": "dead",
                                 **made(BETA, redrive)}


async def test_no_token_reaches_an_event_a_response_a_status_webhook_or_a_log_line(
        clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver("whsec-audit-0123456789", lambda: clock.now().timestamp()).start()
    try:
        container = make_container(clock, api_tokens=f"{ALPHA},{BETA}", webhook_secret=receiver.secret,
                                   http_allow_hosts="127.0.0.1", webhook_urls=receiver.url("/hooks"),
                                   webhook_per_destination=1000)  # none held back: the clock stands still
        answers: list[httpx.Response] = []
        async with api_client(container) as client:
            async def call(method: str, url: str, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
                answer = await client.request(method, url, headers=headers, **kwargs)
                answers.append(answer)
                return ok(answer, 201 if method == "POST" and url in ("/schedule-message", "/v1/schedules") else 200)

            schedule_id = (await call("POST", "/schedule-message", A, json=SEED))["id"]
            path = f"/v1/schedules/{schedule_id}"
            await call("POST", f"{path}/pause", B)
            await call("POST", f"{path}/resume", A)
            await call("PATCH", path, B, json={"labels": {"k": "v"}})
            await call("POST", "/v1/schedules:pause", A, json={"labels": {"k": "v"}})
            await call("DELETE", path, B)
            refused = await client.get(f"{path}/events", headers={"Authorization": f"Bearer {ALPHA}x"})
            assert refused.status_code == 401
            answers.append(refused)
            dispatcher = container.dispatcher()
            for _ in range(10):
                if not await dispatcher.dispatch_due():
                    break
                await dispatcher.drain(5)
            log = await call("GET", f"{path}/events", A)
            assert len(receiver.at("/hooks")) == len(log["items"]) == 6, [d.type for d in receiver.at("/hooks")]
    finally:
        receiver.stop()

    # Each event names who made it, by fingerprint only, and the webhook of each says so too.
    assert [e["data"]["by"] for e in log["items"]] == [by(t) for t in (ALPHA, BETA, ALPHA, BETA, ALPHA, BETA)]
    assert sorted(d.event["data"]["by"] for d in receiver.at("/hooks")) == sorted(
        e["data"]["by"] for e in log["items"])
    formatter = JsonFormatter()
    texts = {"responses": [a.text for a in answers] + [str(dict(a.headers)) for a in answers],
             "webhook bodies": [d.body.decode() for d in receiver.at("/hooks")],
             "logs": [formatter.format(r) for r in caplog.records] + [caplog.text]}
    assert texts["webhook bodies"] and texts["logs"]
    for token in (ALPHA, BETA):
        for where, found in texts.items():
            # Neither the token nor a part of it that could help guess it (its first 8 characters).
            assert not [t for t in found if token[:8] in t], f"{where} show the token"
