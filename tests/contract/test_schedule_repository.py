"""The ScheduleRepository contract, run against every store adapter (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision, RetryPolicy
from cronjob.domain.recurring import CalendarTrigger, IntervalTrigger
from cronjob.domain.schedule import MisfirePolicy, Schedule, ScheduleStatus
from cronjob.ports.repository import (
    KEYS_PER_QUERY,
    ConditionalSave,
    DuplicateSchedule,
    ListCursor,
    ListOrder,
    ScheduleRepository,
    list_order,
)
from tests.contract.conftest import StoreFactory
from tests.support.builders import T0, one_off

LEASE = timedelta(seconds=30)


async def test_round_trip_keeps_every_field(store: StoreFactory) -> None:
    repo = await store()
    schedule = one_off(idempotency_key="k-1")
    schedule.retry = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=2))
    schedule.misfire = MisfirePolicy(grace=timedelta(minutes=5), coalesce=False)
    schedule.send_by = T0 + timedelta(hours=1)
    schedule.pause_after_failures, schedule.failed_in_a_row = 3, 2
    schedule.run_timeout = timedelta(seconds=90.5)
    await repo.add(schedule)
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
    claimed.fail(
        attempt_id=claimed.lease.attempt_id,  # type: ignore[union-attr]
        now=T0 + timedelta(seconds=1),
        error=ErrorInfo("130429", "rate limit", retryable=True, details={"http_status": "400"}),
        decision=RetryDecision(T0 + timedelta(seconds=5), "retry"),
    )
    assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING,
                           attempt_id=claimed.attempts[0].attempt_id)
    loaded = await repo.get(schedule.id)
    assert loaded == claimed
    assert loaded is not None and loaded.next_run_at is not None
    assert loaded.next_run_at.tzinfo is not None and loaded.next_run_at.utcoffset() == timedelta(0)
    assert loaded.attempts[0].error == ErrorInfo("130429", "rate limit", True, {"http_status": "400"})
    assert (loaded.pause_after_failures, loaded.failed_in_a_row) == (3, 2)  # as added, not only as claimed
    assert loaded.run_timeout == timedelta(seconds=90.5)


async def test_get_unknown_is_none(store: StoreFactory) -> None:
    repo = await store()
    assert await repo.get("nope") is None
    assert await repo.get_by_idempotency_key("nope") is None


async def test_duplicate_id_and_idempotency_key_are_refused(store: StoreFactory) -> None:
    repo = await store()
    first = one_off(idempotency_key="order-42")
    await repo.add(first)
    with pytest.raises(DuplicateSchedule) as same_id:
        await repo.add(one_off(schedule_id=first.id))
    assert same_id.value.existing_id == first.id
    with pytest.raises(DuplicateSchedule) as same_key:
        await repo.add(one_off(idempotency_key="order-42"))
    assert same_key.value.existing_id == first.id
    found = await repo.get_by_idempotency_key("order-42")
    assert found is not None and found.id == first.id
    # Schedules without a key never collide with each other.
    await repo.add(one_off())
    await repo.add(one_off())
    assert sum((await repo.count_by_status()).values()) == 3


async def test_concurrent_adds_with_a_duplicate_among_them_store_the_others(store: StoreFactory) -> None:
    # SQLite commits concurrent adds together: the duplicate is refused to its caller alone.
    repo = await store()
    first = one_off(idempotency_key="order-42")
    await repo.add(first)
    fresh = [one_off(idempotency_key=f"k-{i}") for i in range(6)]
    again = one_off(idempotency_key="order-42")
    answers = await asyncio.gather(*(repo.add(s) for s in [*fresh[:3], again, *fresh[3:]]), return_exceptions=True)
    assert answers[:3] == [None] * 3 and answers[4:] == [None] * 3
    assert isinstance(answers[3], DuplicateSchedule) and answers[3].existing_id == first.id
    for schedule in fresh:
        assert await repo.get(schedule.id) == schedule
    assert await repo.get(again.id) is None
    assert sum((await repo.count_by_status()).values()) == 7


async def test_add_many_stores_each_and_answers_each_duplicate_in_order(store: StoreFactory) -> None:
    repo = await store()
    first = one_off(idempotency_key="order-42")
    await repo.add(first)
    keyed = one_off(idempotency_key="k-b")
    batch = [
        one_off(),
        one_off(schedule_id=first.id),              # the id taken
        keyed,
        one_off(idempotency_key="order-42"),        # the key taken
        one_off(idempotency_key="k-b"),             # the key of one before it in the batch
        one_off(user_id="other"),
    ]
    assert await repo.add_many(batch) == [None, first.id, None, first.id, keyed.id, None]
    for schedule in (batch[0], keyed, batch[5]):
        assert await repo.get(schedule.id) == schedule
    assert await repo.get(first.id) == first  # not replaced by the one with its id
    assert await repo.get(batch[3].id) is None and await repo.get(batch[4].id) is None
    found = await repo.get_by_idempotency_key("k-b")
    assert found is not None and found.id == keyed.id
    assert sum((await repo.count_by_status()).values()) == 4
    # Added again (a retry after an error): each one written answers as a duplicate of itself.
    assert await repo.add_many([batch[0], keyed]) == [batch[0].id, keyed.id]
    assert await repo.add_many([]) == []
    assert sum((await repo.count_by_status()).values()) == 4


async def test_get_by_idempotency_keys_answers_each_stored_one_under_its_key(store: StoreFactory) -> None:
    repo = await store()
    odd = "pedido-ção %_'\"[x]*.$"  # characters a query language could take for its own
    stored = {key: one_off(T0 + timedelta(hours=1), idempotency_key=key) for key in ("order-2", odd, "order-10")}
    stored["order-1"] = one_off(idempotency_key="order-1")  # the one due
    assert await repo.add_many([*stored.values(), one_off(T0 + timedelta(hours=1))]) == [None] * 5
    [claimed] = await repo.claim_due(now=T0, owner="r", lease_for=LEASE, limit=1)
    asked = ["order-2", "nope", "order-1", "order-2", "", odd, "order-", "ORDER-1", "order-2"]
    found = await repo.get_by_idempotency_keys(asked)
    assert sorted(found) == sorted(["order-1", "order-2", odd])  # no unknown, empty or look-alike key
    for key, schedule in found.items():
        assert schedule == await repo.get(stored[key].id) == await repo.get_by_idempotency_key(key)
    assert found["order-1"] == claimed  # as it is now, claimed, not as it was added
    assert await repo.get_by_idempotency_keys(iter(["order-10"])) == {"order-10": stored["order-10"]}
    assert await repo.get_by_idempotency_keys(["nope", "order-3"]) == {}
    assert await repo.get_by_idempotency_keys([]) == {}


async def test_get_by_idempotency_keys_takes_more_keys_than_one_query_asks_for(store: StoreFactory) -> None:
    repo = await store()
    keys = [f"camp-{i}" for i in range(2 * KEYS_PER_QUERY + 1)]  # three queries' worth
    kept = [0, KEYS_PER_QUERY - 1, KEYS_PER_QUERY, 2 * KEYS_PER_QUERY - 1, 2 * KEYS_PER_QUERY]  # each query's edges
    schedules = [one_off(idempotency_key=keys[i]) for i in kept]
    await repo.add_many(schedules)
    found = await repo.get_by_idempotency_keys([*keys, *reversed(keys)])  # each key twice
    assert {key: s.id for key, s in found.items()} == {s.idempotency_key: s.id for s in schedules}


async def test_get_by_idempotency_keys_of_no_keys_asks_nothing_of_the_store(store: StoreFactory) -> None:
    closed = await store()
    await closed.close()  # any question to it now fails (the in-memory store has none to ask)
    assert await closed.get_by_idempotency_keys([]) == {}
    assert await closed.get_by_idempotency_keys(["", ""]) == {}  # no schedule holds an empty key


async def test_claim_takes_due_work_oldest_first_within_limit(store: StoreFactory) -> None:
    repo = await store()
    due = [one_off(T0 - timedelta(seconds=s)) for s in (5, 1, 3)]
    later = one_off(T0 + timedelta(seconds=1))
    for schedule in [*due, later]:
        await repo.add(schedule)
    claimed = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=2)
    assert [c.id for c in claimed] == [due[0].id, due[2].id]
    for c in claimed:
        assert c.status is ScheduleStatus.RUNNING
        assert c.lease is not None and c.lease.owner == "r1"
        assert c.lease.until == T0 + LEASE
        assert await repo.get(c.id) == c
    assert len({c.lease.attempt_id for c in claimed if c.lease}) == 2
    rest = await repo.claim_due(now=T0, owner="r2", lease_for=LEASE, limit=10)
    assert [c.id for c in rest] == [due[1].id]
    assert await repo.claim_due(now=T0, owner="r3", lease_for=LEASE, limit=10) == []


async def test_concurrent_claimers_each_get_distinct_work(store: StoreFactory) -> None:
    repos = [await store() for _ in range(4)]
    schedules = [one_off(T0 - timedelta(milliseconds=i)) for i in range(40)]
    for schedule in schedules:
        await repos[0].add(schedule)

    async def drain(index: int) -> list[str]:
        won: list[str] = []
        while batch := await repos[index].claim_due(now=T0, owner=f"r{index}", lease_for=LEASE, limit=3):
            won.extend(s.id for s in batch)
            await asyncio.sleep(0)
        return won

    results = await asyncio.gather(*(drain(i) for i in range(4)))
    every = [sid for won in results for sid in won]
    assert sorted(every) == sorted(s.id for s in schedules)
    assert len(every) == len(set(every))


async def test_lapsed_lease_is_reclaimed_and_old_owner_is_fenced(store: StoreFactory) -> None:
    repo = await store()
    schedule = one_off()
    await repo.add(schedule)
    [first] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
    assert await repo.claim_due(now=T0 + LEASE, owner="r2", lease_for=LEASE, limit=1) == []
    later = T0 + LEASE + timedelta(seconds=1)
    [second] = await repo.claim_due(now=later, owner="r2", lease_for=LEASE, limit=1)
    assert second.id == first.id and second.lease is not None and first.lease is not None
    assert second.lease.attempt_id != first.lease.attempt_id and second.lease.owner == "r2"
    assert second.lease.taken_over_from == "r1" and first.lease.taken_over_from is None
    # The replica whose lease lapsed can neither renew nor write its result.
    assert not await repo.renew_lease(first.id, first.lease.attempt_id, later + LEASE)
    first.succeed(attempt_id=first.lease.attempt_id, now=later, provider_message_id="wamid.OLD")
    assert not await repo.save(first, expected_status=ScheduleStatus.RUNNING,
                               attempt_id=first.attempts[-1].attempt_id)
    second.succeed(attempt_id=second.lease.attempt_id, now=later, provider_message_id="wamid.NEW")
    assert await repo.save(second, expected_status=ScheduleStatus.RUNNING,
                           attempt_id=second.attempts[-1].attempt_id)
    stored = await repo.get(first.id)
    assert stored is not None and stored.status is ScheduleStatus.SUCCEEDED
    assert stored.result["provider_message_id"] == "wamid.NEW"


async def cancelled_mid_run(repo: ScheduleRepository) -> Schedule:
    """A recurring schedule, claimed and started at T0, then cancelled at T0 + 5 s (a write
    conditional on the running version read, which takes the lease away): the run's own copy."""
    schedule = Schedule.create(id="every-minute", task_type="whatsapp.text", payload={"to": "5511999999999"},
                               trigger=IntervalTrigger(timedelta(minutes=1), T0), timezone="UTC",
                               first_run_at=T0, now=T0 - timedelta(minutes=1))
    await repo.add(schedule)
    [run] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
    assert run.lease is not None
    run.mark_started(attempt_id=run.lease.attempt_id, now=T0)
    read = await repo.get(run.id)
    assert read is not None and read.status is ScheduleStatus.RUNNING
    version = read.updated_at
    read.cancel(now=T0 + timedelta(seconds=5))
    assert await repo.save(read, expected_status=ScheduleStatus.RUNNING, expected_updated_at=version)
    return run


