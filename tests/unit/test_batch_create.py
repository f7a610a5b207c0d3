"""Creating many schedules at once (``cronjob.services.batch_create``), with the in-memory store
and a hand-driven clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import Schedule
from cronjob.services.batch_create import MAX_BATCH, create_each
from cronjob.services.commands import CreateScheduleCommand
from cronjob.services.scheduling import Scheduled, SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)


def command(body: str, schedule: str = "once @ 2030-01-16 09:00", key: str | None = None) -> CreateScheduleCommand:
    return CreateScheduleCommand(task_type="whatsapp.text", payload={"kind": "text", "to": "5511999999999",
                                                                     "body": body},
                                 schedule=schedule, timezone="UTC", idempotency_key=key)


def service() -> tuple[SchedulingService, InMemoryScheduleRepository, RecordingSignal]:
    clock = FixedClock(NOW)
    repository = InMemoryScheduleRepository()
    signal = RecordingSignal(clock)
    return SchedulingService(repository, clock, signal), repository, signal


async def test_each_is_answered_in_order_refused_ones_alone() -> None:
    scheduling, repository, signal = service()
    unreadable = ValidationError("String should match pattern", field="task.to")
    commands: list[CreateScheduleCommand | ValidationError] = [
        command(f"m{i}") if i % 10 else command(f"m{i}", schedule="daily at 25:00") for i in range(60)]
    commands.insert(5, unreadable)

    outcomes = await create_each(scheduling, commands)

    assert len(outcomes) == 61 and outcomes[5] is unreadable
    for given, outcome in zip(commands, outcomes, strict=True):
        if isinstance(given, CreateScheduleCommand) and given.schedule.startswith("daily"):
            assert isinstance(outcome, ValidationError) and outcome.field == "schedule"
        elif isinstance(given, CreateScheduleCommand):
            assert isinstance(outcome, Scheduled) and outcome.created
            assert outcome.schedule.payload["body"] == given.payload["body"]  # its own, in its place
    assert len(await repository.list(limit=1000)) == 54
    assert len(signal.notified) == 54  # the engine is told of each, as for one created alone


async def test_one_key_twice_in_a_batch_creates_one_schedule() -> None:
    scheduling, repository, _ = service()
    outcomes = await create_each(scheduling, [command("a", key="k"), command("a", key="k")])
    assert all(isinstance(o, Scheduled) for o in outcomes)
    assert sorted(o.created for o in outcomes if isinstance(o, Scheduled)) == [False, True]
    assert len(await repository.list()) == 1


async def test_more_than_a_batch_holds_is_refused_before_anything_is_created() -> None:
    scheduling, repository, _ = service()
    with pytest.raises(ValidationError) as refused:
        await create_each(scheduling, [command(f"m{i}") for i in range(MAX_BATCH + 1)])
    assert refused.value.field == "schedules"
    assert await repository.list() == []


async def test_one_key_for_two_different_requests_in_a_batch_refuses_the_second_alone() -> None:
    scheduling, repository, _ = service()
    taken = await create_each(scheduling, [replace(command("a", key="k"), request_digest="d-a")])
    outcomes = await create_each(scheduling, [
        replace(command("b", key="k"), request_digest="d-b"),  # the key of a stored, other request
        replace(command("c", key="j"), request_digest="d-c"),
        replace(command("d", key="j"), request_digest="d-d"),  # the key of the item before it
        command("e")])
    assert isinstance(outcomes[0], ValidationError) and outcomes[0].field == "Idempotency-Key"
    assert isinstance(outcomes[1], Scheduled) and outcomes[1].created
    assert isinstance(outcomes[2], ValidationError) and outcomes[2].field == "Idempotency-Key"
    assert isinstance(outcomes[3], Scheduled) and outcomes[3].created
    assert isinstance(taken[0], Scheduled)
    assert sorted(s.payload["body"] for s in await repository.list()) == ["a", "c", "e"]


class CountingLookups(InMemoryScheduleRepository):
    """The in-memory store, keeping the keys of each idempotency key lookup it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.one_by_one: list[str] = []
        self.at_once: list[list[str]] = []

    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        self.one_by_one.append(key)
        return await super().get_by_idempotency_key(key)

    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        self.at_once.append(list(keys))
        return await super().get_by_idempotency_keys(self.at_once[-1])


