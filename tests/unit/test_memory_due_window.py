"""The in-memory store's due-time window, cross-checked against a brute-force filter and sort.

For random sets of schedules (due within a few milliseconds of each other, so that bounds fall
on them and due times tie; in every status, running without a due time and cancelled with one
too; of a few users, labels and task types) and random windows (bounds to the microsecond, in
several offsets, one side open, empty or the wrong way round at times) with the other filters
and a page, ``list`` must return exactly what a plain scan of every schedule, filtered by the
port's rules and sorted by ``(next_run_at, id)``, gives for that page.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings, strategies as st

from cronjob.domain.labels import matches
from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.builders import T0, one_off

LEASE = timedelta(seconds=30)
#: What becomes of a schedule once added (``timeless``: running, with no due time stored;
#: ``stale``: cancelled, its due time still stored, as the domain never leaves it).
FATES = ("wait", "pause", "run", "timeless", "succeed", "dead", "cancel", "stale")
#: The statuses with a due time, written out here as the port's docstring says them.
WITH_A_DUE_TIME = {ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING, ScheduleStatus.PAUSED}
OFFSETS = [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]

small_labels = st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["", "1"]), max_size=2)
users = st.sampled_from([None, "u1", "u2"])
task_types = st.sampled_from(["whatsapp.text", "email", "webhook.delivery"])
schedules = st.lists(
    st.tuples(st.text("abcdef", min_size=1, max_size=3), st.integers(-20, 20), st.sampled_from(FATES),
              users, small_labels, task_types),
    min_size=6, max_size=30, unique_by=lambda spec: spec[0])


def mostly_none(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """None three times in four (a filter left out), else one of ``values``: so that most pages
    hold something."""
    return st.sampled_from([False, False, False, True]).flatmap(lambda given: values if given else st.none())


def _instant(draw: st.DrawFn, ms: int) -> datetime:
    """``T0`` + ``ms`` milliseconds, + a few microseconds or none, in one of several offsets."""
    at = T0 + timedelta(milliseconds=ms, microseconds=draw(st.sampled_from([0, 0, 1, 500, 999])))
    return at.astimezone(draw(st.sampled_from(OFFSETS)))


@st.composite
def windows(draw: st.DrawFn) -> tuple[datetime | None, datetime | None]:
    """``(due_after, due_before)`` near the due times: both (mostly a few milliseconds apart, at
    times empty or the wrong way round), or one side open."""
    start = draw(st.integers(-22, 20))
    after = _instant(draw, start)
    before = _instant(draw, start + draw(st.integers(-2, 30)))
    return draw(st.sampled_from([(after, before), (after, before), (after, None), (None, before)]))


queries = st.fixed_dictionaries({
    "window": windows(),
    "status": mostly_none(st.sampled_from(list(ScheduleStatus))),
    "user_id": mostly_none(users),
    "labels": mostly_none(small_labels),
    "task_types": mostly_none(st.lists(task_types, max_size=2, unique=True)),
    "exclude_types": mostly_none(st.lists(task_types, max_size=1)).map(lambda types: types or []),
    "limit": st.integers(1, 12),
    "offset": st.sampled_from([0, 0, 0, 1, 2, 3, 5, 8]),
})


def _become(schedule: Schedule, fate: str) -> Schedule:
    """``schedule`` (scheduled, as added) once ``fate`` happened to it, through its own
    transitions (then, for ``timeless`` and ``stale``, ``next_run_at`` set by hand)."""
    changed = schedule.copy()
    now = T0 - timedelta(minutes=1)
    if fate == "pause":
        changed.pause(now=now)
    elif fate in ("cancel", "stale"):
        changed.cancel(now=now)
        if fate == "stale":
            changed.next_run_at = schedule.next_run_at
    elif fate != "wait":
        changed.claim(owner="r1", attempt_id=f"attempt-{schedule.id}", now=now, until=now + LEASE)
        if fate == "timeless":
            changed.next_run_at = None
        elif fate == "succeed":
            changed.succeed(attempt_id=f"attempt-{schedule.id}", now=now)
        elif fate == "dead":
            changed.fail(attempt_id=f"attempt-{schedule.id}", now=now, error=ErrorInfo("x", "failed"),
                         decision=RetryDecision(None, "no retry"))
    return changed


def _brute_force(stored: list[Schedule], query: dict[str, Any]) -> list[str]:
    """The page ``list(**query)`` must return, by scanning every schedule."""
    after, before = query["due_after"], query["due_before"]
    wanted = [
        s for s in stored
        if s.status in WITH_A_DUE_TIME and s.next_run_at is not None
        and (after is None or s.next_run_at >= after) and (before is None or s.next_run_at < before)
        and (query["status"] is None or s.status is query["status"])
        and (query["user_id"] is None or s.user_id == query["user_id"])
        and matches(s.labels, query["labels"] or {})
        and (query["task_types"] is None or s.task_type in query["task_types"])
        and s.task_type not in query["exclude_types"]
    ]
    wanted.sort(key=lambda s: (s.next_run_at or T0, s.id))  # (each has a next_run_at)
    return [s.id for s in wanted][query["offset"]:query["offset"] + query["limit"]]


@settings(max_examples=300, deadline=None)
@given(schedules, st.lists(queries, min_size=1, max_size=6))
def test_the_memory_store_s_window_is_a_filter_and_sort_of_every_schedule(
        specs: list[tuple[str, int, str, str | None, dict[str, str], str]],
        asked: list[dict[str, Any]]) -> None:
    async def run() -> None:
        repo = InMemoryScheduleRepository()
        for name, due_ms, fate, user, labels, task_type in specs:
            schedule = one_off(T0 + timedelta(milliseconds=due_ms), schedule_id=name, now=T0 - timedelta(hours=1),
                               user_id=user, labels=labels, task_type=task_type)
            await repo.add(schedule)
            assert await repo.save(_become(schedule, fate), expected_status=ScheduleStatus.SCHEDULED)
        stored = [s for s in [await repo.get(name) for name, *_ in specs] if s is not None]
        assert len(stored) == len(specs)
        for asking in asked:
            query = {key: value for key, value in asking.items() if key != "window"}
            query["due_after"], query["due_before"] = asking["window"]
            assert [s.id for s in await repo.list(**query)] == _brute_force(stored, query), query

    asyncio.run(run())