async def test_a_cancel_while_running_fences_the_run_out(store: StoreFactory) -> None:
    """Cancelling a recurring schedule mid-run takes the lease away, so the run's own fenced
    write of its outcome is refused."""
    repo = await store()
    run = await cancelled_mid_run(repo)
    assert run.lease is not None
    assert not await repo.renew_lease(run.id, run.lease.attempt_id, T0 + LEASE * 2)
    run.succeed(attempt_id=run.lease.attempt_id, now=T0 + timedelta(seconds=9), provider_message_id="wamid.1")
    assert not await repo.save(run, expected_status=ScheduleStatus.RUNNING, attempt_id=run.attempts[-1].attempt_id)
    stored = await repo.get(run.id)
    assert stored is not None and (stored.status, stored.lease, stored.attempts) == (ScheduleStatus.CANCELLED, None, [])
    assert await repo.claim_due(now=T0 + timedelta(hours=1), owner="r2", lease_for=LEASE, limit=5) == []


async def test_a_run_going_on_when_its_schedule_is_cancelled_is_kept_by_it_in_a_write_without_a_lease(
        store: StoreFactory) -> None:
    """The run's fenced write is refused (the cancel took its lease); its record is added to the
    cancelled schedule in a write conditional on ``cancelled`` and the version read. The store
    keeps it whole, finds it by the message id the run sent, never claims it, and refuses the
    same write on a stale version (a change made meanwhile)."""
    repo = await store()
    run = await cancelled_mid_run(repo)
    assert run.lease is not None
    attempt_id = run.lease.attempt_id
    run.succeed(attempt_id=attempt_id, now=T0 + timedelta(seconds=9), provider_message_id="wamid.after")
    assert not await repo.save(run, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)

    record = run.run_record(attempt_id)
    assert record is not None
    cancelled = await repo.get(run.id)
    assert cancelled is not None and cancelled.awaits_run(attempt_id)
    version = cancelled.updated_at
    stale = cancelled.copy()
    cancelled.keep_run(record, now=T0 + timedelta(seconds=9))
    assert not await repo.save(cancelled, expected_status=ScheduleStatus.RUNNING, expected_updated_at=version)
    assert await repo.save(cancelled, expected_status=ScheduleStatus.CANCELLED, expected_updated_at=version)
    stale.keep_run(record, now=T0 + timedelta(seconds=10))  # one that read before that write: refused
    assert not await repo.save(stale, expected_status=ScheduleStatus.CANCELLED, expected_updated_at=version)

    stored = await repo.get(run.id)
    assert stored == cancelled
    assert (stored.status, stored.next_run_at, stored.lease) == (ScheduleStatus.CANCELLED, None, None)
    assert [(a.attempt_id, a.outcome) for a in stored.attempts] == [(attempt_id, "succeeded")]
    assert [e.type for e in stored.events] == ["scheduled", "started", "cancelled", "succeeded"]
    assert stored.events[-1].data["after_cancel"] == "true"
    assert await repo.get_by_provider_message_id("wamid.after") == stored
    assert await repo.count_by_status() == {ScheduleStatus.CANCELLED: 1}
    assert await repo.claim_due(now=T0 + timedelta(hours=1), owner="r2", lease_for=LEASE, limit=5) == []
    assert await repo.next_due_at() is None


async def test_a_zone_requests_may_no_longer_name_still_loads_from_the_store(store: StoreFactory) -> None:
    """An earlier version took ``localtime`` and the like; what it stored must still be read,
    listed and claimed (a schedule that cannot be read would break every claim that meets it)."""
    repo = await store()
    legacy = Schedule.create(id="legacy-zone", task_type="whatsapp.text", payload={"to": "5511999999999"},
                             trigger=CalendarTrigger(time(9, 0), "localtime"), timezone="localtime",
                             first_run_at=T0, now=T0 - timedelta(minutes=1))
    await repo.add(legacy)
    assert (await repo.get(legacy.id)) is not None
    assert [s.id for s in await repo.list(limit=10)] == [legacy.id]
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=5)
    assert claimed.id == legacy.id and claimed.timezone == "localtime"


async def test_renew_extends_only_the_current_lease(store: StoreFactory) -> None:
    repo = await store()
    await repo.add(one_off())
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
    assert claimed.lease is not None
    assert await repo.renew_lease(claimed.id, claimed.lease.attempt_id, T0 + 2 * LEASE)
    assert not await repo.renew_lease(claimed.id, "someone-else", T0 + 3 * LEASE)
    # Still held at T0 + 1.5 lease because of the renewal.
    assert await repo.claim_due(now=T0 + LEASE * 1.5, owner="r2", lease_for=LEASE, limit=1) == []
    stored = await repo.get(claimed.id)
    assert stored is not None and stored.lease is not None and stored.lease.until == T0 + 2 * LEASE


async def test_save_is_conditional_on_status(store: StoreFactory) -> None:
    repo = await store()
    schedule = one_off()
    await repo.add(schedule)
    cancelled = schedule.copy()
    cancelled.cancel(now=T0)
    assert not await repo.save(cancelled, expected_status=ScheduleStatus.RUNNING)
    assert await repo.save(cancelled, expected_status=ScheduleStatus.SCHEDULED)
    stored = await repo.get(schedule.id)
    assert stored is not None and stored.status is ScheduleStatus.CANCELLED
    assert await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=5) == []


async def test_next_due_at_sees_pending_work_and_leases(store: StoreFactory) -> None:
    repo = await store()
    assert await repo.next_due_at() is None
    await repo.add(one_off(T0 + timedelta(hours=1)))
    await repo.add(one_off(T0))
    assert await repo.next_due_at() == T0
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)
    assert await repo.next_due_at() == T0 + LEASE
    assert claimed.lease is not None
    claimed.succeed(attempt_id=claimed.lease.attempt_id, now=T0)
    assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING,
                           attempt_id=claimed.attempts[-1].attempt_id)
    assert await repo.next_due_at() == T0 + timedelta(hours=1)


async def test_a_paused_schedule_is_never_due_until_resumed(store: StoreFactory) -> None:
    repo = await store()
    paused, later = one_off(T0 - timedelta(minutes=5)), one_off(T0 + timedelta(hours=1))
    for schedule in (paused, later):
        await repo.add(schedule)
    held = paused.copy()
    held.pause(now=T0 - timedelta(minutes=1))
    assert await repo.save(held, expected_status=ScheduleStatus.SCHEDULED)
    assert await repo.next_due_at() == T0 + timedelta(hours=1)
    assert await repo.claim_due(now=T0 + timedelta(minutes=1), owner="r1", lease_for=LEASE, limit=5) == []
    [listed] = await repo.list(status=ScheduleStatus.PAUSED)
    assert (listed.id, listed.next_run_at) == (paused.id, T0 - timedelta(minutes=5))
    assert (await repo.count_by_status())[ScheduleStatus.PAUSED] == 1
    with pytest.raises(ValueError):
        await repo.delete_finished(before=T0, statuses=[ScheduleStatus.PAUSED], limit=10)

    listed.resume(now=T0)
    assert await repo.save(listed, expected_status=ScheduleStatus.PAUSED)
    assert await repo.next_due_at() == T0 - timedelta(minutes=5)
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=5)
    assert claimed.id == paused.id


