"""An in-memory ScheduleRepository: a dict and a heap-free due scan, guarded by one asyncio lock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.repository import DuplicateSchedule, ScheduleRepository

from cronjob_adapters.codec import to_millis


class InMemoryScheduleRepository(ScheduleRepository):
    """Keeps schedules in a dict of copies, so callers never share state with the store.

    Claims scan the live schedules, which is fine for tests and small single-process use; the
    SQLite and MongoDB stores answer through a due-time index instead.
    """

    def __init__(self) -> None:
        self._items: dict[str, Schedule] = {}
        self._by_key: dict[str, str] = {}
        self._live: set[str] = set()  # ids in scheduled/running: the only ones a claim looks at
        self._lock = asyncio.Lock()

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    def _put(self, schedule: Schedule) -> None:
        stored = schedule.copy()
        self._items[stored.id] = stored
        if stored.status in (ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING):
            self._live.add(stored.id)
        else:
            self._live.discard(stored.id)

    async def add(self, schedule: Schedule) -> None:
        async with self._lock:
            if schedule.id in self._items:
                raise DuplicateSchedule(schedule.id)
            key = schedule.idempotency_key
            if key and key in self._by_key:
                raise DuplicateSchedule(self._by_key[key])
            if key:
                self._by_key[key] = schedule.id
            self._put(schedule)

    async def get(self, schedule_id: str) -> Schedule | None:
        stored = self._items.get(schedule_id)
        return stored.copy() if stored else None

    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        schedule_id = self._by_key.get(key)
        return await self.get(schedule_id) if schedule_id else None

    async def list(
        self, *, status: ScheduleStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Schedule]:
        chosen = [s for s in self._items.values() if status is None or s.status is status]
        chosen.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return [s.copy() for s in chosen[offset : offset + limit]]

    async def count_by_status(self) -> dict[ScheduleStatus, int]:
        counts: dict[ScheduleStatus, int] = {}
        for schedule in self._items.values():
            counts[schedule.status] = counts.get(schedule.status, 0) + 1
        return counts

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        counts: dict[tuple[ScheduleStatus, str], int] = {}
        for schedule in self._items.values():
            key = (schedule.status, schedule.task_type)
            counts[key] = counts.get(key, 0) + 1
        return counts

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
        async with self._lock:
            due = [
                s for s in (self._items[i] for i in self._live)
                if s.is_due(now) and (task_types is None or s.task_type in task_types)
                and s.task_type not in exclude_types
            ]
            due.sort(key=lambda s: (s.next_run_at or now, s.id))
            claimed: list[Schedule] = []
            for schedule in due[:limit]:
                schedule.claim(owner=owner, attempt_id=uuid.uuid4().hex, now=to_millis(now),
                               until=to_millis(now + lease_for))
                claimed.append(schedule.copy())
            return claimed

    async def save(
        self, schedule: Schedule, *, expected_status: ScheduleStatus, attempt_id: str | None = None
    ) -> bool:
        async with self._lock:
            stored = self._items.get(schedule.id)
            if stored is None or stored.status is not expected_status:
                return False
            if attempt_id is not None and (stored.lease is None or stored.lease.attempt_id != attempt_id):
                return False
            self._put(schedule)
            return True

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        async with self._lock:
            stored = self._items.get(schedule_id)
            if stored is None or stored.status is not ScheduleStatus.RUNNING:
                return False
            if stored.lease is None or stored.lease.attempt_id != attempt_id:
                return False
            stored.lease = type(stored.lease)(owner=stored.lease.owner, attempt_id=attempt_id,
                                              claimed_at=stored.lease.claimed_at, until=to_millis(until))
            return True

    async def next_due_at(self) -> datetime | None:
        times: list[datetime] = []
        for schedule_id in self._live:
            schedule = self._items[schedule_id]
            if schedule.status is ScheduleStatus.SCHEDULED and schedule.next_run_at is not None:
                times.append(schedule.next_run_at)
            elif schedule.status is ScheduleStatus.RUNNING and schedule.lease is not None:
                times.append(schedule.lease.until)
        return min(times, default=None)