async def test_a_batch_sent_again_looks_its_keys_up_in_one_call_and_answers_as_before() -> None:
    clock = FixedClock(NOW)
    repository = CountingLookups()
    scheduling = SchedulingService(repository, clock, RecordingSignal(clock))
    commands = [replace(command(f"m{i}", key=f"camp-{i}"), request_digest=f"d-{i}") for i in range(MAX_BATCH)]
    first = await create_each(scheduling, commands)
    assert all(isinstance(o, Scheduled) and o.created for o in first)
    repository.one_by_one.clear(), repository.at_once.clear()

    again = await create_each(scheduling, commands)

    assert repository.at_once == [[f"camp-{i}" for i in range(MAX_BATCH)]]
    assert repository.one_by_one == []
    assert [(o.schedule, o.created) for o in again if isinstance(o, Scheduled)] == [
        (o.schedule, False) for o in first if isinstance(o, Scheduled)]
    assert len(await repository.list(limit=2 * MAX_BATCH)) == MAX_BATCH


async def test_a_batch_mixing_replays_new_items_refusals_and_repeats_answers_each_as_create_would() -> None:
    scheduling, repository, signal = service()
    made = await create_each(scheduling, [replace(command("a", key="k-a"), request_digest="d-a"),
                                          replace(command("b", key="k-b"), request_digest="d-b")])
    signal.notified.clear()
    outcomes = await create_each(scheduling, [
        replace(command("b", key="k-b"), request_digest="d-b"),          # a replay
        command("n"),                                                    # new, without a key
        replace(command("other", key="k-a"), request_digest="d-other"),  # k-a's key, another request
        replace(command("c", key="k-c"), request_digest="d-c"),          # new
        replace(command("c", key="k-c"), request_digest="d-c"),          # the item before it again
        replace(command("x", schedule="daily at 25:00", key="k-x"), request_digest="d-x"),  # unreadable
        replace(command("a", key="k-a"), request_digest="d-a"),          # a replay, after its refusal
    ])
    answers = [(o.created, o.schedule.payload["body"]) if isinstance(o, Scheduled) else o.field for o in outcomes]
    assert answers == [(False, "b"), (True, "n"), "Idempotency-Key", (True, "c"), (False, "c"), "schedule",
                       (False, "a")]
    assert [o.schedule.id for o in outcomes if isinstance(o, Scheduled) and not o.created] == [
        made[1].schedule.id, outcomes[3].schedule.id, made[0].schedule.id]  # type: ignore[union-attr]
    assert sorted(s.payload["body"] for s in await repository.list()) == ["a", "b", "c", "n"]
    assert len(signal.notified) == 2  # the engine is told of the new ones only


async def test_a_key_stored_in_its_earlier_form_is_a_replay_and_its_own_form_comes_first() -> None:
    scheduling, repository, _ = service()
    # What an earlier version stored for the header "pedido-ção" (its UTF-8 read as Latin-1).
    earlier = await create_each(scheduling, [command("old", key="pedido-Ã§Ã£o")])
    retried = replace(command("old", key="pedido-ção"), earlier_key="pedido-Ã§Ã£o")
    [replayed] = await create_each(scheduling, [retried])
    assert isinstance(replayed, Scheduled) and not replayed.created
    assert replayed.schedule.id == earlier[0].schedule.id  # type: ignore[union-attr]
    both = replace(command("new", key="pedido-2"), earlier_key="pedido-Ã©")
    await create_each(scheduling, [command("new", key="pedido-2"), command("stale", key="pedido-Ã©")])
    [answer] = await create_each(scheduling, [both])
    assert isinstance(answer, Scheduled) and answer.schedule.payload["body"] == "new"
    assert len(await repository.list()) == 3