async def test_list_newest_first_and_counts(store: StoreFactory) -> None:
    repo = await store()
    made = [one_off(now=T0 - timedelta(minutes=10 - i)) for i in range(5)]
    for schedule in made:
        await repo.add(schedule)
    cancelled = made[0].copy()
    cancelled.cancel(now=T0)
    assert await repo.save(cancelled, expected_status=ScheduleStatus.SCHEDULED)
    listed = await repo.list(limit=3)
    assert [s.id for s in listed] == [made[4].id, made[3].id, made[2].id]
    assert [s.id for s in await repo.list(limit=3, offset=3)] == [made[1].id, made[0].id]
    assert [s.id for s in await repo.list(status=ScheduleStatus.CANCELLED)] == [made[0].id]
    counts = await repo.count_by_status()
    assert counts[ScheduleStatus.SCHEDULED] == 4 and counts[ScheduleStatus.CANCELLED] == 1
    await repo.add(one_off(task_type="email"))
    by_type = {k: v for k, v in (await repo.count_by_status_and_type()).items() if v}
    assert by_type == {(ScheduleStatus.SCHEDULED, "whatsapp.text"): 4,
                       (ScheduleStatus.CANCELLED, "whatsapp.text"): 1,
                       (ScheduleStatus.SCHEDULED, "email"): 1}


async def test_list_filters_by_task_type(store: StoreFactory) -> None:
    repo = await store()
    text = one_off(now=T0 - timedelta(minutes=3))
    email = one_off(task_type="email", now=T0 - timedelta(minutes=2))
    delivery = one_off(task_type="webhook.delivery", now=T0 - timedelta(minutes=1))
    for schedule in (text, email, delivery):
        await repo.add(schedule)

    async def ids(**filters: object) -> list[str]:
        return [s.id for s in await repo.list(**filters)]  # type: ignore[arg-type]

    assert await ids() == [delivery.id, email.id, text.id]
    assert await ids(task_types=["email"]) == [email.id]
    assert await ids(task_types=["email", "whatsapp.text"]) == [email.id, text.id]
    assert await ids(task_types=[]) == []
    assert await ids(exclude_types=["webhook.delivery"]) == [email.id, text.id]
    assert await ids(task_types=["webhook.delivery"], exclude_types=["webhook.delivery"]) == []
    assert await ids(exclude_types=["webhook.delivery"], limit=1, offset=1) == [text.id]
    assert await ids(status=ScheduleStatus.SCHEDULED, task_types=["whatsapp.text"]) == [text.id]
    assert await ids(status=ScheduleStatus.CANCELLED, task_types=["whatsapp.text"]) == []


async def test_list_filters_by_user(store: StoreFactory) -> None:
    repo = await store()
    ana = [one_off(user_id="ana", now=T0 - timedelta(minutes=5 - i)) for i in range(3)]
    bruno = one_off(user_id="bruno", now=T0 - timedelta(minutes=1))
    nobody = one_off(user_id=None, now=T0)
    for schedule in (*ana, bruno, nobody):
        await repo.add(schedule)
    cancelled = ana[0].copy()
    cancelled.cancel(now=T0)
    assert await repo.save(cancelled, expected_status=ScheduleStatus.SCHEDULED)

    async def ids(**filters: object) -> list[str]:
        return [s.id for s in await repo.list(**filters)]  # type: ignore[arg-type]

    assert await ids(user_id="ana") == [ana[2].id, ana[1].id, ana[0].id]  # newest first
    assert await ids(user_id="ana", limit=1, offset=1) == [ana[1].id]
    assert await ids(user_id="ana", status=ScheduleStatus.CANCELLED) == [ana[0].id]
    assert await ids(user_id="bruno", task_types=["email"]) == []
    assert await ids(user_id="bruno", exclude_types=["email"]) == [bruno.id]
    assert await ids(user_id="ANA") == [] and await ids(user_id="") == []  # exact, case and all
    assert len(await ids()) == 5  # no filter: everyone's, and those without a user


async def test_labels_are_kept_and_listed_by_every_label_given(store: StoreFactory) -> None:
    repo = await store()
    first = one_off(labels={"order": "123", "kind": "reminder"}, now=T0 - timedelta(minutes=5))
    later = T0 + timedelta(hours=1)  # only the first is due at T0
    second = one_off(later, labels={"order": "123", "kind": "reminder", "x.io/team": ""},
                     now=T0 - timedelta(minutes=4))
    receipt = one_off(later, labels={"order": "123", "kind": "receipt"}, user_id="bruno",
                      now=T0 - timedelta(minutes=3))
    other = one_off(later, labels={"order": "1234"}, now=T0 - timedelta(minutes=2))
    bare = one_off(later, now=T0 - timedelta(minutes=1))
    for schedule in (first, second, receipt, other, bare):
        await repo.add(schedule)

    async def ids(**filters: object) -> list[str]:
        return [s.id for s in await repo.list(**filters)]  # type: ignore[arg-type]

    assert await repo.get(second.id) == second and (await repo.get(bare.id)).labels == {}  # type: ignore[union-attr]
    assert await ids(labels={"order": "123"}) == [receipt.id, second.id, first.id]  # newest first
    assert await ids(labels={"order": "123", "kind": "reminder"}) == [second.id, first.id]  # all of them
    assert await ids(labels={"kind": "reminder", "order": "123"}, limit=1, offset=1) == [first.id]
    assert await ids(labels={"x.io/team": ""}) == [second.id]  # an empty value is a value
    assert await ids(labels={"order": "12"}) == [] and await ids(labels={"Order": "123"}) == []  # exact
    assert await ids(labels={"order": "123", "nope": "1"}) == []
    assert await ids(labels={"order": "123"}, user_id="bruno") == [receipt.id]
    assert await ids(labels={"order": "123"}, user_id="abc123", status=ScheduleStatus.SCHEDULED,
                     task_types=["whatsapp.text"]) == [second.id, first.id]
    assert await ids(labels={"order": "123"}, exclude_types=["whatsapp.text"]) == []
    assert len(await ids(labels={})) == len(await ids(labels=None)) == 5  # no label filter

    # A save that changes the labels moves the schedule in the index; one that keeps them does not.
    changed = first.copy()
    changed.relabel(labels={"order": "999"}, now=T0)
    assert await repo.save(changed, expected_status=ScheduleStatus.SCHEDULED)
    assert await ids(labels={"order": "123"}) == [receipt.id, second.id]
    assert await ids(labels={"order": "999"}) == [first.id]
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
    assert claimed.id == first.id and claimed.labels == {"order": "999"} and await ids(labels={"order": "999"}) == [first.id]
    cleared = second.copy()
    cleared.relabel(labels={}, now=T0)
    assert await repo.save(cleared, expected_status=ScheduleStatus.SCHEDULED)
    assert await ids(labels={"x.io/team": ""}) == [] and (await repo.get(second.id)).labels == {}  # type: ignore[union-attr]
    # Purged schedules leave the index with their rows.
    cancelled = receipt.copy()
    cancelled.cancel(now=T0)
    assert await repo.save(cancelled, expected_status=ScheduleStatus.CANCELLED) is False
    assert await repo.save(cancelled, expected_status=ScheduleStatus.SCHEDULED)
    assert await repo.delete_finished(before=T0 + timedelta(days=1), statuses=[ScheduleStatus.CANCELLED],
                                      limit=10) == 1
    assert await ids(labels={"order": "123"}) == []


# -- list in a due-time window ---------------------------------------------------------------

MINUTE, HOUR, MS = timedelta(minutes=1), timedelta(hours=1), timedelta(milliseconds=1)


def _lister(repo: ScheduleRepository) -> Callable[..., Awaitable[list[str]]]:
    """``ids(**filters)``: the ids ``repo.list(**filters)`` returns, in its order."""
    async def ids(**filters: Any) -> list[str]:
        return [s.id for s in await repo.list(**filters)]

    return ids


async def test_a_due_window_is_half_open_to_the_millisecond(store: StoreFactory) -> None:
    repo = await store()
    due = {"before": T0 - MS, "first": T0, "last": T0 + HOUR - MS, "end": T0 + HOUR}
    for name, at in due.items():
        await repo.add(one_off(at, schedule_id=name, now=T0 - timedelta(days=1)))
    ids = _lister(repo)

    assert await ids(due_after=T0, due_before=T0 + HOUR) == ["first", "last"]  # after <= due < before
    assert await ids(due_after=T0) == ["first", "last", "end"]  # either side may stay open
    assert await ids(due_before=T0 + HOUR) == ["before", "first", "last"]
    assert await ids(due_before=T0) == ["before"]
    assert await ids(due_after=T0 + HOUR) == ["end"]
    assert await ids(due_after=T0, due_before=T0 + MS) == ["first"]
    # Bounds are instants, whatever their offset.
    sao_paulo = timezone(timedelta(hours=-3))
    assert await ids(due_after=T0.astimezone(sao_paulo), due_before=(T0 + HOUR).astimezone(sao_paulo)) == [
        "first", "last"]
    # A bound between two milliseconds selects what the instant itself does (not its millisecond cut down).
    half = timedelta(microseconds=500)
    assert await ids(due_after=T0 - half) == ["first", "last", "end"]  # T0 - 1 ms is before it
    assert await ids(due_before=T0 + half) == ["before", "first"]  # T0 is before it
    assert await ids(due_after=T0 + half, due_before=T0 + HOUR - half) == ["last"]
    assert await ids(due_after=T0 + half, due_before=T0 + MS) == []


