"""Creating many schedules at once (``cronjob.services.batch_create``), with the in-memory store
and a hand-driven clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.services.batch_create import MAX_BATCH, create_each
from cronjob.services.scheduling import CreateScheduleCommand, Scheduled, SchedulingService
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
