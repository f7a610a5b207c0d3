"""Retrying all dead letters (or some) at once, with the in-memory store and a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import ListCursor, ListOrder, StoreUnavailable
from cronjob.services.bulk import Selection, change_matching
from cronjob.services.bulk_retry import retry_schedules
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.builders import one_off
from tests.support.app import WritesDownStore
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
S = ScheduleStatus


def ended(status: ScheduleStatus, *, task_type: str = "whatsapp.text", user_id: str | None = "u1",
          labels: dict[str, str] | None = None, at: datetime = NOW - timedelta(minutes=5)) -> Schedule:
    """A one-off that was due ``at`` (five minutes ago unless given) and ended in ``status`` then
    (its only attempt)."""
    due = at
    schedule = one_off(due, now=due - timedelta(minutes=1), task_type=task_type, user_id=user_id, labels=labels)
    schedule.claim(owner="r", attempt_id="a1", now=due, until=due + timedelta(seconds=30))
    schedule.mark_started(attempt_id="a1", now=due)
    if status is S.DEAD:
        schedule.fail(attempt_id="a1", now=due, error=ErrorInfo("190", "token expired"),
                      decision=RetryDecision(None, "not retryable"))
    elif status is S.UNKNOWN:
        schedule.outcome_unknown(attempt_id="a1", now=due, error=ErrorInfo("outcome_unknown", "no answer"))
    elif status is S.MISSED:
        schedule.miss(attempt_id="a1", now=due, reason="too late")
    else:
        schedule.succeed(attempt_id="a1", now=due)
    assert schedule.status is status
    return schedule


async def service_with(*schedules: Schedule, repository: InMemoryScheduleRepository | None = None
                       ) -> tuple[SchedulingService, InMemoryScheduleRepository]:
    """The service over ``repository`` (default: a new in-memory store) holding ``schedules``."""
    clock = FixedClock(NOW)
    repository = repository if repository is not None else InMemoryScheduleRepository()
    for schedule in schedules:
        await repository.add(schedule)
    return SchedulingService(repository, clock, RecordingSignal(clock)), repository


async def status_of(repository: InMemoryScheduleRepository, schedule: Schedule) -> ScheduleStatus:
    stored = await repository.get(schedule.id)
    assert stored is not None
    return stored.status


async def retried(service: SchedulingService, status: ScheduleStatus, **selection: Any) -> list[str]:
    """The ids :func:`retry_schedules` retried from ``status`` with ``Selection(**selection)``."""
    return (await retry_schedules(service, status=status, selection=Selection(**selection))).retried


async def test_every_dead_letter_is_retried_now_once_and_nothing_else() -> None:
    dead = [ended(S.DEAD) for _ in range(3300)]  # more pages (of 1000) than passes (3)
    others = [ended(S.UNKNOWN), ended(S.MISSED), ended(S.SUCCEEDED), one_off(NOW + timedelta(hours=1))]
    own = ended(S.DEAD, task_type="webhook.delivery")
    service, repository = await service_with(*dead, *others, own)

    result = await retry_schedules(service, status=S.DEAD)

    assert sorted(result.retried) == sorted(s.id for s in dead) and not result.refused
    for schedule in dead:
        stored = await repository.get(schedule.id)
        assert stored is not None and stored.status is S.SCHEDULED and stored.next_run_at == NOW
        assert stored.events[-1].type == "scheduled" and stored.events[-1].data["retried_from"] == "dead"
        assert stored.attempts_for_occurrence == []  # a fresh attempt count
    assert [await status_of(repository, s) for s in others] == [S.UNKNOWN, S.MISSED, S.SUCCEEDED, S.SCHEDULED]
    assert await status_of(repository, own) is S.DEAD  # the service's own jobs only when named

    again = await retry_schedules(service, status=S.DEAD)  # nothing dead is left
    assert again.retried == [] and not again.refused


async def test_the_selectors_narrow_it_and_the_service_s_own_jobs_are_retried_when_named() -> None:
    mine = ended(S.DEAD, user_id="u1", labels={"campaign": "bf", "kind": "reminder"})
    mine_other_campaign = ended(S.DEAD, user_id="u1", labels={"campaign": "xmas"})
    theirs = ended(S.DEAD, user_id="u2", labels={"campaign": "bf"})
    template = ended(S.DEAD, task_type="whatsapp.template", user_id="u2")
    missed = ended(S.MISSED, user_id="u1", labels={"campaign": "bf"})
    delivery = ended(S.DEAD, task_type="webhook.delivery", user_id=None)
    service, repository = await service_with(mine, mine_other_campaign, theirs, template, missed, delivery)

    assert await retried(service, S.DEAD, user_id="u1", labels={"campaign": "bf"}) == [mine.id]
    assert await retried(service, S.DEAD, labels={"campaign": "bf"}) == [theirs.id]
    assert await retried(service, S.DEAD, task_types=["whatsapp.template"]) == [template.id]
    assert await retried(service, S.MISSED, user_id="u1") == [missed.id]
    assert await retried(service, S.DEAD, task_types=["webhook.delivery"]) == [delivery.id]
    assert await status_of(repository, mine_other_campaign) is S.DEAD


async def test_unknown_ones_are_retried_only_when_asked_for_by_name() -> None:
    unknown, dead = ended(S.UNKNOWN), ended(S.DEAD)
    service, repository = await service_with(unknown, dead)
    assert (await retry_schedules(service, status=S.UNKNOWN)).retried == [unknown.id]
    assert await status_of(repository, dead) is S.DEAD


@pytest.mark.parametrize("status", [S.SCHEDULED, S.RUNNING, S.PAUSED, S.SUCCEEDED, S.CANCELLED])
async def test_other_statuses_are_refused(status: ScheduleStatus) -> None:
    service, _ = await service_with(ended(S.SUCCEEDED))
    with pytest.raises(ValidationError) as refused:
        await retry_schedules(service, status=status)
    assert refused.value.field == "status" and status.value in str(refused.value)


async def test_an_empty_list_of_types_and_bad_labels_are_refused() -> None:
    service, _ = await service_with(ended(S.DEAD))
    with pytest.raises(ValidationError) as no_types:
        await retry_schedules(service, status=S.DEAD, selection=Selection(task_types=[]))
    assert no_types.value.field == "type"
    with pytest.raises(ValidationError) as bad:
        await retry_schedules(service, status=S.DEAD, selection=Selection(labels={"bad key": "1"}))
    assert bad.value.field == "labels"


async def test_a_window_retries_only_those_that_died_during_the_outage() -> None:
    outage = {"updated_after": NOW - timedelta(hours=3), "updated_before": NOW - timedelta(hours=2)}
    # Each last changed a millisecond after it was due: claimed then, failed at once (within one
    # millisecond, two changes are still two versions: updated_at moves on by one).
    stamps = timedelta(milliseconds=1)
    died = {name: ended(S.DEAD, at=NOW - ago - stamps) for name, ago in (
        ("just before", timedelta(hours=3, milliseconds=1)), ("at its start", timedelta(hours=3)),
        ("during", timedelta(hours=2, minutes=30)), ("at its end", timedelta(hours=2)),
        ("since", timedelta(minutes=5)))}
    assert died["at its start"].updated_at == outage["updated_after"]
    assert died["at its end"].updated_at == outage["updated_before"]
    unknown = ended(S.UNKNOWN, at=NOW - timedelta(hours=2, minutes=30))
    other_user = ended(S.DEAD, user_id="u2", at=NOW - timedelta(hours=2, minutes=30))
    service, repository = await service_with(*died.values(), unknown, other_user)

    result = await retry_schedules(service, status=S.DEAD, selection=Selection(user_id="u1", **outage))

    assert sorted(result.retried) == sorted([died["at its start"].id, died["during"].id]) and not result.refused
    assert {name: await status_of(repository, s) for name, s in died.items()} == {
        "just before": S.DEAD, "at its start": S.SCHEDULED, "during": S.SCHEDULED, "at its end": S.DEAD,
        "since": S.DEAD}
    assert await status_of(repository, unknown) is S.UNKNOWN and await status_of(repository, other_user) is S.DEAD
    # Either side may stay open; those retried now changed now, after any window that ended before.
    assert await retried(service, S.DEAD, **outage) == [other_user.id]
    assert sorted(await retried(service, S.DEAD, updated_after=NOW - timedelta(hours=2))) \
        == sorted([died["at its end"].id, died["since"].id])
    assert await retried(service, S.DEAD, updated_before=NOW) == [died["just before"].id]


@pytest.mark.parametrize(("window", "field"), [
    ({"updated_after": NOW, "updated_before": NOW}, "updated_before"),
    ({"updated_after": NOW, "updated_before": NOW - timedelta(hours=1)}, "updated_before"),
    ({"updated_after": NOW.replace(tzinfo=None)}, "updated_after"),
    ({"updated_before": NOW.replace(tzinfo=None)}, "updated_before"),
])
async def test_a_window_that_is_not_one_is_refused_naming_its_field_and_retries_nothing(
        window: dict[str, datetime], field: str) -> None:
    dead = ended(S.DEAD)
    service, repository = await service_with(dead)
    with pytest.raises(ValidationError) as refused:
        await retry_schedules(service, status=S.DEAD, selection=Selection(**window))
    assert refused.value.field == field
    assert await status_of(repository, dead) is S.DEAD


class ChangingStore(InMemoryScheduleRepository):
    """The in-memory store in which one schedule is retried by someone else between the listing
    and this retry (another operator, another API replica)."""

    racing: str | None = None

    async def save(self, schedule: Schedule, **kwargs: object) -> bool:  # type: ignore[override]
        if schedule.id == self.racing:
            self.racing = None
            stored = await self.get(schedule.id)
            assert stored is not None
            stored.retry_now(now=NOW)
            assert await super().save(stored, expected_status=S.DEAD)
        return await super().save(schedule, **kwargs)  # type: ignore[arg-type]


async def test_one_retried_meanwhile_is_refused_with_why() -> None:
    first, second = ended(S.DEAD), ended(S.DEAD)
    repository = ChangingStore()
    service, _ = await service_with(first, second, repository=repository)
    repository.racing = first.id

    result = await retry_schedules(service, status=S.DEAD)

    assert result.retried == [second.id]
    assert list(result.refused) == [first.id] and "only dead, unknown or missed" in result.refused[first.id]


class FailingAgainStore(InMemoryScheduleRepository):
    """The in-memory store in which ``doomed``, once retried, runs and dies again at once (a
    scheduler replica ran it while the retry was still paging through the rest)."""

    doomed: str | None = None

    async def save(self, schedule: Schedule, **kwargs: object) -> bool:  # type: ignore[override]
        saved = await super().save(schedule, **kwargs)  # type: ignore[arg-type]
        if saved and schedule.id == self.doomed and schedule.status is S.SCHEDULED:
            again = await self.get(schedule.id)
            assert again is not None
            again.claim(owner="r", attempt_id="a2", now=NOW, until=NOW + timedelta(seconds=30))
            again.mark_started(attempt_id="a2", now=NOW)
            again.fail(attempt_id="a2", now=NOW, error=ErrorInfo("190", "token expired"),
                       decision=RetryDecision(None, "not retryable"))
            assert await super().save(again, expected_status=S.SCHEDULED)
        return saved


async def test_one_that_dies_again_meanwhile_is_retried_once_per_call() -> None:
    doomed, other = ended(S.DEAD), ended(S.DEAD)
    repository = FailingAgainStore()
    service, _ = await service_with(doomed, other, repository=repository)
    repository.doomed = doomed.id

    result = await retry_schedules(service, status=S.DEAD)

    assert sorted(result.retried) == sorted([doomed.id, other.id])
    assert await status_of(repository, doomed) is S.DEAD  # the next call retries it again
    assert (await retry_schedules(service, status=S.DEAD)).retried == [doomed.id]


async def test_a_store_that_goes_away_is_its_own_error() -> None:
    repository = WritesDownStore()
    service, _ = await service_with(*(ended(S.DEAD) for _ in range(40)), repository=repository)
    repository.down = True
    with pytest.raises(StoreUnavailable, match="connection refused"):
        await retry_schedules(service, status=S.DEAD)


async def test_going_on_after_a_position_is_for_a_change_in_one_status_only() -> None:
    service, _ = await service_with(ended(S.DEAD))
    position = ListCursor(ListOrder.CREATED, NOW, "x")
    with pytest.raises(ValueError, match="one status only"):
        await change_matching(service, service.retrying(), statuses=(S.DEAD, S.MISSED), selection=Selection(),
                              after=position)