async def test_a_due_window_lists_soonest_first_ties_by_id_in_pages(store: StoreFactory) -> None:
    repo = await store()
    # Created in another order than they are due; three due at once, their ids out of order.
    plan = [("m", T0 + 2 * MINUTE), ("c", T0), ("a", T0 + MINUTE), ("z", T0 + MINUTE), ("b", T0 + MINUTE),
            ("d", T0 + 3 * MINUTE)]
    for index, (name, at) in enumerate(plan):
        await repo.add(one_off(at, schedule_id=name, now=T0 - HOUR + index * MINUTE))
    # Across the live statuses: one runs, two are paused (one due with others, its id after theirs).
    [running] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
    assert running.id == "c"
    for name in ("z", "m"):
        held = await repo.get(name)
        assert held is not None
        held.pause(now=T0)
        assert await repo.save(held, expected_status=ScheduleStatus.SCHEDULED)
    ids = _lister(repo)

    assert await ids(due_after=T0) == ["c", "a", "b", "z", "m", "d"]
    assert await ids(due_after=T0, limit=2) == ["c", "a"]
    assert await ids(due_after=T0, limit=2, offset=2) == ["b", "z"]
    assert await ids(due_after=T0, limit=3, offset=3) == ["z", "m", "d"]
    assert [await ids(due_after=T0, limit=1, offset=i) for i in range(7)] == [["c"], ["a"], ["b"], ["z"], ["m"], ["d"], []]
    assert await ids(due_after=T0, limit=2, offset=6) == []
    assert await ids() == ["d", "b", "z", "a", "c", "m"]  # without a window: newest first, as ever


async def test_a_due_window_holds_only_live_schedules(store: StoreFactory) -> None:
    repo = await store()
    due = {"done": T0 - 3 * MINUTE, "running": T0 - 2 * MINUTE, "timeless": T0 - MINUTE,
           "waiting": T0 + MINUTE, "paused": T0 + 2 * MINUTE, "cancelled": T0 + 3 * MINUTE}
    for name, at in due.items():
        await repo.add(one_off(at, schedule_id=name, now=T0 - HOUR))
    claimed = {s.id: s for s in await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)}
    assert set(claimed) == {"done", "running", "timeless"}
    done, timeless = claimed["done"], claimed["timeless"]
    assert done.lease is not None and timeless.lease is not None
    done.succeed(attempt_id=done.lease.attempt_id, now=T0)
    assert await repo.save(done, expected_status=ScheduleStatus.RUNNING, attempt_id=done.attempts[-1].attempt_id)
    timeless.next_run_at = None  # a live schedule with no due time stored is in no window
    assert await repo.save(timeless, expected_status=ScheduleStatus.RUNNING, attempt_id=timeless.lease.attempt_id)
    paused = await repo.get("paused")
    assert paused is not None
    paused.pause(now=T0)
    assert await repo.save(paused, expected_status=ScheduleStatus.SCHEDULED)
    cancelled = await repo.get("cancelled")
    assert cancelled is not None
    cancelled.cancel(now=T0)
    cancelled.next_run_at = due["cancelled"]  # a final status is in no window, whatever time it stored
    assert await repo.save(cancelled, expected_status=ScheduleStatus.SCHEDULED)
    ids = _lister(repo)

    window: dict[str, Any] = {"due_after": T0 - HOUR, "due_before": T0 + HOUR}
    assert await ids(**window) == ["running", "waiting", "paused"]
    assert await ids(due_before=T0 + HOUR) == ["running", "waiting", "paused"]
    assert await ids(due_after=T0 - HOUR) == ["running", "waiting", "paused"]
    assert await ids(**window, status=ScheduleStatus.PAUSED) == ["paused"]
    assert await ids(**window, status=ScheduleStatus.RUNNING) == ["running"]
    assert await ids(**window, status=ScheduleStatus.SCHEDULED) == ["waiting"]
    for final in (ScheduleStatus.SUCCEEDED, ScheduleStatus.CANCELLED, ScheduleStatus.DEAD):
        assert await ids(**window, status=final) == []
    assert await ids(status=ScheduleStatus.CANCELLED) == ["cancelled"]  # without a window: listed as ever
    assert await ids(status=ScheduleStatus.RUNNING) == ["timeless", "running"]


async def test_a_due_window_combines_with_every_other_filter(store: StoreFactory) -> None:
    repo = await store()
    for schedule in (
        one_off(T0, schedule_id="ana-text", user_id="ana", labels={"order": "1"}),
        one_off(T0 + MINUTE, schedule_id="ana-email", user_id="ana", task_type="email",
                labels={"order": "1", "kind": "receipt"}),
        one_off(T0 + 2 * MINUTE, schedule_id="bruno", user_id="bruno", labels={"order": "1"}),
        one_off(T0 + 3 * MINUTE, schedule_id="delivery", user_id=None, task_type="webhook.delivery"),
        one_off(T0 + 2 * HOUR, schedule_id="ana-later", user_id="ana", labels={"order": "1"}),
    ):
        await repo.add(schedule)
    ids = _lister(repo)

    window: dict[str, Any] = {"due_after": T0, "due_before": T0 + HOUR}
    assert await ids(**window) == ["ana-text", "ana-email", "bruno", "delivery"]
    assert await ids(**window, user_id="ana") == ["ana-text", "ana-email"]
    assert await ids(due_after=T0, user_id="ana") == ["ana-text", "ana-email", "ana-later"]
    assert await ids(**window, labels={"order": "1"}) == ["ana-text", "ana-email", "bruno"]
    assert await ids(**window, labels={"order": "1", "kind": "receipt"}) == ["ana-email"]
    assert await ids(**window, task_types=["email"]) == ["ana-email"]
    assert await ids(**window, task_types=[]) == []
    assert await ids(**window, exclude_types=["webhook.delivery"]) == ["ana-text", "ana-email", "bruno"]
    assert await ids(**window, user_id="ana", labels={"order": "1"}, task_types=["whatsapp.text"],
                     status=ScheduleStatus.SCHEDULED) == ["ana-text"]
    assert await ids(**window, labels={"order": "1"}, limit=1, offset=1) == ["ana-email"]
    assert await ids(**window, user_id="ana", limit=1, offset=1) == ["ana-email"]
    assert await ids(**window, user_id="bruno", labels={"kind": "receipt"}) == []


# -- list in a last-change window ------------------------------------------------------------

DAY = timedelta(days=1)


async def _change(repo: ScheduleRepository, schedule_id: str, change: Callable[[Schedule], None]) -> None:
    """Read the waiting schedule ``schedule_id``, ``change`` it and save it (its ``updated_at`` moves)."""
    stored = await repo.get(schedule_id)
    assert stored is not None
    status = stored.status
    change(stored)
    assert await repo.save(stored, expected_status=status)


async def test_a_last_change_window_is_half_open_to_the_millisecond(store: StoreFactory) -> None:
    repo = await store()
    # Made (so last changed) one after the other around T0, due long after; "old" is made the
    # day before and only changed (cancelled) in the window: it is the change that counts.
    changed = {"before": T0 - MS, "first": T0, "last": T0 + HOUR - MS, "end": T0 + HOUR}
    await repo.add(one_off(T0 + DAY, schedule_id="old", now=T0 - DAY))
    for name, at in changed.items():
        await repo.add(one_off(T0 + DAY, schedule_id=name, now=at))
    await _change(repo, "old", lambda s: s.cancel(now=T0 + MINUTE))
    ids = _lister(repo)

    window: dict[str, Any] = {"updated_after": T0, "updated_before": T0 + HOUR}
    assert await ids(**window) == ["last", "first", "old"]  # after <= updated_at < before, newest made first
    assert await ids(updated_after=T0) == ["end", "last", "first", "old"]  # either side may stay open
    assert await ids(updated_before=T0 + HOUR) == ["last", "first", "before", "old"]
    assert await ids(updated_before=T0) == ["before"]
    assert await ids(updated_after=T0 + HOUR) == ["end"]
    assert await ids(updated_after=T0, updated_before=T0 + MS) == ["first"]
    assert await ids(**window, status=ScheduleStatus.CANCELLED) == ["old"]  # in any status
    assert await ids(**window, limit=1, offset=1) == ["first"]
    # Bounds are instants, whatever their offset.
    sao_paulo = timezone(timedelta(hours=-3))
    assert await ids(updated_after=T0.astimezone(sao_paulo), updated_before=(T0 + HOUR).astimezone(sao_paulo)) == [
        "last", "first", "old"]
    # A bound between two milliseconds selects what the instant itself does (not its millisecond cut down).
    half = timedelta(microseconds=500)
    assert await ids(updated_after=T0 - half) == ["end", "last", "first", "old"]  # T0 - 1 ms is before it
    assert await ids(updated_before=T0 + half) == ["first", "before"]  # T0 is before it
    assert await ids(updated_after=T0 + half, updated_before=T0 + HOUR - half) == ["last", "old"]
    assert await ids(updated_after=T0 + half, updated_before=T0 + MS) == []


async def test_a_last_change_within_a_millisecond_is_that_millisecond_s(store: StoreFactory) -> None:
    """A change stamped with a fraction of a millisecond is kept as its millisecond (MongoDB's
    precision): a bound inside that millisecond, after the fraction or before it, acts as the next
    one in every store, whether the store kept the fraction or not."""
    repo = await store()
    await repo.add(one_off(T0 + DAY, schedule_id="fraction", now=T0 + timedelta(microseconds=300)))
    ids = _lister(repo)

    assert await ids(updated_after=T0 + timedelta(microseconds=200)) == []  # stored as T0: before it
    assert await ids(updated_after=T0) == ["fraction"]
    assert await ids(updated_before=T0 + timedelta(microseconds=200)) == ["fraction"]  # acts as T0 + 1 ms
    assert await ids(updated_before=T0) == []


