"""Schedule.copy: every field kept, each list and dict its own, the immutable parts shared."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import Attempt, Lease, MisfirePolicy, Schedule, ScheduleEvent, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger

T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def every_field_set() -> Schedule:
    """A schedule whose every field holds something other than its default (a copy that left
    one out, or gave it its default, differs)."""
    return Schedule(
        id="s1", task_type="whatsapp.text", payload={"to": "5511999999999", "nested": {"a": [1, 2]}},
        trigger=OnceTrigger(T0), timezone="America/Sao_Paulo", status=ScheduleStatus.RUNNING,
        next_run_at=T0, occurrence=T0, created_at=T0 - timedelta(hours=1), updated_at=T0 + timedelta(seconds=1),
        user_id="u1", idempotency_key="k1", retry=RetryPolicy(max_attempts=3),
        misfire=MisfirePolicy(grace=timedelta(seconds=5), coalesce=False), send_by=T0 + timedelta(hours=1),
        lease=Lease(owner="r1", attempt_id="a2", claimed_at=T0, until=T0 + timedelta(seconds=30),
                    taken_over_from="r0"),
        attempts=[Attempt(attempt_id="a1", number=1, owner="r0", scheduled_for=T0, started_at=T0,
                          finished_at=T0, outcome="retrying", error=ErrorInfo("x", "y", True))],
        result={"provider_message_id": "wamid.1"}, last_error=ErrorInfo("x", "y", True), metadata={"m": "1"},
        callback_url="https://example.com/hook",
        events=[ScheduleEvent(id="e1", type="scheduled", at=T0, data={"next_run_at": "2030-01-15T12:00:00.000Z"})],
        delivery={"status": "sent"}, pause_after_failures=2, failed_in_a_row=1, labels={"order": "123"},
        run_timeout=timedelta(minutes=5),
    )


def test_a_copy_keeps_every_field() -> None:
    schedule = every_field_set()
    defaults = Schedule(id="s0", task_type="t", payload={}, trigger=OnceTrigger(T0 + timedelta(days=1)), timezone="UTC",
                        status=ScheduleStatus.SCHEDULED, next_run_at=None, occurrence=None, created_at=T0,
                        updated_at=T0)
    unset = [f.name for f in fields(Schedule) if getattr(schedule, f.name) == getattr(defaults, f.name)]
    assert unset == [], "the schedule above sets every field, so a field left out of the copy shows"
    copied = schedule.copy()
    assert type(copied) is Schedule
    assert {f.name: getattr(copied, f.name) for f in fields(Schedule)} == {
        f.name: getattr(schedule, f.name) for f in fields(Schedule)}


def test_a_copy_has_its_own_lists_and_dicts_and_shares_the_immutable_parts() -> None:
    schedule = every_field_set()
    copied = schedule.copy()
    for f in fields(Schedule):
        value = getattr(schedule, f.name)
        if isinstance(value, list | dict):
            assert getattr(copied, f.name) is not value, f"{f.name} is shared"
        else:
            assert getattr(copied, f.name) is value, f"{f.name} is not shared"
    copied.payload["to"] = "other"
    copied.attempts.clear()
    copied.events.append(ScheduleEvent(id="e2", type="started", at=T0))
    for name in ("result", "metadata", "delivery", "labels"):
        getattr(copied, name)["added"] = "x"
    assert schedule == every_field_set(), "changing the copy's lists and dicts left the original as it was"
