"""The in-memory store holds no lock: each of its writes must finish without giving the event loop
a chance to run anything else, or two callers could interleave (two claims of one schedule, a
save between another's fence check and its write)."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.repository import ConditionalSave
from cronjob_adapters.memory.repository import InMemoryScheduleRepository

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def in_one_step(call: Coroutine[Any, Any, Any]) -> Any:
    """Run ``call`` for one step of the event loop: what it returns, or AssertionError when it
    would wait for anything (and so let other callers in) before its end."""
    try:
        call.send(None)
    except StopIteration as done:
        return done.value
    call.close()
    raise AssertionError(f"{call.__qualname__} suspended before it ended")


def one_off(schedule_id: str) -> Schedule:
    return Schedule.create(id=schedule_id, task_type="a", payload={}, trigger=OnceTrigger(T0), timezone="UTC",
                           first_run_at=T0, now=T0 - timedelta(minutes=1), idempotency_key=f"key-{schedule_id}")


def test_every_write_ends_in_one_step_of_the_event_loop() -> None:
    repo = InMemoryScheduleRepository()
    in_one_step(repo.add(one_off("s1")))
    assert in_one_step(repo.add_many([one_off("s2"), one_off("s1")])) == [None, "s1"]
    claimed = in_one_step(repo.claim_due(now=T0, owner="r1", lease_for=LEASE, limit=2))
    assert sorted(s.id for s in claimed) == ["s1", "s2"]
    first, second = sorted(claimed, key=lambda s: s.id)
    assert first.lease is not None and second.lease is not None
    attempts = first.lease.attempt_id, second.lease.attempt_id
    assert in_one_step(repo.renew_lease("s1", attempts[0], T0 + 2 * LEASE))
    first.succeed(attempt_id=attempts[0], now=T0)
    assert in_one_step(repo.save(first, expected_status=ScheduleStatus.RUNNING, attempt_id=attempts[0]))
    second.succeed(attempt_id=attempts[1], now=T0)
    write = ConditionalSave(second, expected_status=ScheduleStatus.RUNNING, attempt_id=attempts[1])
    assert in_one_step(repo.save_many([write])) == [True]
    assert in_one_step(repo.delete_finished(before=T0 + timedelta(days=1), statuses=[ScheduleStatus.SUCCEEDED],
                                            limit=10)) == 2
