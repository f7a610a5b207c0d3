"""Status webhooks end to end: the API and the dispatcher (through the container) deliver signed
events to a real HTTP receiver on 127.0.0.1 that verifies every signature with ``signing.verify``.

Most tests drive the dispatcher by hand under a FixedClock (the signature's ``t`` comes from it,
so the receiver verifies against it); one runs the real engine on the system clock. Only loopback
traffic: the receiver listens on 127.0.0.1, and the one test that names another address sends
through a transport that fails the test rather than connect anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from cronjob.domain.message import DeliveryError
from cronjob.domain.schedule import HISTORY_LIMIT, Schedule, ScheduleEvent, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.repository import ConditionalSave, StoreUnavailable
from cronjob.services.delivery_status import StatusUpdate
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_adapters.tasks.http_request import HttpRequestHandler
from cronjob_adapters.webhooks.delivery import WebhookDeliveryHandler
from cronjob_adapters.webhooks.signing import parse, verify
from cronjob.ports.clock import SystemClock
from cronjob_bootstrap.container import Container, type_limits
from cronjob_bootstrap.settings import Settings
from tests.support.app import AUTH, TOKEN, audit, by
from tests.support.app import make_container as app_container
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.racing import RacingRepository
from tests.support.waiting import until
from tests.support.webhook_receiver import Delivery, Receiver

SECRET = "whsec-test-0123456789"
NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)  # an hour before the seed's send_at
SEND_AT = datetime(2025, 6, 21, 17, 0, tzinfo=UTC)


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def receiver(clock: FixedClock) -> Iterator[Receiver]:
    server = Receiver(SECRET, lambda: clock.now().timestamp()).start()
    try:
        yield server
    finally:
        server.stop()


def make_container(clock: FixedClock | None, **settings: Any) -> Container:
    """The shared test container (``tests.support.app``) with webhooks signed and loopback receivers
    allowed; ``clock=None``: the system clock. Every receiver here is one destination, and a
    delivery held back by the limit per destination is due again only once the clock moves: no
    limit that these tests reach (test_webhook_destinations.py tests it)."""
    return app_container(clock or SystemClock(), **{
        "webhook_secret": SECRET, "http_allow_hosts": "127.0.0.1", "poll_interval_seconds": 0.05,
        "webhook_per_destination": 1000, **settings})


@pytest.fixture
def container(clock: FixedClock, receiver: Receiver) -> Container:
    return make_container(clock, webhook_urls=receiver.url("/global"))


async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as http:
        yield http


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api(container):
        yield http


async def settle(container: Container) -> None:
    """Run what is due now, and what that makes due now, until nothing is left."""
    dispatcher = container.dispatcher()
    for _ in range(20):
        claimed = await dispatcher.dispatch_due()
        await dispatcher.drain(15)
        if not claimed:
            return
    raise AssertionError("work kept coming")


async def schedule(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/schedule-message", json={**SEED, **changes})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def events_of(client: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/schedules/{schedule_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def counted(deliveries: list[Delivery]) -> Counter[str]:
    return Counter(d.type for d in deliveries)


def webhook_metric(container: Container, outcome: str) -> float:
    value = container.metrics().registry.get_sample_value("cronjob_webhook_deliveries_total", {"outcome": outcome})
    return value or 0.0


# -- the tests ---------------------------------------------------------------------------------


async def test_a_message_life_reaches_its_callback_and_the_global_url_signed(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    created = await schedule(client, callback_url=receiver.url("/callback"))
    await settle(container)
    assert [d.type for d in receiver.at("/callback")] == ["scheduled"]
    clock.set(SEND_AT)
    await settle(container)

    expected = Counter({"scheduled": 1, "started": 1, "succeeded": 1})
    assert counted(receiver.at("/callback")) == expected
    assert counted(receiver.at("/global")) == expected
    assert len(receiver.all) == 6  # nothing about the delivery jobs themselves
    assert all(d.verified for d in receiver.all)

    log = await events_of(client, created["id"])
    assert [e["type"] for e in log] == ["scheduled", "started", "succeeded"]
    ids = {e["id"]: e for e in log}
    for delivery in receiver.all:
        event = delivery.event
        headers = delivery.headers
        assert headers["cronjob-event-id"] == event["id"] and event["id"] in ids
        assert headers["cronjob-event-type"] == event["type"] == ids[event["id"]]["type"]
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("cronjob-webhooks/")
        assert "idempotency-key" not in headers and "cronjob-schedule-id" not in headers
        assert event["schedule_id"] == created["id"] and event["task_type"] == "whatsapp.template"
        assert event["at"].endswith("Z")
        assert delivery.body == json.dumps(event, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()
    by_type = {d.type: d.event for d in receiver.at("/callback")}
    assert by_type["scheduled"]["status"] == "scheduled" and by_type["scheduled"]["attempt_id"] is None
    assert by_type["started"]["status"] == "running"
    # Every instant in a body, the event's own and those in its data, is one format: UTC, ms, Z.
    assert (by_type["scheduled"]["at"], by_type["scheduled"]["data"]) == (
        "2025-06-21T16:00:00.000Z", {"next_run_at": "2025-06-21T17:00:00.000Z", "by": by(TOKEN),
                                     "request_id": by_type["scheduled"]["data"]["request_id"]})
    # The run's events are the engine's: they name no one.
    assert not {"by", "request_id"} & {*by_type["started"]["data"], *by_type["succeeded"]["data"]}
    assert (by_type["started"]["at"], by_type["started"]["data"]["occurrence"]) == (
        "2025-06-21T17:00:00.000Z", "2025-06-21T17:00:00.000Z")
    succeeded = by_type["succeeded"]
    assert succeeded["status"] == "succeeded" and succeeded["data"]["wamid"] == "wamid.fake.1"
    assert succeeded["attempt_id"] == by_type["started"]["attempt_id"] is not None

    for event in log:  # the event log shows both deliveries of every event
        assert sorted(d["url"] for d in event["deliveries"]) == sorted(
            [receiver.url("/callback"), receiver.url("/global")])
        assert {(d["status"], d["attempts"], d["last_error_code"]) for d in event["deliveries"]} == {
            ("succeeded", 1, None)}
    assert webhook_metric(container, "delivered") == 6


async def test_publishing_again_delivers_nothing_twice(
        client: httpx.AsyncClient, container: Container, receiver: Receiver) -> None:
    created = await schedule(client, callback_url=receiver.url("/callback"))
    await settle(container)
    stored = await container.repository().get(created["id"])
    assert stored is not None
    await container.publisher().publish(stored, stored.events)  # a replayed publication
    await settle(container)
    assert counted(receiver.at("/callback")) == Counter({"scheduled": 1})
    assert counted(receiver.at("/global")) == Counter({"scheduled": 1})


class AnswerLostAfterTheWrite(InMemoryScheduleRepository):
    """Writes a run's outcome, then loses the answer (a connection dropped after the commit) once."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    async def save(self, schedule: Schedule, **conditions: Any) -> bool:
        saved = await super().save(schedule, **conditions)
        if saved and schedule.status is ScheduleStatus.SUCCEEDED and not self.lost:
            self.lost += 1
            raise StoreUnavailable("connection lost after the write")
        return saved


