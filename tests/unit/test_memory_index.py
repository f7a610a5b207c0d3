"""The in-memory store's due-time index, cross-checked against a plain scan over random histories.

Each seed runs a random history of adds, claims (with type filters, limits and lapsed leases),
lease renewals, saves (succeed, retry, release), cancellations and clock moves against the
indexed ``InMemoryScheduleRepository`` and against ``ScanningRepository``, a reference that
answers ``claim_due`` and ``next_due_at`` by scanning every schedule. After every step both must
agree on what was claimed, on every save and renewal, on ``next_due_at`` and on every schedule.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest

from cronjob.domain.message import ErrorInfo
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger, Trigger
from cronjob.ports.repository import ScheduleRepository
from cronjob_adapters.codec import to_millis
from cronjob_adapters.memory.repository import InMemoryScheduleRepository

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TYPES = ("a", "b", "c")
SEEDS = range(20)
STEPS = 400


class ScanningRepository(InMemoryScheduleRepository):
    """The reference: claims and ``next_due_at`` by scanning every schedule (the implementation
    before the index); everything else is the in-memory store's."""

    async def claim_due(
        self,
        *,
        now: datetime,
        owner: str,
        lease_for: timedelta,
        limit: int,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
    ) -> list[Schedule]:
        due = [s for s in self._items.values()
               if s.is_due(now) and (task_types is None or s.task_type in task_types)
               and s.task_type not in exclude_types]
        due.sort(key=lambda s: (s.next_run_at or now, s.id))
        claimed = []
        for schedule in due[: max(limit, 0)]:
            schedule.claim(owner=owner, attempt_id=uuid.uuid4().hex, now=to_millis(now),
                           until=to_millis(now + lease_for))
            claimed.append(schedule.copy())
        return claimed

    async def next_due_at(self) -> datetime | None:
        times = []
        for s in self._items.values():
            if s.status is ScheduleStatus.SCHEDULED and s.next_run_at is not None:
                times.append(s.next_run_at)
            elif s.status is ScheduleStatus.RUNNING and s.lease is not None:
                times.append(s.lease.until)
        return min(times, default=None)


def _key(s: Schedule) -> tuple[object, ...]:
    """What both stores must agree on (attempt ids are random: compared by count only)."""
    lease = s.lease
    return (s.id, s.status, s.next_run_at, lease and (lease.owner, lease.until, lease.taken_over_from),
            len(s.attempts))


@pytest.mark.parametrize("seed", SEEDS)
async def test_the_index_answers_as_a_scan_of_every_schedule(seed: int) -> None:
    rng = random.Random(seed)
    indexed, scanning = InMemoryScheduleRepository(), ScanningRepository()
    stores: list[ScheduleRepository] = [indexed, scanning]
    running: dict[str, list[Schedule]] = {}  # id -> the claimed copy from each store
    ids: list[str] = []
    now = T0
    for step in range(STEPS):
        where = f"seed {seed}, step {step}"
        op = rng.random()
        if op < 0.3:  # add a one-off or a recurring schedule, due within two minutes
            at = T0 + timedelta(seconds=rng.randrange(0, 120))
            trigger: Trigger = IntervalTrigger(timedelta(seconds=7), at) if rng.random() < 0.2 else OnceTrigger(at)
            schedule = Schedule.create(id=uuid.uuid4().hex[:8], task_type=rng.choice(TYPES), payload={},
                                       trigger=trigger, timezone="UTC", first_run_at=at, now=T0)
            ids.append(schedule.id)
            for store in stores:
                await store.add(schedule)
        elif op < 0.55:  # claim, maybe filtered by type, with short or long leases
            task_types: list[str] | None = None
            exclude_types: list[str] = []
            pick = rng.random()
            if pick < 0.3:
                task_types = rng.sample(TYPES, rng.randrange(0, 3))
            elif pick < 0.6:
                exclude_types = rng.sample(TYPES, rng.randrange(1, 3))
            limit = rng.randrange(-1, 6)
            lease = timedelta(seconds=rng.choice((5, 30)))
            owner = f"r{rng.randrange(3)}"
            got = [await store.claim_due(now=now, owner=owner, lease_for=lease, limit=limit,
                                         task_types=task_types, exclude_types=exclude_types)
                   for store in stores]
            assert [_key(s) for s in got[0]] == [_key(s) for s in got[1]], where
            for a, b in zip(*got, strict=True):
                running[a.id] = [a, b]
        elif op < 0.75 and running:  # finish a claimed run: succeed, retry or release
            sid = rng.choice(list(running))
            copies = running.pop(sid)
            action = rng.random()
            retry_in = timedelta(seconds=rng.randrange(0, 20))
            saved = []
            for store, copy in zip(stores, copies, strict=True):
                assert copy.lease is not None
                attempt = copy.lease.attempt_id
                later = now + timedelta(seconds=1)
                if action < 0.5:
                    copy.succeed(attempt_id=attempt, now=later)
                elif action < 0.75:
                    copy.fail(attempt_id=attempt, now=later, error=ErrorInfo("x", "y", True),
                              decision=RetryDecision(later + retry_in, "retry"))
                else:
                    copy.release(attempt_id=attempt, now=later)
                saved.append(await store.save(copy, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt))
            assert saved[0] == saved[1], where
        elif op < 0.82 and running:  # renew a lease (it may have lapsed and been taken over)
            sid = rng.choice(list(running))
            until = now + timedelta(seconds=rng.randrange(1, 40))
            renewed = []
            for store, copy in zip(stores, running[sid], strict=True):
                assert copy.lease is not None
                renewed.append(await store.renew_lease(sid, copy.lease.attempt_id, until))
            assert renewed[0] == renewed[1], where
        elif op < 0.87 and ids:  # cancel a schedule that is waiting
            sid = rng.choice(ids)
            cancelled = []
            for store in stores:
                current = await store.get(sid)
                assert current is not None
                if current.status is ScheduleStatus.SCHEDULED:
                    current.cancel(now=now)
                    cancelled.append(await store.save(current, expected_status=ScheduleStatus.SCHEDULED))
            assert len(set(cancelled)) <= 1, where
        else:  # time passes: leases lapse, schedules fall due
            now += timedelta(seconds=rng.randrange(0, 15))
        assert await indexed.next_due_at() == await scanning.next_due_at(), where
        for sid in ids:
            a, b = await indexed.get(sid), await scanning.get(sid)
            assert a is not None and b is not None
            assert _key(a) == _key(b), where