async def test_a_last_change_window_combines_with_every_other_filter(store: StoreFactory) -> None:
    repo = await store()
    made = T0 - DAY  # each made a minute after the one before, the first in the window last
    for schedule in (
        one_off(T0 + 3 * HOUR, schedule_id="a-waiting", user_id="ana", labels={"order": "1"}, now=T0 + 5 * MINUTE),
        one_off(T0 + 2 * HOUR, schedule_id="b-paused", user_id="ana", labels={"order": "1"}, now=made + 1 * MINUTE),
        one_off(T0 + 2 * HOUR, schedule_id="c-cancelled", user_id="ana", labels={"order": "2"}, now=made + 2 * MINUTE),
        one_off(T0 + 2 * HOUR, schedule_id="d-cancelled-late", user_id="ana", labels={"order": "1"},
                now=made + 3 * MINUTE),
        one_off(T0 + 4 * HOUR, schedule_id="e-bruno", user_id="bruno", labels={"order": "1"}, now=made + 4 * MINUTE),
        one_off(T0 + 90 * MINUTE, schedule_id="f-untouched", user_id="ana", labels={"order": "1"},
                now=made + 5 * MINUTE),
        one_off(made + HOUR, schedule_id="g-running", user_id="ana", labels={"order": "1"}, now=made + 6 * MINUTE),
        one_off(made + HOUR, schedule_id="h-dead", user_id="ana", task_type="email", labels={"order": "1"},
                now=made + 7 * MINUTE),
    ):
        await repo.add(schedule)
    await _change(repo, "b-paused", lambda s: s.pause(now=T0 + 10 * MINUTE))
    await _change(repo, "c-cancelled", lambda s: s.cancel(now=T0 + 20 * MINUTE))
    await _change(repo, "d-cancelled-late", lambda s: s.cancel(now=T0 + 2 * HOUR))
    await _change(repo, "e-bruno", lambda s: s.pause(now=T0 + 30 * MINUTE))
    claimed = {s.id: s for s in await repo.claim_due(now=T0 + 40 * MINUTE, owner="r1", lease_for=LEASE, limit=10)}
    assert set(claimed) == {"g-running", "h-dead"}  # a claim is a change too
    dead = claimed["h-dead"]
    assert dead.lease is not None
    attempt = dead.lease.attempt_id
    dead.fail(attempt_id=attempt, now=T0 + 50 * MINUTE, error=ErrorInfo("190", "expired token"),
              decision=RetryDecision(retry_at=None, reason="permanent"))
    assert await repo.save(dead, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt)
    ids = _lister(repo)

    window: dict[str, Any] = {"updated_after": T0, "updated_before": T0 + HOUR}
    assert await ids(**window) == ["a-waiting", "h-dead", "g-running", "e-bruno", "c-cancelled", "b-paused"]
    assert await ids(updated_before=T0) == ["f-untouched"]
    assert await ids(updated_after=T0 + HOUR) == ["d-cancelled-late"]
    assert await ids(**window, status=ScheduleStatus.DEAD) == ["h-dead"]
    assert await ids(**window, status=ScheduleStatus.RUNNING) == ["g-running"]
    assert await ids(**window, status=ScheduleStatus.PAUSED) == ["e-bruno", "b-paused"]
    assert await ids(**window, status=ScheduleStatus.CANCELLED) == ["c-cancelled"]
    assert await ids(**window, status=ScheduleStatus.SUCCEEDED) == []
    assert await ids(**window, user_id="bruno") == ["e-bruno"]
    assert await ids(**window, labels={"order": "1"}) == ["a-waiting", "h-dead", "g-running", "e-bruno", "b-paused"]
    assert await ids(**window, labels={"order": "1"}, user_id="ana") == ["a-waiting", "h-dead", "g-running",
                                                                         "b-paused"]
    assert await ids(**window, labels={"order": "1"}, user_id="ana", limit=2, offset=1) == ["h-dead", "g-running"]
    assert await ids(**window, task_types=["email"]) == ["h-dead"]
    assert await ids(**window, exclude_types=["email"], status=ScheduleStatus.DEAD) == []
    # With a due-time window: the live ones in both, soonest due first (f-untouched is due in
    # it but last changed before; g-running runs an occurrence due before it).
    due: dict[str, Any] = {"due_after": T0, "due_before": T0 + 5 * HOUR}
    assert await ids(**due) == ["f-untouched", "b-paused", "a-waiting", "e-bruno"]
    assert await ids(**due, **window) == ["b-paused", "a-waiting", "e-bruno"]
    assert await ids(**due, **window, user_id="ana") == ["b-paused", "a-waiting"]
    assert await ids(**due, **window, labels={"order": "1"}, limit=1, offset=2) == ["e-bruno"]
    assert await ids(**due, **window, status=ScheduleStatus.DEAD) == []  # an ended one has no due time
    assert await ids(due_before=T0, **window) == ["g-running"]


# -- list by cursor (keyset paging) ----------------------------------------------------------


async def _walk(repo: ScheduleRepository, limit: int, **filters: Any) -> list[list[str]]:
    """Every page of ``repo.list(**filters)``, each asked for after the last schedule of the page
    before it (the first without a cursor), until one comes back short (or there were more pages
    than schedules: a cursor that does not move on)."""
    order = list_order(filters.get("due_after"), filters.get("due_before"))
    pages: list[list[str]] = []
    after: ListCursor | None = None
    while len(pages) <= 20:
        page = await repo.list(**filters, limit=limit, after=after)
        pages.append([s.id for s in page])
        if len(page) < limit:
            break
        after = ListCursor.of(page[-1], order)
    return pages


async def test_a_cursor_walks_every_schedule_once_newest_first_ties_by_id(store: StoreFactory) -> None:
    repo = await store()
    # Made out of id order; four share a millisecond (two of them only within it: a store that
    # keeps the fraction must still order them by id, as the others keep and order them).
    made = {"k": T0 - 3 * MINUTE, "c": T0 - 2 * MINUTE, "q": T0, "b": T0, "x": T0 + timedelta(microseconds=700),
            "a": T0 + timedelta(microseconds=300), "m": T0 + MS, "e": T0 + MINUTE, "y": T0 - 2 * MINUTE}
    for name, now in made.items():
        await repo.add(one_off(T0 + DAY, schedule_id=name, now=now))
    expected = ["e", "m", "x", "q", "b", "a", "y", "c", "k"]
    assert await _lister(repo)() == expected

    for limit in (1, 2, 3, 4, 9, 10):
        pages = await _walk(repo, limit)
        assert [i for page in pages for i in page] == expected, limit
        assert all(len(page) == limit for page in pages[:-1]), pages
    # The position is the cursor's, not the schedule's: one made up (or deleted since) works too.
    ids = _lister(repo)
    created = ListOrder.CREATED
    assert await ids(after=ListCursor(created, T0, "c")) == ["b", "a", "y", "c", "k"]
    assert await ids(after=ListCursor(created, T0 + timedelta(microseconds=900), "r")) == ["q", "b", "a", "y", "c", "k"]
    assert await ids(after=ListCursor(created, T0 + HOUR, "")) == expected
    assert await ids(after=ListCursor(created, T0 - HOUR, "zzz")) == []
    assert await ids(after=ListCursor(created, T0, "q"), limit=2, offset=1) == ["a", "y"]  # offset after it


async def test_a_cursor_walks_a_due_window_soonest_first_ties_by_id(store: StoreFactory) -> None:
    repo = await store()
    plan = [("m", T0 + 2 * MINUTE), ("c", T0), ("a", T0 + MINUTE), ("z", T0 + MINUTE), ("b", T0 + MINUTE),
            ("d", T0 + 3 * MINUTE), ("early", T0 - MINUTE), ("late", T0 + HOUR)]
    for index, (name, at) in enumerate(plan):
        await repo.add(one_off(at, schedule_id=name, now=T0 - HOUR + index * MINUTE))
    # Across the live statuses: one runs, two are paused; one ended (in no window).
    claimed = {s.id: s for s in await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)}
    assert set(claimed) == {"early", "c"}
    early = claimed["early"]
    assert early.lease is not None
    early.succeed(attempt_id=early.lease.attempt_id, now=T0)
    assert await repo.save(early, expected_status=ScheduleStatus.RUNNING, attempt_id=early.attempts[-1].attempt_id)
    for name in ("z", "m"):
        await _change(repo, name, lambda s: s.pause(now=T0))
    window: dict[str, Any] = {"due_after": T0 - HOUR, "due_before": T0 + HOUR}
    expected = ["c", "a", "b", "z", "m", "d"]
    assert await _lister(repo)(**window) == expected

    for limit in (1, 2, 4, 6):
        assert [i for page in await _walk(repo, limit, **window) for i in page] == expected, limit
        assert [i for page in await _walk(repo, limit, due_after=T0) for i in page] == [*expected, "late"]
        assert [i for page in await _walk(repo, limit, due_before=T0 + 2 * MINUTE) for i in page] == expected[:4]
    ids = _lister(repo)
    due = ListOrder.DUE
    assert await ids(**window, after=ListCursor(due, T0 + MINUTE, "a")) == ["b", "z", "m", "d"]
    assert await ids(**window, after=ListCursor(due, T0 + MINUTE, "zz")) == ["m", "d"]
    # A cursor before the window's start is no narrower than the window; one after, narrower.
    assert await ids(due_after=T0 + MINUTE, due_before=T0 + HOUR, after=ListCursor(due, T0, "zz")) == ["a", "b", "z", "m", "d"]
    assert await ids(due_after=T0 + MINUTE, after=ListCursor(due, T0 + 2 * MINUTE, "m")) == ["d", "late"]
    assert await ids(**window, after=ListCursor(due, T0 + 3 * MINUTE, "d")) == []
    assert await ids(**window, after=ListCursor(due, T0, "c"), limit=2, offset=2) == ["z", "m"]  # offset after it
    # A cursor holds one order: the other one's is refused, not read as a position in this one.
    with pytest.raises(ValueError):
        await repo.list(**window, after=ListCursor(ListOrder.CREATED, T0, "c"))
    with pytest.raises(ValueError):
        await repo.list(after=ListCursor(due, T0, "c"))


