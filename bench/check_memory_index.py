"""Differential check of the in-memory store's due-time index against a plain scan (not a test
suite: a randomised cross-check kept next to the benchmark that motivated the index).

``python bench/check_memory_index.py [rounds]``: runs random adds, claims (with type filters and
lapsed leases), renewals, saves (succeed, retry, release, cancel) and next_due_at against the
indexed store and a reference that scans every schedule, and fails on the first difference.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.repository import ScheduleRepository
from cronjob_adapters.codec import to_millis
from cronjob_adapters.memory.repository import InMemoryScheduleRepository

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TYPES = ("a", "b", "c")


class ScanningRepository(InMemoryScheduleRepository):
    """The reference: claims and next_due_at by scanning every schedule (the former implementation)."""

    async def claim_due(self, *, now, owner, lease_for, limit, task_types=None, exclude_types=()):  # type: ignore[no-untyped-def,override]
        due = [s for s in self._items.values()  # noqa: SLF001
               if s.is_due(now) and (task_types is None or s.task_type in task_types)
               and s.task_type not in exclude_types]
        due.sort(key=lambda s: (s.next_run_at or now, s.id))
        claimed = []
        for schedule in due[: max(limit, 0)]:
            schedule.claim(owner=owner, attempt_id=uuid.uuid4().hex, now=to_millis(now),
                           until=to_millis(now + lease_for))
            claimed.append(schedule.copy())
        return claimed

    async def next_due_at(self):  # type: ignore[no-untyped-def,override]
        times = []
        for s in self._items.values():  # noqa: SLF001
            if s.status is ScheduleStatus.SCHEDULED and s.next_run_at is not None:
                times.append(s.next_run_at)
            elif s.status is ScheduleStatus.RUNNING and s.lease is not None:
                times.append(s.lease.until)
        return min(times, default=None)


def _key(s: Schedule) -> tuple[object, ...]:
    lease = s.lease
    return (s.id, s.status, s.next_run_at, lease and (lease.owner, lease.until, lease.taken_over_from),
            len(s.attempts))


async def run(seed: int, steps: int = 400) -> None:
    rng = random.Random(seed)
    stores: list[ScheduleRepository] = [InMemoryScheduleRepository(), ScanningRepository()]
    running: dict[str, list[Schedule]] = {}  # id -> the claimed copy from each store
    ids: list[str] = []
    now = T0
    for _ in range(steps):
        op = rng.random()
        if op < 0.3:
            at = T0 + timedelta(seconds=rng.randrange(0, 120))
            trigger = IntervalTrigger(timedelta(seconds=7), at) if rng.random() < 0.2 else OnceTrigger(at)
            schedule = Schedule.create(id=uuid.uuid4().hex[:8], task_type=rng.choice(TYPES), payload={},
                                       trigger=trigger, timezone="UTC", first_run_at=at, now=T0)
            ids.append(schedule.id)
            for store in stores:
                await store.add(schedule)
        elif op < 0.55:
            filt: dict[str, object] = {}
            pick = rng.random()
            if pick < 0.3:
                filt["task_types"] = rng.sample(TYPES, rng.randrange(0, 3))
            elif pick < 0.6:
                filt["exclude_types"] = rng.sample(TYPES, rng.randrange(1, 3))
            limit = rng.randrange(-1, 6)
            lease = timedelta(seconds=rng.choice((5, 30)))
            owner = f"r{rng.randrange(3)}"
            got = [await store.claim_due(now=now, owner=owner, lease_for=lease, limit=limit,
                                         **filt) for store in stores]  # type: ignore[arg-type]
            assert [_key(s) for s in got[0]] == [_key(s) for s in got[1]], (seed, got)
            for a, b in zip(*got, strict=True):
                running[a.id] = [a, b]
        elif op < 0.75 and running:
            sid = rng.choice(list(running))
            copies = running.pop(sid)
            action = rng.random()
            retry_in = timedelta(seconds=rng.randrange(0, 20))
            results = []
            for copy in copies:
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
                results.append(await stores[len(results)].save(copy, expected_status=ScheduleStatus.RUNNING,
                                                               attempt_id=attempt))
            assert results[0] == results[1], (seed, results)
        elif op < 0.82 and running:
            sid = rng.choice(list(running))
            until = now + timedelta(seconds=rng.randrange(1, 40))
            results = [await store.renew_lease(sid, copy.lease.attempt_id, until)  # type: ignore[union-attr]
                       for store, copy in zip(stores, running[sid], strict=True)]
            assert results[0] == results[1], (seed, results)
        elif op < 0.87 and ids:
            sid = rng.choice(ids)
            results = []
            for store in stores:
                current = await store.get(sid)
                assert current is not None
                if current.status is ScheduleStatus.SCHEDULED:
                    current.cancel(now=now)
                    results.append(await store.save(current, expected_status=ScheduleStatus.SCHEDULED))
            assert len(set(results)) <= 1
        else:
            now += timedelta(seconds=rng.randrange(0, 15))
        due = [await store.next_due_at() for store in stores]
        assert due[0] == due[1], (seed, due)
        for sid in ids:
            a, b = [await store.get(sid) for store in stores]
            assert a is not None and b is not None and _key(a) == _key(b), (seed, _key(a), _key(b))


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for seed in range(rounds):
        asyncio.run(run(seed))
    print(f"{rounds} random histories: the index and the scan agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