async def test_an_outcome_whose_write_answer_was_lost_is_still_delivered(
        clock: FixedClock, receiver: Receiver) -> None:
    # The outcome is written but the answer never comes back: the retried write finds it done
    # (fenced: not written twice). Its event must still reach the subscribers: the deliveries
    # were stored before the write, and each finds its event stored.
    repository = AnswerLostAfterTheWrite()
    flaky = make_container(clock, repository=repository)
    async for client in api(flaky):
        created = await schedule(client, callback_url=receiver.url("/callback"))
        clock.set(SEND_AT)
        await settle(flaky)
        stored = await repository.get(created["id"])
    assert repository.lost == 1
    assert stored is not None and stored.status is ScheduleStatus.SUCCEEDED
    assert counted(receiver.at("/callback")) == Counter({"scheduled": 1, "started": 1, "succeeded": 1})


async def test_a_delivery_waits_for_its_event_and_drops_one_that_is_never_stored(
        container: Container, clock: FixedClock, receiver: Receiver) -> None:
    publisher, repository = container.publisher(), container.repository()

    def made(schedule_id: str) -> Schedule:
        return Schedule.create(id=schedule_id, task_type="whatsapp.text", payload={}, trigger=OnceTrigger(SEND_AT),
                               timezone="UTC", first_run_at=SEND_AT, now=clock.now(),
                               callback_url=receiver.url(f"/{schedule_id}"))

    late, never = made("written-late"), made("never-written")
    for source in (late, never):
        assert await publisher.publish(source, source.events)  # published before their writes
    await settle(container)
    assert receiver.all == []  # neither event is stored yet: both deliveries wait, no attempt spent

    await repository.add(late)  # the write comes, a little late
    clock.advance(timedelta(seconds=1))
    await settle(container)
    assert counted(receiver.at("/written-late")) == Counter({"scheduled": 1})
    assert counted(receiver.at("/global")) == Counter({"scheduled": 1})
    assert receiver.at("/never-written") == []

    clock.advance(timedelta(seconds=60))  # past the settle time: that write is not coming
    await settle(container)
    assert receiver.at("/never-written") == [] and len(receiver.all) == 2
    dropped = await repository.list(task_types=["webhook.delivery"], status=ScheduleStatus.SUCCEEDED)
    skipped = [d for d in dropped if d.payload["schedule_id"] == never.id]
    assert len(skipped) == 2 and all(d.result == {"skipped": "event_not_stored"} for d in skipped)
    assert all(d.attempts[-1].outcome == "succeeded" and len(d.attempts) == 1 for d in skipped)
    assert webhook_metric(container, "skipped") == 2 and webhook_metric(container, "delivered") == 2


def a_one_off(clock: FixedClock, callback_url: str) -> Schedule:
    """A text message due at SEND_AT, stored straight into the store (no webhooks of its own yet)."""
    return Schedule.create(id="s1", task_type="whatsapp.text", payload={}, trigger=OnceTrigger(SEND_AT),
                           timezone="UTC", first_run_at=SEND_AT, now=clock.now(), callback_url=callback_url)


async def test_a_run_outcome_whose_lease_was_lost_is_dropped_at_once_and_the_new_owner_s_is_sent(
        container: Container, clock: FixedClock, receiver: Receiver) -> None:
    repository, publisher = container.repository(), container.publisher()
    await repository.add(a_one_off(clock, receiver.url("/callback")))
    clock.set(SEND_AT)
    lease = timedelta(seconds=30)
    [first] = await repository.claim_due(now=clock.now(), owner="replica-a", lease_for=lease, limit=1)
    first_attempt = first.lease.attempt_id  # type: ignore[union-attr]
    first.mark_started(attempt_id=first_attempt, now=clock.now())
    first.succeed(attempt_id=first_attempt, now=clock.now(), provider_message_id="wamid.a")
    assert await publisher.publish(first, first.events[-1:])  # replica A publishes, then stalls

    clock.advance(lease + timedelta(seconds=1))  # A's lease lapses; replica B takes the run over
    [second] = await repository.claim_due(now=clock.now(), owner="replica-b", lease_for=lease, limit=1,
                                          task_types=["whatsapp.text"])
    assert not await repository.save(first, expected_status=ScheduleStatus.RUNNING, attempt_id=first_attempt)
    await settle(container)  # B still runs: A's outcome is known lost at once, not after 60 s
    assert receiver.at("/callback") == []
    assert receiver.all == [] and webhook_metric(container, "skipped") == 2  # the callback and the global URL

    second_attempt = second.lease.attempt_id  # type: ignore[union-attr]
    second.mark_started(attempt_id=second_attempt, now=clock.now())
    second.succeed(attempt_id=second_attempt, now=clock.now(), provider_message_id="wamid.b")
    assert await publisher.publish(second, second.events[-1:])
    assert await repository.save(second, expected_status=ScheduleStatus.RUNNING, attempt_id=second_attempt)
    await settle(container)
    [delivered] = receiver.at("/callback")
    assert delivered.event["attempt_id"] == second_attempt and delivered.event["data"]["provider_message_id"] == "wamid.b"