async def test_a_due_time_within_a_millisecond_pages_as_the_stores_keep_it(store: StoreFactory) -> None:
    """A retry's instant is jittered to the microsecond (so is a recurring run now's): listed,
    it is the millisecond every store keeps, ordered by id among the others of that millisecond,
    never after a cursor made from itself, and a window's bound within that millisecond does not
    take it in."""
    repo = await store()
    later = T0 + timedelta(seconds=5)  # a whole millisecond (T0's)
    for name in ("a", "b", "c"):
        await repo.add(one_off(T0, schedule_id=name))
    await repo.add(one_off(later, schedule_id="d"))
    fractions = {"a": 700, "b": 300, "c": 0}
    for claimed in await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10):
        assert claimed.lease is not None
        claimed.fail(attempt_id=claimed.lease.attempt_id, now=T0, error=ErrorInfo("x", "failed", retryable=True),
                     decision=RetryDecision(later + timedelta(microseconds=fractions[claimed.id]), "retry"))
        assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING,
                               attempt_id=claimed.attempts[-1].attempt_id)
    window: dict[str, Any] = {"due_after": T0}
    ids = _lister(repo)
    assert await ids(**window) == ["a", "b", "c", "d"]  # one millisecond: by id
    for limit in (1, 2, 3):
        assert [i for page in await _walk(repo, limit, **window) for i in page] == ["a", "b", "c", "d"], limit
    assert await ids(**window, after=ListCursor(ListOrder.DUE, later, "a")) == ["b", "c", "d"]
    # Kept as a whole millisecond: a bound within it (rounded up) leaves it out, or takes it in.
    assert await ids(due_after=later + timedelta(microseconds=500)) == []
    assert await ids(due_after=T0, due_before=later + timedelta(microseconds=500)) == ["a", "b", "c", "d"]


async def test_a_cursor_combines_with_every_other_filter(store: StoreFactory) -> None:
    repo = await store()
    for index, schedule in enumerate((
        one_off(T0, schedule_id="ana-1", user_id="ana", labels={"order": "1"}),
        one_off(T0 + MINUTE, schedule_id="ana-2", user_id="ana", task_type="email", labels={"order": "1", "kind": "r"}),
        one_off(T0 + MINUTE, schedule_id="bruno-1", user_id="bruno", labels={"order": "1"}),
        one_off(T0 + 2 * MINUTE, schedule_id="ana-3", user_id="ana", labels={"order": "2"}),
        one_off(T0 + 2 * MINUTE, schedule_id="delivery", user_id=None, task_type="webhook.delivery"),
        one_off(T0 + 3 * MINUTE, schedule_id="ana-4", user_id="ana", labels={"order": "1", "kind": "r"}),
        one_off(T0 + 4 * MINUTE, schedule_id="ana-5", user_id="ana", labels={"order": "1"}),
    )):
        schedule.created_at = schedule.updated_at = T0 - HOUR + (index // 2) * MINUTE  # pairs made at once
        await repo.add(schedule)
    await _change(repo, "ana-4", lambda s: s.cancel(now=T0))
    await _change(repo, "ana-3", lambda s: s.pause(now=T0))
    ids = _lister(repo)

    filters: list[dict[str, Any]] = [
        {"user_id": "ana"}, {"labels": {"order": "1"}}, {"labels": {"order": "1", "kind": "r"}},
        {"task_types": ["email", "whatsapp.text"]}, {"exclude_types": ["webhook.delivery"]},
        {"status": ScheduleStatus.SCHEDULED}, {"status": ScheduleStatus.PAUSED, "user_id": "ana"},
        {"user_id": "ana", "labels": {"order": "1"}, "task_types": ["whatsapp.text"]},
        {"updated_after": T0 - HOUR, "user_id": "ana"}]
    for where in filters:
        for window in ({}, {"due_after": T0}, {"due_after": T0, "due_before": T0 + 4 * MINUTE}):
            every = await ids(**where, **window)
            for limit in (1, 2):
                assert [i for page in await _walk(repo, limit, **where, **window) for i in page] == every, (
                    where, window, limit)
    assert await ids(user_id="ana") == ["ana-5", "ana-4", "ana-3", "ana-2", "ana-1"]  # the filters are not empty
    assert await ids(user_id="ana", due_after=T0) == ["ana-1", "ana-2", "ana-3", "ana-5"]


async def test_a_schedule_made_or_changed_during_a_walk_does_not_shift_its_pages(store: StoreFactory) -> None:
    repo = await store()
    for i in range(7):
        await repo.add(one_off(T0 + i * MINUTE, schedule_id=f"s{i}", now=T0 - HOUR + i * MINUTE))
    ids = _lister(repo)
    first = await repo.list(limit=3)
    assert [s.id for s in first] == ["s6", "s5", "s4"]
    after = ListCursor.of(first[-1], ListOrder.CREATED)
    # Meanwhile: a new schedule (the newest: before the cursor), one before the cursor and one
    # after it paused, and the cursor's own schedule cancelled and deleted.
    await repo.add(one_off(T0 + DAY, schedule_id="new", now=T0))
    await _change(repo, "s5", lambda s: s.pause(now=T0))
    await _change(repo, "s2", lambda s: s.pause(now=T0))
    await _change(repo, "s4", lambda s: s.cancel(now=T0))
    assert await repo.delete_finished(before=T0 + DAY, statuses=[ScheduleStatus.CANCELLED], limit=10) == 1
    assert await ids(after=after, limit=3) == ["s3", "s2", "s1"]  # as if nothing had happened
    assert await ids(after=after) == ["s3", "s2", "s1", "s0"]

    # Soonest first: a schedule made due before the cursor, or moved there, stays out of the next page.
    window = {"due_after": T0 - DAY}
    page = await repo.list(**window, limit=2)
    assert [s.id for s in page] == ["s0", "s1"]
    after = ListCursor.of(page[-1], ListOrder.DUE)
    await repo.add(one_off(T0 - MINUTE, schedule_id="sooner", now=T0))
    await _change(repo, "s6", lambda s: setattr(s, "next_run_at", T0 + timedelta(seconds=30)))
    assert await ids(**window, after=after, limit=3) == ["s2", "s3", "s5"]
    assert await ids(**window, after=after) == ["s2", "s3", "s5", "new"]
    # ...and one listed already that moved past the cursor (a recurring run's next occurrence, a
    # retry, a move) is listed again where it is due now, as the README says: no snapshot.
    await _change(repo, "s0", lambda s: setattr(s, "next_run_at", T0 + 3 * MINUTE + timedelta(seconds=30)))
    assert await ids(**window, after=after) == ["s2", "s3", "s0", "s5", "new"]


async def test_an_sqlite_due_window_reads_an_index_never_the_whole_table(tmp_path: Path) -> None:
    """The window's queries, as ``list`` makes them: without a user or labels, one range of the
    ``(status, next_run_at, id)`` index per live status, read in its order (no sort of a branch:
    each stops at the page's end; only their merge is sorted); with a user or labels, that
    filter's index. Never a scan of every schedule. A cursor starts the range of the index that
    serves the order, newest first as in a window, so a page far down the list reads no more."""
    from cronjob_adapters.codec import ScheduleCodec
    from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
    from cronjob_adapters.sqlite.schema import list_query
    from cronjob_bootstrap.triggers import default_trigger_parser

    path = tmp_path / "plan.sqlite3"
    repo = SqliteScheduleRepository(path, ScheduleCodec(default_trigger_parser()))
    try:
        await repo.initialize()
    finally:
        await repo.close()

    def plan(conn: sqlite3.Connection, **filters: Any) -> list[str]:
        asked: dict[str, Any] = {"status": None, "task_types": None, "exclude_types": ["webhook.delivery"],
                                 "user_id": None, "labels": None, "limit": 5, "offset": 5, "due_after": None,
                                 "due_before": None, "updated_after": None, "updated_before": None, "after": None,
                                 **filters}
        found = list_query(**asked)
        assert found is not None
        query, params = found
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params)]

    due_range = "SEARCH schedules USING INDEX schedules_due_at (status=? AND next_run_at"
    with sqlite3.connect(path) as conn:
        for after, before, changed in ((T0, T0 + HOUR, None), (T0, None, None), (None, T0 + HOUR, None),
                                       (T0, T0 + HOUR, T0 - HOUR)):  # a last-change window changes no plan
            steps = plan(conn, due_after=after, due_before=before, updated_after=changed)
            assert sum(step.startswith(due_range) for step in steps) == 3, steps  # scheduled, running, paused
            assert sum("TEMP B-TREE" in step for step in steps) == 1, steps  # the merge only
            assert not any(step.startswith("SCAN schedules") for step in steps), steps
        steps = plan(conn, due_after=T0, status=ScheduleStatus.PAUSED)
        assert sum(step.startswith(due_range) for step in steps) == 1, steps
        steps = plan(conn, due_after=T0, user_id="ana")  # the user's live schedules only, not their history
        assert "SEARCH schedules USING INDEX schedules_user_status (user_id=? AND status=?)" in steps, steps
        assert not any(step.startswith("SCAN schedules") for step in steps), steps
        steps = plan(conn, due_after=T0, user_id="ana", labels={"order": "1"})
        assert "SEARCH l0 USING COVERING INDEX schedule_labels_newest (key=? AND value=?)" in steps, steps
        assert not any(step.startswith("SCAN") for step in steps), steps

        # By cursor, in a window: each branch's range starts at the cursor (it implies a due_after
        # before it), or at due_after when that lies after the cursor (it implies the cursor).
        due_after_cursor = "SEARCH schedules USING INDEX schedules_due_at (status=? AND (next_run_at,id)>(?,?)"
        soon = ListCursor(ListOrder.DUE, T0 + MINUTE, "x")
        for after, before in ((None, None), (T0, None), (T0, T0 + HOUR), (None, T0 + HOUR)):
            steps = plan(conn, due_after=after or T0 - DAY, due_before=before, after=soon)
            assert sum(step.startswith(due_after_cursor) for step in steps) == 3, steps
            assert sum("TEMP B-TREE" in step for step in steps) == 1, steps  # the merge only
        steps = plan(conn, due_after=T0 + HOUR, after=soon)
        assert sum(step.startswith(due_range + ">?)") for step in steps) == 3, steps
        steps = plan(conn, due_after=T0, user_id="ana", after=soon)
        assert "SEARCH schedules USING INDEX schedules_user_status (user_id=? AND status=?)" in steps, steps
        # Newest first: a range of (created_at, id), alone or after the user's or the type's
        # equality, read in the index's order (no sort: it stops at the page's end).
        made = ListCursor(ListOrder.CREATED, T0, "x")
        assert plan(conn, after=made) == [
            "SEARCH schedules USING INDEX schedules_created ((created_at,id)<(?,?))"]
        assert plan(conn, after=made, user_id="ana", updated_after=T0) == [
            "SEARCH schedules USING INDEX schedules_user_id (user_id=? AND (created_at,id)<(?,?))"]
        assert plan(conn, after=made, task_types=["email"], exclude_types=[]) == [
            "SEARCH schedules USING INDEX schedules_type_created (task_type=? AND (created_at,id)<(?,?))"]
        # A status alone (the dead letters): read in order to the page's end, not every row of it sorted.
        assert plan(conn, status=ScheduleStatus.DEAD) == [
            "SEARCH schedules USING INDEX schedules_status_created (status=?)"]
        assert plan(conn, status=ScheduleStatus.DEAD, after=made) == [
            "SEARCH schedules USING INDEX schedules_status_created (status=? AND (created_at,id)<(?,?))"]
        # A label's: its index rows from the cursor on, in their order (no sort of all of them).
        assert plan(conn, after=made, labels={"order": "1"}) == [
            "SEARCH l0 USING COVERING INDEX schedule_labels_newest"
            " (key=? AND value=? AND (schedule_created_at,schedule_id)<(?,?))",
            "SEARCH schedules USING INDEX sqlite_autoindex_schedules_1 (id=?)"]
    conn.close()


