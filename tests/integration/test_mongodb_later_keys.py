"""MongoDB: this version's writes keep the document keys a later version adds.

During a rolling update or a roll-back, replicas of two versions share one database. A later
version may add a key to the stored schedule (as labels and ``run_timeout_seconds`` were added);
this version does not know it, and must not drop it when it writes the schedule (a claim, a
renewal, an outcome, a user's change), or the later version loses it at every write of ours.
The keys this version knows but a schedule no longer holds (its label pairs, its idempotency
key) are removed, so what is written is still the schedule as it is. Real app over HTTP and the
real adapter, on the MongoDB test server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import ConditionalSave
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.mongodb.repository import OPTIONAL_FIELDS, MongoScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, make_container
from tests.support.builders import T0, one_off
from tests.support.clock import FixedClock
from tests.support.later_keys import every_write_keeps_the_later_keys

#: A key this version does not know, as a later version would store it beside the others.
LATER = {"priority": {"level": 7, "since": "a later version"}}
LEASE = timedelta(seconds=30)
NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
async def repo(mongodb_uri: str) -> AsyncIterator[MongoScheduleRepository]:
    repository = MongoScheduleRepository.from_uri(mongodb_uri, f"later_{uuid.uuid4().hex[:12]}",
                                                  ScheduleCodec(default_trigger_parser()))
    await repository.initialize()
    yield repository
    await repository.drop_database()
    await repository.close()


async def _stored(repo: MongoScheduleRepository, schedule_id: str) -> dict[str, Any]:
    doc = await repo.collection.find_one({"_id": schedule_id})
    assert doc is not None
    return doc


async def _written_by_a_later_version(repo: MongoScheduleRepository, *ids: str) -> None:
    result = await repo.collection.update_many({"_id": {"$in": list(ids)}}, {"$set": LATER})
    assert result.modified_count == len(ids)


async def _kept(repo: MongoScheduleRepository, schedule_id: str) -> dict[str, Any]:
    """The stored document, asserted to hold the later version's key still."""
    doc = await _stored(repo, schedule_id)
    assert doc.get("priority") == LATER["priority"], sorted(doc)
    return doc


async def test_every_write_of_the_adapter_keeps_a_later_version_s_key(repo: MongoScheduleRepository) -> None:
    first, second = one_off(labels={"team": "ops"}), one_off(T0 + timedelta(minutes=1))
    await repo.add_many([first, second])
    await _written_by_a_later_version(repo, first.id, second.id)

    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=10)
    assert claimed.id == first.id and (await _kept(repo, first.id))["status"] == "running"
    assert claimed.lease is not None
    attempt = claimed.lease.attempt_id
    assert await repo.renew_lease(first.id, attempt, T0 + 2 * LEASE)
    assert (await _kept(repo, first.id))["lease"]["until"] == T0 + 2 * LEASE

    claimed.mark_started(attempt_id=attempt, now=T0)
    claimed.succeed(attempt_id=attempt, now=T0 + timedelta(seconds=1), provider_message_id="wamid.1")
    assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt)  # the outcome
    done = await _kept(repo, first.id)
    assert done["status"] == "succeeded" and done["label_pairs"] == ["team=ops"]

    paused = (await repo.get(second.id)).copy()  # type: ignore[union-attr]
    paused.pause(now=T0)
    assert await repo.save_many([ConditionalSave(paused, ScheduleStatus.SCHEDULED)]) == [True]
    assert (await _kept(repo, second.id))["status"] == "paused"
    assert await repo.get(second.id) == paused  # the later key is not read back into the schedule


async def test_a_save_removes_the_label_pairs_and_idempotency_key_the_schedule_no_longer_has(
        repo: MongoScheduleRepository) -> None:
    """Keys this version writes only when the schedule has a value (OPTIONAL_FIELDS) are removed
    when it has none: left as they were, the label index would still list the schedule and the
    key's unique index would refuse the key to another."""
    kept = one_off(idempotency_key="order-42", labels={"team": "ops"})
    await repo.add(kept)
    await _written_by_a_later_version(repo, kept.id)
    assert set(OPTIONAL_FIELDS) <= set(await _stored(repo, kept.id))
    bare = kept.copy()
    bare.idempotency_key = None
    bare.relabel(labels={}, now=T0)
    assert await repo.save(bare, expected_status=ScheduleStatus.SCHEDULED)

    doc = await _kept(repo, kept.id)
    assert not set(OPTIONAL_FIELDS) & set(doc)
    assert await repo.get(kept.id) == bare
    assert await repo.list(labels={"team": "ops"}) == []
    assert await repo.get_by_idempotency_key("order-42") is None
    again = one_off(idempotency_key="order-42")
    await repo.add(again)  # the key is free again
    assert (await repo.get_by_idempotency_key("order-42")).id == again.id  # type: ignore[union-attr]


async def test_the_optional_fields_are_every_key_a_schedule_s_document_may_leave_out(
        repo: MongoScheduleRepository) -> None:
    """Every other key is written whatever the schedule holds, so ``$set`` replaces it: a key
    left out conditionally but not in OPTIONAL_FIELDS would outlive its removal."""
    full = repo._document(one_off(idempotency_key="k-1", labels={"k": "v"}))  # the adapter's own form
    bare = repo._document(one_off())
    assert set(full) - set(bare) == set(OPTIONAL_FIELDS)
    assert set(bare) <= set(full)


async def test_the_api_and_the_scheduler_keep_a_later_version_s_key(mongodb_uri: str) -> None:
    """Every write this version makes of a schedule, through the API (a change, bulk pause and
    resume, a retry, bulk cancel) and the scheduler (claim, outcome), keeps the key."""
    clock = FixedClock(NOW)
    container = make_container(clock, store="mongodb", mongodb_uri=mongodb_uri,
                               mongodb_database=f"later_api_{uuid.uuid4().hex[:12]}")
    repo = container.repository()
    assert isinstance(repo, MongoScheduleRepository)
    await repo.initialize()
    try:
        async with api_client(container, AUTH) as http:
            await every_write_keeps_the_later_keys(container, http, clock,
                                                   partial(_written_by_a_later_version, repo), partial(_kept, repo))
    finally:
        await repo.drop_database()
        await repo.close()