async def test_a_pause_by_pause_after_failures_whose_run_lost_its_lease_is_dropped_at_once(
        container: Container, clock: FixedClock, receiver: Receiver) -> None:
    from cronjob.domain.message import ErrorInfo
    from cronjob.domain.recurring import IntervalTrigger
    from cronjob.domain.retry import RetryDecision

    repository, publisher = container.repository(), container.publisher()
    await repository.add(Schedule.create(
        id="r1", task_type="whatsapp.text", payload={}, trigger=IntervalTrigger(timedelta(hours=1), SEND_AT),
        timezone="UTC", first_run_at=SEND_AT, now=clock.now(), callback_url=receiver.url("/callback"),
        pause_after_failures=1))
    clock.set(SEND_AT)
    [run] = await repository.claim_due(now=clock.now(), owner="replica-a", lease_for=timedelta(seconds=30), limit=1)
    attempt_id = run.lease.attempt_id  # type: ignore[union-attr]
    run.fail(attempt_id=attempt_id, now=clock.now(), error=ErrorInfo("131026", "undeliverable"),
             decision=RetryDecision(None, "permanent"))
    assert [e.type for e in run.events[-3:]] == ["failed", "dead", "paused"] and run.status is ScheduleStatus.PAUSED
    assert await publisher.publish(run, run.events[-3:])  # published, then the write is refused:
    clock.advance(timedelta(seconds=31))  # the lease lapsed and another replica took the run over
    assert await repository.claim_due(now=clock.now(), owner="replica-b", lease_for=timedelta(seconds=30), limit=1,
                                      task_types=["whatsapp.text"])
    assert not await repository.save(run, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    await settle(container)  # known lost at once, the automatic pause as the run's other outcomes
    assert receiver.all == [] and webhook_metric(container, "skipped") == 6  # 3 events, 2 URLs


async def test_an_outcome_trimmed_from_a_full_event_log_is_still_delivered(
        container: Container, clock: FixedClock, receiver: Receiver) -> None:
    repository, publisher = container.repository(), container.publisher()
    await repository.add(a_one_off(clock, receiver.url("/callback")))
    clock.set(SEND_AT)
    [run] = await repository.claim_due(now=clock.now(), owner="replica-a", lease_for=timedelta(seconds=30), limit=1)
    attempt_id = run.lease.attempt_id  # type: ignore[union-attr]
    run.mark_started(attempt_id=attempt_id, now=clock.now())
    run.succeed(attempt_id=attempt_id, now=clock.now(), provider_message_id="wamid.1")
    assert await publisher.publish(run, run.events[-1:])
    # Stored, and pushed out of the event log by 100 later events before its delivery first looks.
    later = [ScheduleEvent(id=f"later-{i}", type="delivery.read", at=clock.now() + timedelta(seconds=1 + i))
             for i in range(HISTORY_LIMIT)]
    run.events = later
    assert await repository.save(run, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    await settle(container)
    [delivered] = receiver.at("/callback")
    assert delivered.type == "succeeded" and delivered.event["attempt_id"] == attempt_id


async def test_the_events_of_a_change_that_lost_its_race_are_never_sent_even_with_a_full_log(
        clock: FixedClock, receiver: Receiver) -> None:
    # The event log keeps the newest 100 entries, so "not in the log" cannot tell a trimmed event
    # from one never stored; the write that was refused withdraws its deliveries instead.
    repository = RacingRepository()
    racy = make_container(clock, repository=repository, webhook_urls=receiver.url("/global"), webhook_events="paused")
    async for client in api(racy):
        created = await schedule(client)
        path = f"/v1/schedules/{created['id']}"

        async def pauses(count: int) -> None:
            for _ in range(count):
                assert (await client.post(f"{path}/pause")).status_code == 200
                assert (await client.post(f"{path}/resume")).status_code == 200

        await pauses(HISTORY_LIMIT // 2)  # a full event log
        await settle(racy)
        sent_before = len(receiver.at("/global"))

        async def changed_meanwhile() -> None:
            # Another client's changes land first: more than the log keeps, so the refused
            # try's event, were it stored, would look trimmed by now.
            await pauses(HISTORY_LIMIT // 2 + 1)

        repository.race = changed_meanwhile
        paused = await client.post(f"{path}/pause")  # its first try is refused; read again, it pauses
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        await settle(racy)
        stored = await repository.get(created["id"])
    assert stored is not None and stored.status is ScheduleStatus.PAUSED
    sent = receiver.at("/global")[sent_before:]
    assert len(sent) == HISTORY_LIMIT // 2 + 2  # the other client's pauses, and the try that was written
    assert [d.event["id"] for d in sent if d.event["id"] not in repository.written] == [], "a refused try's event was sent"
    withdrawn = await repository.list(task_types=["webhook.delivery"], status=ScheduleStatus.CANCELLED)
    assert [d.metadata["event_type"] for d in withdrawn] == ["paused"]


def paused_to_global(clock: FixedClock, receiver: Receiver, repository: InMemoryScheduleRepository) -> Container:
    """A container on ``repository`` sending only ``paused`` events, to the receiver's /global."""
    return make_container(clock, repository=repository, webhook_urls=receiver.url("/global"), webhook_events="paused")


async def test_a_bulk_pause_written_together_never_overwrites_a_change_made_since_it_listed(
        clock: FixedClock, receiver: Receiver) -> None:
    # :pause writes a page of schedules as it listed them, in one conditional write; one changed
    # by another client in between is refused there, its try's event withdrawn, and it is read
    # again and paused alone, that client's change kept.
    repository = RacingRepository()
    racy = paused_to_global(clock, receiver, repository)
    async for client in api(racy):
        mine = [(await schedule(client, userId="bulk"))["id"] for _ in range(5)]
        target = mine[2]

        async def relabelled_meanwhile() -> None:
            answer = await client.patch(f"/v1/schedules/{target}", json={"labels": {"order": "9"}})
            assert answer.status_code == 200, answer.text

        repository.race = relabelled_meanwhile
        paused = await client.post("/v1/schedules:pause", json={"userId": "bulk"})
        assert paused.status_code == 200, paused.text
        assert sorted(paused.json()["paused"]) == sorted(mine) and paused.json()["refused"] == []
        await settle(racy)
        stored = await repository.get(target)
    assert repository.race is None  # the race ran
    assert stored is not None and stored.status is ScheduleStatus.PAUSED and stored.labels == {"order": "9"}
    assert [e.type for e in stored.events] == ["scheduled", "scheduled", "paused"]  # made, relabelled, paused
    sent = receiver.at("/global")
    assert sorted(d.event["schedule_id"] for d in sent) == sorted(mine)  # one paused event each
    assert [d.event["id"] for d in sent if d.event["id"] not in repository.written] == [], "a refused try's event was sent"
    withdrawn = await repository.list(task_types=["webhook.delivery"], status=ScheduleStatus.CANCELLED)
    assert [(d.metadata["event_type"], d.metadata["schedule_id"]) for d in withdrawn] == [("paused", target)]


class KeyLookupsMeet(InMemoryScheduleRepository):
    """Two requests with one Idempotency-Key both miss it: each lookup waits for the other's."""

    def __init__(self) -> None:
        super().__init__()
        self.both_looked = asyncio.Barrier(2)

    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        keys = list(keys)
        found = await super().get_by_idempotency_keys(keys)
        if "order-77" in keys:  # the requests' lookups (the webhooks' keys are others)
            await asyncio.wait_for(self.both_looked.wait(), 5)
        return found


async def test_the_creation_that_lost_a_race_for_its_idempotency_key_withdraws_its_webhooks(
        clock: FixedClock, receiver: Receiver) -> None:
    # Both requests publish their schedule's events before writing it; the store keeps one.
    repository = KeyLookupsMeet()
    racy = make_container(clock, repository=repository, webhook_urls=receiver.url("/global"))
    async for client in api(racy):
        headers = {"Idempotency-Key": "order-77"}
        answers = await asyncio.gather(*(client.post("/schedule-message", json=SEED, headers=headers)
                                         for _ in range(2)))
        assert sorted(a.status_code for a in answers) == [200, 201]
        [winner] = {a.json()["id"] for a in answers}
        await settle(racy)
    deliveries = await repository.list(task_types=["webhook.delivery"])
    live = [d for d in deliveries if d.status is not ScheduleStatus.CANCELLED]
    assert [d.metadata["schedule_id"] for d in live] == [winner], "the lost schedule's delivery waits to run"
    assert [d.metadata["schedule_id"] != winner for d in deliveries].count(True) == 1  # withdrawn
    assert [d.event["schedule_id"] for d in receiver.at("/global")] == [winner]


class AddsDownUntilASave(InMemoryScheduleRepository):
    """The in-memory store refusing adds (a webhook delivery) as an unreachable store does, until
    a save goes through: the store came back between a page's publication and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.adds_down = False

    async def add(self, schedule: Schedule) -> None:
        if self.adds_down:
            raise StoreUnavailable("connection refused")
        await super().add(schedule)

    async def save_many(self, writes: Sequence[ConditionalSave]) -> list[bool]:
        self.adds_down = False
        return await super().save_many(writes)


async def test_a_bulk_pause_whose_deliveries_could_not_be_stored_publishes_them_again_once_written(
        clock: FixedClock, receiver: Receiver) -> None:
    repository = AddsDownUntilASave()
    flaky = paused_to_global(clock, receiver, repository)
    async for client in api(flaky):
        mine = [(await schedule(client, userId="bulk"))["id"] for _ in range(3)]
        repository.adds_down = True
        paused = await client.post("/v1/schedules:pause", json={"userId": "bulk"})
        assert paused.status_code == 200 and sorted(paused.json()["paused"]) == sorted(mine), paused.text
        assert not repository.adds_down  # the page's write went through after its publication failed
        await settle(flaky)
    assert sorted(d.event["schedule_id"] for d in receiver.at("/global")) == sorted(mine)


async def test_a_bad_stored_callback_url_does_not_cost_the_global_subscribers_their_delivery(
        container: Container, clock: FixedClock, receiver: Receiver) -> None:
    # Stored before the API checked callback URLs like every other URL (or by another writer).
    source = a_one_off(clock, "http://user@hooks.example/x")
    assert not await container.publisher().publish(source, source.events)  # the bad one is reported
    await container.repository().add(source)
    await settle(container)
    assert counted(receiver.at("/global")) == Counter({"scheduled": 1})


class RefusesOneDestination(InMemoryScheduleRepository):
    """The in-memory store refusing (not an outage: a write it will never take) the webhook
    deliveries to one URL."""

    def __init__(self, refused_url: str) -> None:
        super().__init__()
        self.refused_url = refused_url

    async def add(self, schedule: Schedule) -> None:
        if schedule.payload.get("url") == self.refused_url:
            raise ValueError("document refused")
        await super().add(schedule)


async def test_a_delivery_the_store_refuses_does_not_cost_the_others_stored_with_it_theirs(
        clock: FixedClock, receiver: Receiver) -> None:
    repository = RefusesOneDestination(receiver.url("/callback"))
    refusing = make_container(clock, repository=repository, webhook_urls=receiver.url("/global"))
    source = a_one_off(clock, receiver.url("/callback"))
    assert not await refusing.publisher().publish(source, source.events)  # the refused one is reported
    await repository.add(source)
    await settle(refusing)
    assert counted(receiver.at("/global")) == Counter({"scheduled": 1}) and receiver.at("/callback") == []


async def test_the_api_does_not_show_the_token_in_a_configured_webhook_url(
        clock: FixedClock, receiver: Receiver) -> None:
    tokened = make_container(clock, webhook_urls=receiver.url("/global?token=SECRET123"))
    async for client in api(tokened):
        await schedule(client)
        listed = (await client.get("/v1/schedules", params={"type": "webhook.delivery"})).json()["items"]
    [job] = listed
    assert job["payload"]["url"] == receiver.url("/global?…") and "SECRET123" not in json.dumps(listed)


async def test_what_whatsapp_reports_about_a_sent_message_is_delivered_too(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    created = await schedule(client, callback_url=receiver.url("/callback"))
    clock.set(SEND_AT)
    await settle(container)
    reported = SEND_AT + timedelta(seconds=3)
    applied = await container.delivery_status().apply([
        StatusUpdate(message_id="wamid.fake.1", status="delivered", at=reported),
        StatusUpdate(message_id="wamid.fake.1", status="read", at=reported + timedelta(seconds=5)),
    ])
    assert applied.applied == 2
    await settle(container)
    by_type = {d.type: d.event for d in receiver.at("/callback")}
    assert set(by_type) == {"scheduled", "started", "succeeded", "delivery.delivered", "delivery.read"}
    assert by_type["delivery.read"]["data"]["at"] == "2025-06-21T17:00:08.000Z"
    assert by_type["delivery.read"]["schedule_id"] == created["id"]
    assert by_type["delivery.read"]["attempt_id"] == by_type["succeeded"]["attempt_id"]


async def test_delivery_events_reported_out_of_order_are_ordered_by_meta_s_time_in_their_data(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    await schedule(client, callback_url=receiver.url("/callback"))
    clock.set(SEND_AT)
    await settle(container)
    delivered_at = SEND_AT + timedelta(seconds=3)
    for status, at in [("read", delivered_at + timedelta(seconds=5)), ("delivered", delivered_at)]:  # read first
        clock.advance(timedelta(seconds=30))
        await container.delivery_status().apply([StatusUpdate(message_id="wamid.fake.1", status=status, at=at)])
    await settle(container)
    reports = sorted((d.event for d in receiver.at("/callback") if d.type.startswith("delivery.")),
                     key=lambda event: event["at"])
    assert [(e["type"], e["at"], e["data"]["at"]) for e in reports] == [  # as the README tells
        ("delivery.read", "2025-06-21T17:00:30.000Z", "2025-06-21T17:00:08.000Z"),
        ("delivery.delivered", "2025-06-21T17:01:00.000Z", "2025-06-21T17:00:03.000Z")]


async def test_a_parked_status_sends_only_the_message_s_delivery_event_not_its_own(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    created = await schedule(client)
    clock.set(SEND_AT)
    report = await container.delivery_status().apply([  # before the send is recorded
        StatusUpdate(message_id="wamid.fake.1", status="delivered", at=SEND_AT)])
    assert report.parked == 1
    await settle(container)  # the send
    clock.advance(timedelta(seconds=2))
    await settle(container)  # the parked status
    global_events = receiver.at("/global")
    assert {d.event["schedule_id"] for d in global_events} == {created["id"]}  # none about the parked job
    assert counted(global_events)["delivery.delivered"] == 1


async def test_a_failing_message_reports_failed_retrying_and_dead(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(DeliveryError("131056", "pair rate limit hit", retryable=True),
                     DeliveryError("131056", "pair rate limit hit", retryable=True))
    created = await schedule(client, callback_url=receiver.url("/callback"),
                             retry={"max_attempts": 2, "initial_delay_seconds": 10, "max_delay_seconds": 10})
    clock.set(SEND_AT)
    await settle(container)
    assert counted(receiver.at("/callback")) == Counter({"scheduled": 1, "started": 1, "failed": 1, "retrying": 1})
    clock.advance(timedelta(minutes=1))
    await settle(container)

    expected = Counter({"scheduled": 1, "started": 2, "failed": 2, "retrying": 1, "dead": 1})
    assert counted(receiver.at("/callback")) == expected
    assert counted(receiver.at("/global")) == expected
    assert all(d.verified for d in receiver.all)
    by_type = {d.type: d.event for d in receiver.at("/callback")}
    assert by_type["retrying"]["status"] == "scheduled" and "retry_at" in by_type["retrying"]["data"]
    assert by_type["dead"]["status"] == "dead" and by_type["dead"]["data"]["code"] == "131056"
    assert {d.event["id"] for d in receiver.at("/callback")} == {e["id"] for e in await events_of(client, created["id"])}


async def test_cancelled_and_missed_are_delivered(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    cancelled = await schedule(client, callback_url=receiver.url("/cancelled"))
    assert (await client.delete(f"/v1/schedules/{cancelled['id']}")).status_code == 200
    missed = await schedule(client, callback_url=receiver.url("/missed"), misfire_grace_seconds=60)
    await settle(container)
    clock.set(SEND_AT + timedelta(hours=1))  # the scheduler was down past the grace
    await settle(container)

    assert counted(receiver.at("/cancelled")) == Counter({"scheduled": 1, "cancelled": 1})
    assert counted(receiver.at("/missed")) == Counter({"scheduled": 1, "missed": 1})
    assert counted(receiver.at("/global")) == Counter({"scheduled": 2, "cancelled": 1, "missed": 1})
    assert all(d.verified for d in receiver.all)
    [missed_event] = [d.event for d in receiver.at("/missed") if d.type == "missed"]
    assert missed_event["schedule_id"] == missed["id"] and missed_event["status"] == "missed"
    assert "late" in missed_event["data"]["reason"]


async def test_a_run_going_on_when_its_schedule_is_cancelled_keeps_its_record_and_delivers_its_outcome(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    """A recurring sync runs (its peer holds the request) when a user cancels the schedule over
    the API: the run goes on and succeeds. Its started event, sent as it began, and its outcome
    are in the schedule afterwards, and the outcome reaches the receivers, saying so."""
    released = receiver.hold("/sync")
    receiver.take_unsigned("/sync")
    created = (await client.post("/v1/schedules", json={
        "task": {"type": "http.request", "method": "POST", "url": receiver.url("/sync")},
        "schedule": f"every 1 hours from {SEND_AT.isoformat()}", "timezone": "UTC",
        "callback_url": receiver.url("/callback")})).json()
    await settle(container)
    clock.set(SEND_AT)
    dispatcher = container.dispatcher()
    assert await dispatcher.dispatch_due() == 1
    await until(lambda: len(receiver.at("/sync")) == 1)  # the sync has begun, its peer not answered yet
    for _ in range(200):  # its started event is delivered meanwhile
        await dispatcher.dispatch_due()
        if any(d.type == "started" for d in receiver.at("/callback")):
            break
        await asyncio.sleep(0.02)
    clock.advance(timedelta(seconds=2))
    response = await client.delete(f"/v1/schedules/{created['id']}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    clock.advance(timedelta(seconds=1))
    released.set()
    await dispatcher.drain(15)
    await settle(container)

    got = {d.type: d.event for d in receiver.at("/callback")}
    assert Counter(d.type for d in receiver.at("/callback")) == Counter(
        {"scheduled": 1, "started": 1, "cancelled": 1, "succeeded": 1})
    assert counted(receiver.at("/global")) == counted(receiver.at("/callback"))
    assert all(d.verified for d in receiver.all if d.path != "/sync")
    attempt_id = got["started"]["attempt_id"]
    assert got["cancelled"]["data"] == {"while_running": attempt_id, **audit(TOKEN, response)}
    assert (got["succeeded"]["status"], got["succeeded"]["attempt_id"]) == ("cancelled", attempt_id)
    assert got["succeeded"]["data"] == {"status_code": "200", "after_cancel": "true"}

    shown = (await client.get(f"/v1/schedules/{created['id']}")).json()
    assert (shown["status"], shown["next_run_at"]) == ("cancelled", None)
    assert [(a["attempt_id"], a["outcome"]) for a in shown["attempts"]] == [(attempt_id, "succeeded")]
    log = await events_of(client, created["id"])
    assert [(e["type"], e["id"]) for e in log] == [
        ("scheduled", got["scheduled"]["id"]), ("started", got["started"]["id"]),
        ("cancelled", got["cancelled"]["id"]), ("succeeded", got["succeeded"]["id"])]
    assert all({d["status"] for d in e["deliveries"]} == {"succeeded"} for e in log)
    clock.advance(timedelta(hours=2))  # never again
    await settle(container)
    assert len(receiver.at("/sync")) == 1


async def test_the_outcome_of_a_run_cancelled_while_it_ran_waits_for_its_record_and_the_first_one_is_never_sent(
        container: Container, clock: FixedClock, receiver: Receiver) -> None:
    """The deliveries of a kept record's outcome are stored before the record is written: one that
    runs in between waits for it (its lease is gone, but the record comes without one). The
    outcome the run published first, as if its schedule went on, is never sent, even once the
    run's attempt is stored (had its withdrawal come too late)."""
    from cronjob.domain.recurring import IntervalTrigger

    repository, publisher = container.repository(), container.publisher()
    await repository.add(Schedule.create(
        id="r1", task_type="whatsapp.text", payload={}, trigger=IntervalTrigger(timedelta(hours=1), SEND_AT),
        timezone="UTC", first_run_at=SEND_AT, now=clock.now(), callback_url=receiver.url("/callback")))
    clock.set(SEND_AT)
    [run] = await repository.claim_due(now=clock.now(), owner="replica-a", lease_for=timedelta(seconds=30), limit=1)
    attempt_id = run.lease.attempt_id  # type: ignore[union-attr]
    run.mark_started(attempt_id=attempt_id, now=clock.now())
    cancelled = await repository.get("r1")
    assert cancelled is not None
    version = cancelled.updated_at
    cancelled.cancel(now=clock.now())
    assert await repository.save(cancelled, expected_status=ScheduleStatus.RUNNING, expected_updated_at=version)
    run.succeed(attempt_id=attempt_id, now=clock.now(), provider_message_id="wamid.1")
    assert await publisher.publish(run, run.events[-1:])  # as if it went on: never withdrawn here
    assert not await repository.save(run, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)

    record = run.run_record(attempt_id)
    assert record is not None
    cancelled.keep_run(record, now=clock.now())
    assert await publisher.publish(cancelled, [e for e in record.events if e.type != "started"])
    await settle(container)
    assert receiver.all == [] and webhook_metric(container, "skipped") == 0  # both wait for the record

    stored = await repository.get("r1")
    assert stored is not None and stored.attempts == []
    version = stored.updated_at
    stored.keep_run(record, now=clock.now())
    assert await repository.save(stored, expected_status=ScheduleStatus.CANCELLED, expected_updated_at=version)
    clock.advance(timedelta(seconds=1))
    await settle(container)
    [delivered] = receiver.at("/callback")
    assert (delivered.type, delivered.event["status"], delivered.event["data"]["after_cancel"]) == (
        "succeeded", "cancelled", "true")
    assert delivered.event["id"] == stored.events[-1].id != run.events[-1].id
    assert webhook_metric(container, "skipped") == 2  # the first outcome, to the callback and the global URL


async def test_a_resume_after_the_rule_ended_delivers_both_its_events(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    """One change that records two events (resumed, then missed: nothing was left to run) sends both."""
    now = clock.now()
    response = await client.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "timezone": "UTC",
        "schedule": f"every 5 seconds until {(now + timedelta(seconds=12)).isoformat()}",
        "callback_url": receiver.url("/ended")})
    assert response.status_code == 201, response.text
    path = f"/v1/schedules/{response.json()['id']}"
    assert (await client.post(f"{path}/pause")).status_code == 200
    clock.set(now + timedelta(minutes=1))
    resumed = await client.post(f"{path}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "missed", resumed.text
    await settle(container)
    assert counted(receiver.at("/ended")) == Counter({"scheduled": 1, "paused": 1, "resumed": 1, "missed": 1})
    [missed] = [d.event for d in receiver.at("/ended") if d.type == "missed"]
    assert missed["status"] == "missed" and "its rule ended while it was paused" in missed["data"]["reason"]


async def test_a_delivery_answered_500_is_retried_and_the_event_log_shows_it(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    receiver.script("/flaky", 500)
    created = await schedule(client, callback_url=receiver.url("/flaky"))
    await settle(container)
    [first] = receiver.at("/flaky")
    [event] = await events_of(client, created["id"])
    flaky = next(d for d in event["deliveries"] if d["url"] == receiver.url("/flaky"))
    assert flaky["status"] == "scheduled" and flaky["attempts"] == 1 and flaky["last_error_code"] == "http_500"
    assert flaky["next_attempt_at"] is not None
    assert webhook_metric(container, "retrying") == 1

    clock.advance(timedelta(minutes=1))
    await settle(container)
    first, second = receiver.at("/flaky")
    assert first.verified and second.verified
    assert first.headers["cronjob-event-id"] == second.headers["cronjob-event-id"] == event["id"]
    assert first.body == second.body  # the same bytes, signed afresh
    assert parse(first.headers["cronjob-signature"])[0] < parse(second.headers["cronjob-signature"])[0]  # type: ignore[index]
    [event] = await events_of(client, created["id"])
    flaky = next(d for d in event["deliveries"] if d["url"] == receiver.url("/flaky"))
    assert (flaky["status"], flaky["attempts"], flaky["last_error_code"]) == ("succeeded", 2, "http_500")
    assert flaky["next_attempt_at"] is None
    assert webhook_metric(container, "delivered") == 2  # /flaky and /global


async def test_a_receiver_down_past_the_retries_gets_its_dead_deliveries_when_an_operator_retries_them(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    receiver.script("/down", *[503] * 16)
    created = await schedule(client, callback_url=receiver.url("/down"), send_at="2025-06-22T17:00:00Z")
    for attempt in range(16):
        await settle(container)
        if attempt == 7:  # what the policy gave before: a receiver down for minutes lost its events
            [event] = await events_of(client, created["id"])
            assert [d["status"] for d in event["deliveries"] if d["url"] == receiver.url("/down")] == ["scheduled"]
        clock.advance(timedelta(hours=1, seconds=1))  # every wait is at most 5 s doubling up to 1 h
    [event] = await events_of(client, created["id"])
    down = next(d for d in event["deliveries"] if d["url"] == receiver.url("/down"))
    assert (down["status"], down["attempts"], down["last_error_code"]) == ("dead", 16, "http_503")

    response = await client.post("/v1/schedules:retry", json={"status": "dead", "type": ["webhook.delivery"]})
    assert response.status_code == 200, response.text
    assert response.json()["retried"] == [down["delivery_id"]]
    await settle(container)
    *_, last = receiver.at("/down")
    assert last.verified and last.headers["cronjob-event-id"] == event["id"] and last.type == "scheduled"
    assert len(receiver.at("/down")) == 17 and len(receiver.at("/global")) == 1
    [event] = await events_of(client, created["id"])
    down = next(d for d in event["deliveries"] if d["url"] == receiver.url("/down"))
    assert (down["status"], down["attempts"]) == ("succeeded", 17)


async def test_a_receiver_that_does_not_answer_leaves_the_messages_due_their_slots(
        clock: FixedClock, receiver: Receiver) -> None:
    release = receiver.hold("/hangs")
    small = make_container(clock, webhook_urls=receiver.url("/hangs"), max_in_flight=4)
    dispatcher = small.dispatcher()
    try:
        async for client in api(small):
            for _ in range(6):  # six `scheduled` events, all due now, all to the receiver that hangs
                await schedule(client)
            clock.set(SEND_AT)  # and the six messages due too
            await dispatcher.dispatch_due()
            sender = small.sender()
            # Half the slots for the deliveries: the messages get the other half, sent while they hang.
            await until(lambda: len(sender.sent) == 2 and len(receiver.at("/hangs")) == 2, timeout=5)
    finally:
        release.set()
        await dispatcher.drain(15)
    assert type_limits(Settings(max_in_flight=1, type_limits="email=2")) == {"webhook.delivery": 1, "email": 2}
    assert type_limits(Settings(type_limits="webhook.delivery=80")) == {"webhook.delivery": 80}


async def test_a_4xx_answer_is_not_retried(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    receiver.script("/gone", 410)
    created = await schedule(client, callback_url=receiver.url("/gone"))
    await settle(container)
    clock.advance(timedelta(minutes=30))  # long after any retry, before the message is due
    await settle(container)
    assert len(receiver.at("/gone")) == 1
    [event] = await events_of(client, created["id"])
    gone = next(d for d in event["deliveries"] if d["url"] == receiver.url("/gone"))
    assert (gone["status"], gone["attempts"], gone["last_error_code"]) == ("dead", 1, "http_410")
    assert webhook_metric(container, "failed") == 1


async def test_during_rotation_a_receiver_with_only_the_old_secret_verifies(
        clock: FixedClock, receiver: Receiver) -> None:
    rotating = make_container(clock, webhook_secret="new-secret, old-secret")
    receiver.secret = "old-secret"
    async for client in api(rotating):
        await schedule(client, callback_url=receiver.url("/old"))
        await settle(rotating)
    [delivery] = receiver.at("/old")
    assert delivery.verified
    header = delivery.headers["cronjob-signature"]
    assert len(parse(header)[1]) == 2  # type: ignore[index]
    now = clock.now().timestamp()
    assert verify(header, delivery.body, "new-secret", now=now)
    assert not verify(header, delivery.body, "another-secret", now=now)


async def test_a_refused_destination_is_not_delivered(clock: FixedClock, receiver: Receiver) -> None:
    guard = LoopbackOnlyTransport()
    refusing = make_container(clock)
    refusing.webhook_handler.override(providers.Object(WebhookDeliveryHandler(
        secrets=[SECRET], sender=HttpRequestHandler(allow_hosts=["127.0.0.1"], transport=guard), clock=clock)))
    # Stored before the API refused such a callback URL (or by another writer): still refused when sent.
    source = a_one_off(clock, "http://169.254.169.254/latest/meta-data/")
    assert await refusing.publisher().publish(source, source.events)
    await refusing.repository().add(source)
    async for client in api(refusing):
        await settle(refusing)
        [event] = await events_of(client, source.id)
    [delivery] = event["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_error_code"]) == ("dead", 1, "destination_refused")
    assert delivery["url"] == "http://169.254.169.254/latest/meta-data/"
    assert guard.sent == [] and guard.refused == []  # refused before any connection


@pytest.mark.parametrize("url", [
    "http://10.0.0.5/hook?token=SECRET123",  # private
    "http://[::1]:8080/x",  # loopback (only 127.0.0.1 is allowed here)
    "http://0x0a.1/x",  # 10.0.0.1, spelt as inet_aton reads it
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata, by address
    "http://metadata.google.internal/computeMetadata/v1/",  # and by name: refused whatever DNS says
])
async def test_a_callback_url_whose_destination_is_always_refused_is_a_422_wherever_it_is_given(
        client: httpx.AsyncClient, receiver: Receiver, url: str) -> None:
    task = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    answers = [
        await client.post("/schedule-message", json={**SEED, "callback_url": url}),
        await client.post("/v1/schedules", json={"task": task, "schedule": "once @ 2025-06-21T17:00:00Z",
                                                 "callback_url": url}),
    ]
    for response in answers:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["field"] == "callback_url" and "would be refused" in error["message"]
        assert "CRONJOB_HTTP_ALLOW_HOSTS" in error["message"] and "SECRET123" not in response.text
    batch = await client.post("/v1/schedules:batch", json={"schedules": [
        {"task": task, "schedule": "once @ 2025-06-21T17:00:00Z", "callback_url": url},
        {"task": task, "schedule": "once @ 2025-06-21T17:00:00Z", "callback_url": receiver.url("/callback")}]})
    assert batch.status_code == 200, batch.text
    refused, created = batch.json()["results"]
    assert refused["status"] == 422 and [e["field"] for e in refused["errors"]] == ["schedules.0.callback_url"]
    assert created["status"] == 201
    listed = (await client.get("/v1/schedules")).json()["items"]
    assert [s["id"] for s in listed] == [created["id"]]  # nothing else was stored


async def test_a_private_callback_url_on_the_allow_list_is_accepted(clock: FixedClock) -> None:
    allowing = make_container(clock, http_allow_hosts="10.0.0.0/8,169.254.0.0/16")
    async for client in api(allowing):  # none is sent here: only loopback traffic in the tests
        for url, status in [
            ("http://10.0.0.5/hook", 201),
            ("http://169.254.10.1/hook", 201),
            # A metadata address stays refused unless the allow-list names that very address.
            ("http://169.254.169.254/latest/meta-data/", 422),
        ]:
            response = await client.post("/schedule-message", json={**SEED, "callback_url": url})
            assert response.status_code == status, (url, response.text)


async def test_loopback_receivers_need_the_allow_list(clock: FixedClock, receiver: Receiver) -> None:
    strict = make_container(clock, http_allow_hosts="")
    port = receiver.url("/").split(":")[2].split("/")[0]
    callback = f"http://localhost:{port}/callback?token=abc"
    async for client in api(strict):
        literal = await client.post("/schedule-message", json={**SEED, "callback_url": receiver.url("/callback")})
        assert literal.status_code == 422 and literal.json()["errors"][0]["field"] == "callback_url"
        # A host name is accepted: what it resolves to may change, so it is checked when sent.
        created = await schedule(client, callback_url=callback)
        await settle(strict)
        [event] = await events_of(client, created["id"])
    assert receiver.all == []
    [delivery] = event["deliveries"]
    assert delivery["status"] == "dead" and delivery["last_error_code"] == "destination_refused"
    assert delivery["url"] == f"http://localhost:{port}/callback?…"  # the query (a token?) is not shown


async def test_without_a_secret_nothing_is_sent_unsigned(clock: FixedClock, receiver: Receiver) -> None:
    unsigned = make_container(clock, webhook_secret=None, webhook_urls=receiver.url("/global"))
    async for client in api(unsigned):
        created = await schedule(client, callback_url=receiver.url("/callback"))  # accepted
        await settle(unsigned)
        [event] = await events_of(client, created["id"])
    assert receiver.all == []
    assert {(d["status"], d["last_error_code"]) for d in event["deliveries"]} == {("dead", "webhook_secret_missing")}
    assert len(event["deliveries"]) == 2


async def test_the_event_filter_and_the_v1_schedules_callback(clock: FixedClock, receiver: Receiver) -> None:
    filtered = make_container(clock, webhook_events="succeeded,dead", webhook_urls=receiver.url("/global"))
    async for client in api(filtered):
        response = await client.post("/v1/schedules", json={
            "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi, {{1}}", "params": ["Ana"]},
            "schedule": "once @ 2025-06-21T17:00:00Z", "callback_url": receiver.url("/callback")})
        assert response.status_code == 201, response.text
        await settle(filtered)
        clock.set(SEND_AT)
        await settle(filtered)
        log = await events_of(client, response.json()["id"])
    assert [d.type for d in receiver.at("/callback")] == ["succeeded"]
    assert [d.type for d in receiver.at("/global")] == ["succeeded"]
    assert all(d.verified for d in receiver.all)
    assert [len(e["deliveries"]) for e in log] == [0, 0, 2]  # scheduled, started, succeeded


async def test_each_webhook_carries_the_schedule_s_labels_as_they_were_at_its_event(
        client: httpx.AsyncClient, container: Container, clock: FixedClock, receiver: Receiver) -> None:
    response = await client.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "once @ 2025-06-21T17:00:00Z", "labels": {"order": "123", "kind": "reminder"}})
    assert response.status_code == 201, response.text
    path = f"/v1/schedules/{response.json()['id']}"
    relabelled = await client.patch(path, json={"labels": {"order": "123"}})
    assert relabelled.status_code == 200, relabelled.text
    await settle(container)
    clock.set(SEND_AT)
    await settle(container)
    sent = [(d.type, d.event["labels"], d.event["data"].get("labels_changed")) for d in receiver.at("/global")]
    assert sorted(sent, key=repr) == sorted([  # delivered unordered
        ("scheduled", {"order": "123", "kind": "reminder"}, None), ("scheduled", {"order": "123"}, "true"),
        ("started", {"order": "123"}, None), ("succeeded", {"order": "123"}, None)], key=repr)
    assert all(d.verified for d in receiver.all)


async def test_the_running_engine_delivers_on_the_system_clock() -> None:
    server = Receiver(SECRET, time.time).start()
    try:
        live = make_container(None, webhook_urls=server.url("/global"))
        async for client in api(live):
            stop = asyncio.Event()
            engine = asyncio.create_task(live.engine().run(stop))
            try:
                send_at = datetime.now(UTC).isoformat()
                created = await schedule(client, send_at=send_at, callback_url=server.url("/callback"))
                await until(lambda: len(server.all) >= 6)
            finally:
                stop.set()
                await engine
            log = await events_of(client, created["id"])
    finally:
        server.stop()
    expected = Counter({"scheduled": 1, "started": 1, "succeeded": 1})
    assert counted(server.at("/callback")) == expected and counted(server.at("/global")) == expected
    assert all(d.verified for d in server.all)
    assert all(d["status"] == "succeeded" for e in log for d in e["deliveries"])


async def test_deliveries_are_stored_jobs_in_the_sqlite_store(tmp_path: Any, clock: FixedClock,
                                                               receiver: Receiver) -> None:
    durable = make_container(clock, data_dir=str(tmp_path), store="sqlite")
    repository = durable.repository()
    await repository.initialize()
    try:
        async for client in api(durable):
            created = await schedule(client, callback_url=receiver.url("/callback"))
            listed = (await client.get("/v1/schedules", params={"status": "scheduled"})).json()["items"]
            assert [j["id"] for j in listed] == [created["id"]]  # the service's own jobs are left out...
            jobs = (await client.get("/v1/schedules", params={"status": "scheduled", "type": "webhook.delivery"})
                    ).json()["items"]
            [job] = jobs  # ...unless asked for
            assert job["type"] == "webhook.delivery"
            assert job["payload"]["url"] == receiver.url("/callback")
            assert job["payload"]["event"]["schedule_id"] == created["id"]
            assert job["idempotency_key"].startswith("webhook:")
            assert receiver.all == []  # stored first, sent when the engine runs it
            await settle(durable)
            [event] = await events_of(client, created["id"])
    finally:
        await repository.close()
    [delivery] = receiver.at("/callback")
    assert delivery.verified and delivery.headers["cronjob-event-id"] == event["id"]
    assert [(d["status"], d["attempts"]) for d in event["deliveries"]] == [("succeeded", 1)]


@pytest.mark.parametrize(("setting", "value"), [
    ("webhook_urls", "ftp://hooks.example/x"),
    ("webhook_urls", "https://ok.example/a, not a url"),
    ("webhook_events", "succeeded,finished"),
    ("webhook_urls", "https://ok.example/a, http://10.0.0.5/hook"),  # every delivery would be refused
    ("webhook_per_destination", "0"),
    ("webhook_per_destination", "four"),
])
def test_bad_webhook_settings_stop_start_up(setting: str, value: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings(**{setting: value})


def test_webhook_settings_are_parsed() -> None:
    settings = Settings(webhook_secret=" new , old ", webhook_urls="https://a.example/h,https://b.example/h",
                        webhook_events="all")
    assert settings.webhook_secrets == ["new", "old"]
    assert settings.webhook_url_list == ["https://a.example/h", "https://b.example/h"]
    assert settings.webhook_event_filter is None
    assert "new" not in repr(settings)
    allowed = Settings(http_allow_hosts="10.0.0.0/8", webhook_urls="http://10.0.0.5/hook,http://localhost:9/h")
    assert allowed.webhook_url_list == ["http://10.0.0.5/hook", "http://localhost:9/h"]  # a name: checked when sent


class LoopbackOnlyTransport(httpx.AsyncBaseTransport):
    """A real transport that refuses (and records) any request not addressed to loopback."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused: list[httpx.URL] = []
        self.sent: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not ipaddress.ip_address(request.url.host).is_loopback:
            self.refused.append(request.url)
            raise AssertionError(f"tried to connect to {request.url.host}")
        self.sent.append(request.url)
        return await self.inner.handle_async_request(request)