async def test_initialize_is_idempotent_and_ping_answers(store: StoreFactory) -> None:
    repo = await store()
    await repo.initialize()
    await repo.initialize()
    await repo.ping()


async def test_store_time_is_the_stores_own_clock_or_none(store: StoreFactory,
                                                          request: pytest.FixtureRequest) -> None:
    """A store on other hosts tells its own time (what replicas' clocks are checked against);
    one that shares this host's clock tells none."""
    repo = await store()
    before = datetime.now(UTC)
    told = await repo.store_time()
    after = datetime.now(UTC)
    if request.node.callspec.params["store"] == "mongodb":
        assert told is not None and told.tzinfo is not None
        assert before - timedelta(seconds=1) <= told <= after + timedelta(seconds=1), (before, told, after)
    else:
        assert told is None


async def test_claims_can_be_limited_to_task_types(store: StoreFactory) -> None:
    repo = await store()
    texts = [one_off(T0 - timedelta(seconds=i), task_type="whatsapp.text") for i in range(3)]
    emails = [one_off(T0 - timedelta(seconds=10 + i), task_type="email") for i in range(2)]
    for schedule in [*texts, *emails]:
        await repo.add(schedule)
    only_text = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10,
                                     task_types=["whatsapp.text"])
    assert sorted(s.id for s in only_text) == sorted(s.id for s in texts)
    assert await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10, exclude_types=["email"]) == []
    assert await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10, task_types=[]) == []
    rest = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
    assert sorted(s.id for s in rest) == sorted(s.id for s in emails)


async def test_get_by_provider_message_id_finds_the_latest_send(store: StoreFactory) -> None:
    repo = await store()
    sent, waiting = one_off(), one_off()
    for schedule in (sent, waiting):
        await repo.add(schedule)
    assert await repo.get_by_provider_message_id("wamid.A") is None
    claimed = [c for c in await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10) if c.id == sent.id]
    [running] = claimed
    assert running.lease is not None
    running.succeed(attempt_id=running.lease.attempt_id, now=T0, provider_message_id="wamid.A",
                    result={"wamid": "wamid.A"})
    assert await repo.save(running, expected_status=ScheduleStatus.RUNNING,
                           attempt_id=running.attempts[-1].attempt_id)
    found = await repo.get_by_provider_message_id("wamid.A")
    assert found is not None and found.id == sent.id and found == await repo.get(sent.id)
    assert await repo.get_by_provider_message_id("wamid.unknown") is None

    # Delivery statuses are kept with the schedule...
    assert found.record_delivery_status(status="delivered", at=T0 + timedelta(seconds=2),
                                        now=T0 + timedelta(seconds=3))
    assert await repo.save(found, expected_status=ScheduleStatus.SUCCEEDED)
    assert await repo.get_by_provider_message_id("wamid.A") == found
    # ...and a later send replaces the id the schedule is found by.
    found.result = {"wamid": "wamid.B", "provider_message_id": "wamid.B"}
    assert await repo.save(found, expected_status=ScheduleStatus.SUCCEEDED)
    assert await repo.get_by_provider_message_id("wamid.A") is None
    again = await repo.get_by_provider_message_id("wamid.B")
    assert again is not None and again.id == sent.id and again.delivery["status"] == "delivered"


