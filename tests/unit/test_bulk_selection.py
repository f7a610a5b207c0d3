"""What bulk cancel, pause and resume select beside a user and labels: task types, a due-time
window and a last-change window, each narrowing (never widening) the change; with the in-memory
store and a hand-driven clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.services.bulk import Selection
from cronjob.services.bulk_cancel import cancel_schedules
from cronjob.services.bulk_pause import pause_schedules, resume_schedules
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.builders import one_off
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
S = ScheduleStatus
TOMORROW = datetime(2030, 1, 16, tzinfo=UTC)
DAY_AFTER = TOMORROW + timedelta(days=1)
#: The bad deploy: what was made (or paused) from 08:00 to 09:00 today.
DEPLOY = (NOW - timedelta(hours=3), NOW - timedelta(hours=2))


async def _cancelled(service: SchedulingService, selection: Selection) -> list[str]:
    return (await cancel_schedules(service, selection)).cancelled


async def _paused(service: SchedulingService, selection: Selection) -> list[str]:
    return (await pause_schedules(service, selection)).changed


async def _resumed(service: SchedulingService, selection: Selection) -> list[str]:
    return (await resume_schedules(service, selection)).changed


@dataclass(frozen=True)
class Action:
    """A bulk change: the ids it changed, the status it changes from, the one it leaves and the
    event it records."""

    act: Callable[[SchedulingService, Selection], Awaitable[list[str]]]
    before: ScheduleStatus
    after: ScheduleStatus
    event: str


ACTIONS = {
    "cancel": Action(_cancelled, S.SCHEDULED, S.CANCELLED, "cancelled"),
    "pause": Action(_paused, S.SCHEDULED, S.PAUSED, "paused"),
    "resume": Action(_resumed, S.PAUSED, S.SCHEDULED, "resumed"),
}


def waiting(action: Action, due: datetime, changed: datetime, *, task_type: str = "whatsapp.template",
            user_id: str = "u1") -> Schedule:
    """A one-off due ``due`` in the status ``action`` changes from, last changed ``changed``
    (made then, or, to be resumed, made a day before and paused then)."""
    if action.before is S.SCHEDULED:
        return one_off(due, now=changed, task_type=task_type, user_id=user_id)
    schedule = one_off(due, now=changed - timedelta(days=1), task_type=task_type, user_id=user_id)
    schedule.pause(now=changed)
    return schedule


async def service_with(*schedules: Schedule) -> tuple[SchedulingService, InMemoryScheduleRepository]:
    clock = FixedClock(NOW)
    repository = InMemoryScheduleRepository()
    for schedule in schedules:
        await repository.add(schedule)
    return SchedulingService(repository, clock, RecordingSignal(clock)), repository


async def statuses(repository: InMemoryScheduleRepository, schedules: dict[str, Schedule]) -> dict[str, S]:
    found = {name: await repository.get(s.id) for name, s in schedules.items()}
    return {name: s.status for name, s in found.items() if s is not None}


@pytest.mark.parametrize("name", ACTIONS)
async def test_the_type_the_due_window_and_the_last_change_window_narrow_it(name: str) -> None:
    action = ACTIONS[name]
    during = DEPLOY[0] + timedelta(minutes=30)
    tomorrow = TOMORROW + timedelta(hours=10)
    schedules = {
        "match": waiting(action, tomorrow, during),
        "due at the window's start": waiting(action, TOMORROW, during),
        "changed at the window's start": waiting(action, tomorrow, DEPLOY[0]),
        "another type": waiting(action, tomorrow, during, task_type="whatsapp.text"),
        "due today": waiting(action, NOW + timedelta(hours=1), during),
        "due at the window's end": waiting(action, DAY_AFTER, during),
        "changed before": waiting(action, tomorrow, DEPLOY[0] - timedelta(milliseconds=1)),
        "changed at the window's end": waiting(action, tomorrow, DEPLOY[1]),
        "another user's": waiting(action, tomorrow, during, user_id="u2"),
    }
    service, repository = await service_with(*schedules.values())

    changed = await action.act(service, Selection(
        task_types=["whatsapp.template"], user_id="u1", due_after=TOMORROW, due_before=DAY_AFTER,
        updated_after=DEPLOY[0], updated_before=DEPLOY[1]))

    chosen = ("match", "due at the window's start", "changed at the window's start")
    assert sorted(changed) == sorted(schedules[n].id for n in chosen)
    assert await statuses(repository, schedules) == {n: action.after if n in chosen else action.before
                                                     for n in schedules}
    for schedule_id in changed:  # each as the single-schedule change does it
        stored = await repository.get(schedule_id)
        assert stored is not None and stored.events[-1].type == action.event


@pytest.mark.parametrize("name", ACTIONS)
async def test_each_filter_alone_narrows_it_and_a_window_may_stay_open_on_one_side(name: str) -> None:
    action = ACTIONS[name]
    for selection, chosen in (
            (Selection(user_id="u1", task_types=["whatsapp.text"]), "text"),
            (Selection(user_id="u1", due_after=DAY_AFTER), "later template"),
            (Selection(user_id="u1", due_before=DAY_AFTER), "text"),
            (Selection(user_id="u1", updated_after=DEPLOY[1]), "later template"),
            (Selection(user_id="u1", updated_before=DEPLOY[1]), "text"),
            (Selection(user_id="u1"), "both")):
        schedules = {"text": waiting(action, TOMORROW, DEPLOY[0], task_type="whatsapp.text"),
                     "later template": waiting(action, DAY_AFTER, DEPLOY[1])}
        service, _ = await service_with(*schedules.values())
        assert sorted(await action.act(service, selection)) == sorted(
            s.id for n, s in schedules.items() if chosen in (n, "both")), selection


async def test_a_due_window_of_more_than_a_page_is_listed_by_its_own_cursor() -> None:
    action = ACTIONS["pause"]
    # More pages (of 1000) than passes (3): each page is read after the last by its cursor.
    inside = [waiting(action, TOMORROW + timedelta(seconds=i), DEPLOY[0]) for i in range(3050)]
    outside = waiting(action, DAY_AFTER, DEPLOY[0])
    service, repository = await service_with(*inside, outside)
    changed = await action.act(service, Selection(user_id="u1", due_after=TOMORROW, due_before=DAY_AFTER))
    assert sorted(changed) == sorted(s.id for s in inside)
    assert await statuses(repository, {"outside": outside}) == {"outside": S.SCHEDULED}


@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize("narrowing", [
    {"task_types": ["whatsapp.template"]}, {"due_after": TOMORROW, "due_before": DAY_AFTER},
    {"updated_after": DEPLOY[0]}, {"labels": {}, "task_types": ["whatsapp.template"], "updated_before": NOW},
])
async def test_a_narrowing_without_a_user_or_labels_is_refused(name: str, narrowing: dict[str, Any]) -> None:
    action = ACTIONS[name]
    schedule = waiting(action, TOMORROW, DEPLOY[0])
    service, repository = await service_with(schedule)
    with pytest.raises(ValidationError, match="never everyone's") as refused:
        await action.act(service, Selection(**narrowing))
    assert refused.value.field == "userId"
    assert await statuses(repository, {"it": schedule}) == {"it": action.before}


@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize(("narrowing", "field"), [
    ({"task_types": []}, "type"),
    ({"due_after": TOMORROW, "due_before": TOMORROW}, "due_before"),
    ({"due_after": DAY_AFTER, "due_before": TOMORROW}, "due_before"),
    ({"due_after": TOMORROW.replace(tzinfo=None)}, "due_after"),
    ({"due_before": TOMORROW.replace(tzinfo=None)}, "due_before"),
    ({"updated_after": NOW, "updated_before": NOW}, "updated_before"),
    ({"updated_after": NOW.replace(tzinfo=None)}, "updated_after"),
])
async def test_a_narrowing_that_is_not_one_is_refused_naming_its_field(name: str, narrowing: dict[str, Any],
                                                                       field: str) -> None:
    action = ACTIONS[name]
    schedule = waiting(action, TOMORROW, DEPLOY[0])
    service, repository = await service_with(schedule)
    with pytest.raises(ValidationError) as refused:
        await action.act(service, Selection(user_id="u1", **narrowing))
    assert refused.value.field == field
    assert await statuses(repository, {"it": schedule}) == {"it": action.before}


def test_a_checked_selection_is_in_utc_rounded_up_to_the_millisecond_and_checks_the_same_again() -> None:
    sao_paulo = TOMORROW.astimezone(timezone(timedelta(hours=-3))) + timedelta(microseconds=1)
    checked = Selection(user_id="u1", labels={"order": "1"}, due_after=sao_paulo,
                        updated_before=NOW + timedelta(microseconds=1500)).checked()
    assert checked.due_after == TOMORROW + timedelta(milliseconds=1) and checked.due_after.tzinfo == UTC
    assert checked.updated_before == NOW + timedelta(milliseconds=2)
    assert checked.labels == {"order": "1"} and checked.task_types is None and checked.due_before is None
    assert checked.checked() == checked