def _old_sqlite_file(path: Path, added_columns: str, row: dict[str, object]) -> None:
    """An SQLite file with the ``schedules`` table as an earlier release created it (the first
    release's columns, then ``added_columns``), holding ``row``."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schedules (id TEXT PRIMARY KEY, status TEXT NOT NULL,"
                     " next_run_at INTEGER, lease_until INTEGER, lease_attempt_id TEXT,"
                     " idempotency_key TEXT UNIQUE, created_at INTEGER NOT NULL,"
                     f" task_type TEXT NOT NULL,{added_columns} doc TEXT NOT NULL)")
        conn.execute(f"INSERT INTO schedules ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))
    conn.close()


async def test_an_sqlite_file_from_before_the_message_id_column_is_upgraded(tmp_path: Path) -> None:
    from cronjob_adapters.codec import ScheduleCodec
    from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
    from cronjob_bootstrap.triggers import default_trigger_parser

    codec = ScheduleCodec(default_trigger_parser())
    schedule = one_off()
    schedule.claim(owner="r1", attempt_id="a1", now=T0, until=T0 + LEASE)
    schedule.succeed(attempt_id="a1", now=T0, provider_message_id="wamid.OLD")
    path = tmp_path / "old.sqlite3"
    _old_sqlite_file(path, "", {"id": schedule.id, "status": schedule.status.value, "created_at": 0,
                                "task_type": schedule.task_type,
                                "doc": json.dumps(codec.to_document(schedule), default=str)})
    repo = SqliteScheduleRepository(path, codec)
    try:
        await repo.initialize()
        await repo.initialize()  # idempotent
        found = await repo.get_by_provider_message_id("wamid.OLD")
        assert found is not None and found.id == schedule.id
        fresh = one_off()
        await repo.add(fresh)
        assert await repo.get_by_provider_message_id("wamid.unknown") is None
    finally:
        await repo.close()
    with sqlite3.connect(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(schedules)")}
    conn.close()
    assert "schedules_provider_message_id" in indexes


async def test_an_sqlite_file_from_before_labels_is_upgraded_and_lists_by_label_through_the_index(
        tmp_path: Path) -> None:
    from cronjob_adapters.codec import ScheduleCodec
    from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
    from cronjob_adapters.sqlite.schema import label_filter
    from cronjob_bootstrap.triggers import default_trigger_parser

    codec = ScheduleCodec(default_trigger_parser())
    old = one_off(user_id="ana")
    document = codec.to_document(old)
    del document["labels"]  # as the previous release wrote it
    path = tmp_path / "old.sqlite3"
    _old_sqlite_file(path, " provider_message_id TEXT, user_id TEXT,",
                     {"id": old.id, "status": old.status.value, "created_at": 0, "task_type": old.task_type,
                      "user_id": old.user_id, "doc": json.dumps(document, default=str)})
    repo = SqliteScheduleRepository(path, codec)
    labelled = one_off(labels={"order": "123", "kind": "reminder"})
    try:
        await repo.initialize()
        await repo.initialize()  # idempotent
        found = await repo.get(old.id)
        assert found is not None and found.labels == {}
        await repo.add(labelled)
        assert [s.id for s in await repo.list(labels={"order": "123", "kind": "reminder"})] == [labelled.id]
        assert [s.id for s in await repo.list(user_id="ana")] == [old.id]
    finally:
        await repo.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT schedule_id, key, value FROM schedule_labels ORDER BY key").fetchall()
        source, condition, params = label_filter({"order": "123", "kind": "reminder"})
        plan = " | ".join(row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT doc FROM {source} WHERE 1 = 1{condition} ORDER BY created_at DESC", params))
    conn.close()
    assert rows == [(labelled.id, "kind", "reminder"), (labelled.id, "order", "123")]
    # Read through the (key, value) index, each schedule by its id: never a scan of every schedule.
    assert "SEARCH l0 USING COVERING INDEX schedule_labels_newest" in plan, plan
    assert "SCAN" not in plan, plan


async def test_delete_finished_removes_only_old_finished_work(store: StoreFactory) -> None:
    repo = await store()
    long_ago = T0 - timedelta(days=40)
    old_done = one_off(long_ago, idempotency_key="old-done")
    old_cancelled = one_off(now=long_ago)
    recent = one_off(now=long_ago)
    pending = one_off(now=long_ago)
    for schedule in (old_done, old_cancelled, recent, pending):
        await repo.add(schedule)
    for schedule, when in ((old_cancelled, long_ago), (recent, T0 - timedelta(hours=1))):
        copy = schedule.copy()
        copy.cancel(now=when)
        assert await repo.save(copy, expected_status=ScheduleStatus.SCHEDULED)
    [claimed] = await repo.claim_due(now=long_ago, owner="r", lease_for=LEASE, limit=1)
    assert claimed.id == old_done.id and claimed.lease is not None
    claimed.succeed(attempt_id=claimed.lease.attempt_id, now=long_ago)
    assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING,
                           attempt_id=claimed.attempts[-1].attempt_id)
    with pytest.raises(ValueError):
        await repo.delete_finished(before=T0, statuses=[ScheduleStatus.SCHEDULED], limit=10)
    deleted = await repo.delete_finished(before=T0 - timedelta(days=30),
                                         statuses=[ScheduleStatus.SUCCEEDED, ScheduleStatus.CANCELLED], limit=10)
    assert deleted == 2
    assert {s.id for s in await repo.list(limit=10)} == {recent.id, pending.id}
    assert await repo.get_by_idempotency_key("old-done") is None
    assert await repo.get_by_idempotency_keys(["old-done"]) == {}
    assert await repo.delete_finished(before=T0, statuses=[ScheduleStatus.CANCELLED], limit=10) == 1


async def test_delete_finished_keeps_to_its_limit_and_to_the_millisecond(store: StoreFactory) -> None:
    repo = await store()
    cancelled_at = [T0 + timedelta(milliseconds=ms) for ms in (100, 200, 300)]
    for index, when in enumerate(cancelled_at):
        schedule = one_off(now=T0 - timedelta(days=1), idempotency_key=f"k{index}")
        await repo.add(schedule)
        schedule.cancel(now=when)
        assert await repo.save(schedule, expected_status=ScheduleStatus.SCHEDULED)
    # Between the second and the third (to the microsecond): two are older, one at a time.
    before = T0 + timedelta(milliseconds=250, microseconds=500)
    assert await repo.delete_finished(before=before, statuses=[ScheduleStatus.CANCELLED], limit=1) == 1
    assert await repo.delete_finished(before=before, statuses=[ScheduleStatus.CANCELLED], limit=5) == 1
    assert await repo.delete_finished(before=before, statuses=[ScheduleStatus.CANCELLED], limit=5) == 0
    assert [s.idempotency_key for s in await repo.list()] == ["k2"]


async def test_delete_finished_by_task_type_leaves_the_other_types_and_pages(store: StoreFactory) -> None:
    # The service's retention of its own jobs: only the types named, in pages of ``limit``.
    repo = await store()
    long_ago = T0 - timedelta(days=40)
    kinds = {"webhook.delivery": 3, "whatsapp.status": 1, "whatsapp.text": 2}
    for task_type, count in kinds.items():
        for index in range(count):
            schedule = one_off(now=long_ago, task_type=task_type, idempotency_key=f"{task_type}-{index}")
            await repo.add(schedule)
            schedule.cancel(now=long_ago)
            assert await repo.save(schedule, expected_status=ScheduleStatus.SCHEDULED)
    live = one_off(now=long_ago, task_type="webhook.delivery", idempotency_key="live")
    await repo.add(live)
    own = ["webhook.delivery", "whatsapp.status"]
    with pytest.raises(ValueError):
        await repo.delete_finished(before=T0, statuses=[ScheduleStatus.PAUSED], limit=10, task_types=own)
    assert await repo.delete_finished(before=T0, statuses=[ScheduleStatus.CANCELLED], limit=10, task_types=[]) == 0
    pages = []
    while deleted := await repo.delete_finished(before=T0, statuses=[ScheduleStatus.CANCELLED], limit=3,
                                                task_types=own):
        pages.append(deleted)
    assert pages == [3, 1]
    left = await repo.list(limit=20)
    assert sorted(s.idempotency_key or "" for s in left) == ["live", "whatsapp.text-0", "whatsapp.text-1"]


async def test_save_can_be_conditional_on_the_version_read(store: StoreFactory) -> None:
    repo = await store()
    schedule = one_off()
    await repo.add(schedule)
    loaded = await repo.get(schedule.id)
    assert loaded is not None
    first, second = loaded.copy(), loaded.copy()
    first.metadata["writer"] = "first"
    first.updated_at = T0 + timedelta(seconds=1)
    assert await repo.save(first, expected_status=ScheduleStatus.SCHEDULED, expected_updated_at=loaded.updated_at)
    second.metadata["writer"] = "second"  # read the same version: now stale
    assert not await repo.save(second, expected_status=ScheduleStatus.SCHEDULED,
                               expected_updated_at=loaded.updated_at)
    stored = await repo.get(schedule.id)
    assert stored is not None and stored.metadata["writer"] == "first"


async def test_a_claim_is_a_new_version_even_behind_the_clock_that_wrote_the_last_one(store: StoreFactory) -> None:
    """A claim stamps a version later than the one it replaces, also when that one is ahead of
    the claimer's clock (written by a replica whose clock is ahead, or by changes within one
    millisecond): otherwise the run's outcome, stamped a little after the claim, could land on
    the very version a user's change read before the claim, and that stale write would pass
    its check and undo the run (the occurrence then due again, to run twice)."""
    repo = await store()
    schedule = Schedule.create(id="every-minute", task_type="whatsapp.text", payload={"to": "5511999999999"},
                               trigger=IntervalTrigger(timedelta(minutes=1), T0), timezone="UTC",
                               first_run_at=T0, now=T0 - timedelta(minutes=1))
    schedule.relabel(labels={"order": "1"}, now=T0 + timedelta(milliseconds=5))  # a clock 5 ms ahead
    await repo.add(schedule)
    read = await repo.get(schedule.id)  # a user's change reads it...
    assert read is not None and read.updated_at == T0 + timedelta(milliseconds=5)
    [run] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=1)  # ...the claimer's clock
    assert run.lease is not None and run.updated_at == T0 + timedelta(milliseconds=6)
    assert await repo.get(run.id) == run  # as claimed, so stored
    run.succeed(attempt_id=run.lease.attempt_id, now=T0 + timedelta(milliseconds=5), provider_message_id="wamid.1")
    assert await repo.save(run, expected_status=ScheduleStatus.RUNNING, attempt_id=run.attempts[-1].attempt_id)
    read.relabel(labels={"order": "2"}, now=T0 + timedelta(milliseconds=5))  # ...and writes after the run
    assert not await repo.save(read, expected_status=ScheduleStatus.SCHEDULED, expected_updated_at=T0 + timedelta(
        milliseconds=5))
    stored = await repo.get(run.id)
    assert stored is not None and stored.labels == {"order": "1"} and len(stored.attempts) == 1
    assert stored.next_run_at == T0 + timedelta(minutes=1)
    # A claim by a clock ahead of the version stamps its own time, as ever.
    [later] = await repo.claim_due(now=T0 + timedelta(minutes=2), owner="r1", lease_for=LEASE, limit=1)
    assert later.updated_at == T0 + timedelta(minutes=2) and await repo.get(later.id) == later



async def test_save_many_writes_each_on_its_own_conditions_and_answers_each_in_order(store: StoreFactory) -> None:
    repo = await store()
    later = T0 + timedelta(hours=1)
    current, stale, paused = (one_off(later, schedule_id=name) for name in ("current", "stale", "paused"))
    runs = [one_off(T0, schedule_id=name) for name in ("run", "lapsed")]
    for schedule in (current, stale, paused, *runs):
        await repo.add(schedule)
    claimed = {s.id: s for s in await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=2)}
    assert set(claimed) == {"run", "lapsed"}
    read = {name: await repo.get(name) for name in ("current", "stale", "paused")}
    stale_read = read["stale"]
    assert stale_read is not None
    other = stale_read.copy()
    other.metadata["writer"] = "other"  # another writer changes it after the batch read it
    other.updated_at = T0 + timedelta(seconds=2)
    assert await repo.save(other, expected_status=ScheduleStatus.SCHEDULED, expected_updated_at=stale_read.updated_at)
    writes = []
    for name, schedule in read.items():
        assert schedule is not None
        version = schedule.updated_at
        schedule.metadata["writer"] = "batch"
        schedule.updated_at = T0 + timedelta(seconds=1)
        # The one named "paused" is written on the condition that it is paused: it is not.
        expected = ScheduleStatus.PAUSED if name == "paused" else ScheduleStatus.SCHEDULED
        writes.append(ConditionalSave(schedule, expected_status=expected, expected_updated_at=version))
    attempts = {name: run.lease.attempt_id for name, run in claimed.items() if run.lease is not None}
    for name, attempt in (("run", attempts["run"]), ("lapsed", "an-attempt-taken-over-since")):
        run = claimed[name].copy()
        run.succeed(attempt_id=attempts[name], now=T0 + timedelta(seconds=1))
        writes.append(ConditionalSave(run, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt))
    writes.append(ConditionalSave(one_off(schedule_id="never-added"), expected_status=ScheduleStatus.SCHEDULED))

    assert await repo.save_many(writes) == [True, False, False, True, False, False]

    stored = {name: await repo.get(name) for name in ("current", "stale", "paused", "run", "lapsed")}
    assert stored["current"] == writes[0].schedule  # written whole, as save writes it
    assert stored["stale"] is not None and stored["stale"].metadata.get("writer") == "other"  # not overwritten
    assert stored["paused"] is not None and "writer" not in stored["paused"].metadata
    assert stored["run"] == writes[3].schedule and stored["run"] is not None
    assert stored["run"].status is ScheduleStatus.SUCCEEDED
    assert stored["lapsed"] == claimed["lapsed"]  # fenced out: as claimed
    assert await repo.get("never-added") is None
    assert await repo.save_many([]) == []


async def test_save_many_takes_one_write_per_schedule(store: StoreFactory) -> None:
    repo = await store()
    schedule = one_off()
    await repo.add(schedule)
    first, second = schedule.copy(), schedule.copy()
    first.metadata["writer"], second.metadata["writer"] = "first", "second"
    first.updated_at = second.updated_at = T0
    with pytest.raises(ValueError, match="written twice"):
        await repo.save_many([ConditionalSave(first, expected_status=ScheduleStatus.SCHEDULED),
                              ConditionalSave(second, expected_status=ScheduleStatus.SCHEDULED)])
    assert await repo.get(schedule.id) == schedule  # nothing written
