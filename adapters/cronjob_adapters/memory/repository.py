"""An in-memory ScheduleRepository: a dict of copies and a due-time index."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from heapq import heapify, heappop, heappush

from cronjob.domain.schedule import LIVE_STATUSES, Schedule, ScheduleStatus
from cronjob.ports.repository import (
    ConditionalSave,
    DuplicateSchedule,
    ListCursor,
    ScheduleRepository,
    check_cursor,
    check_finished,
    check_one_each,
)

from cronjob_adapters.codec import bound_millis, to_millis
from cronjob_adapters.ids import attempt_ids

_SCHEDULED = ScheduleStatus.SCHEDULED
_RUNNING = ScheduleStatus.RUNNING

#: An index entry: (due time, schedule id, sequence number). An entry is live while its sequence
#: number is the one recorded for the schedule; every change of the schedule records a new one.
_Entry = tuple[datetime, str, int]


class InMemoryScheduleRepository(ScheduleRepository):
    """Keeps schedules in a dict of copies, so callers never share state with the store.

    Like the other stores it answers ``claim_due`` and ``next_due_at`` through a due-time index:
    a heap per task type of the ``scheduled`` schedules by ``next_run_at``, and a heap of the
    ``running`` ones by lease expiry. Entries are never updated in place: a change pushes a new
    entry and the old one is skipped when it surfaces (the heaps are rebuilt when such stale
    entries outnumber the live ones). ``list`` by user or labels reads the ids of the user and of
    each label from maps of user id and of ``(key, value)`` to ids, and only those schedules;
    ``list`` in a due-time window filters and sorts the candidates by ``next_run_at`` (the heaps
    hold only what a claim needs: neither the paused schedules nor the running ones' due times);
    in a last-change window, it filters them by ``updated_at``; after a cursor, by position.

    No method awaits anything before it has done all it does, so each is atomic on the event
    loop without a lock (an ``asyncio.Lock`` around the writes cost a burst of runs 2% of its
    instructions). A change that awaits inside one must guard it again.
    """

    def __init__(self) -> None:
        self._items: dict[str, Schedule] = {}
        self._by_key: dict[str, str] = {}
        self._by_message: dict[str, str] = {}  # provider message id of the latest send -> schedule id
        self._by_label: dict[tuple[str, str], set[str]] = {}  # (key, value) -> ids of the schedules with it
        self._by_user: dict[str, set[str]] = {}  # user id -> ids of the schedules made with it (it never changes)
        self._due: dict[str, list[_Entry]] = {}  # task type -> heap of scheduled, by next_run_at
        self._leases: list[_Entry] = []  # running, by lease.until
        self._live: dict[str, int] = {}  # schedule id -> sequence number of its live entry
        self._entries = 0  # entries in all heaps, live or stale
        self._sequence = itertools.count()

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- the index -----------------------------------------------------------------------------

    def _index(self, stored: Schedule) -> None:
        """Record where ``stored`` (just written) is due, if anywhere."""
        if stored.status is _SCHEDULED and stored.next_run_at is not None:
            heap = self._due.get(stored.task_type)
            if heap is None:
                heap = self._due[stored.task_type] = []
            at = stored.next_run_at
        elif stored.status is _RUNNING and stored.lease is not None:
            heap, at = self._leases, stored.lease.until
        else:
            self._live.pop(stored.id, None)
            return
        sequence = next(self._sequence)
        self._live[stored.id] = sequence
        heappush(heap, (at, stored.id, sequence))
        self._entries += 1
        if self._entries > 1024 and self._entries > 2 * len(self._live):
            self._rebuild()

    def _rebuild(self) -> None:
        """Drop the stale entries: rebuild every heap from the live schedules."""
        due: dict[str, list[_Entry]] = {}
        leases: list[_Entry] = []
        live = self._live
        for schedule_id, sequence in live.items():
            stored = self._items[schedule_id]
            if stored.status is _SCHEDULED:
                due.setdefault(stored.task_type, []).append((stored.next_run_at, schedule_id, sequence))  # type: ignore[arg-type]
            else:
                leases.append((stored.lease.until, schedule_id, sequence))  # type: ignore[union-attr]
        for heap in due.values():
            heapify(heap)
        heapify(leases)
        self._due, self._leases, self._entries = due, leases, len(live)

    def _top(self, heap: list[_Entry]) -> _Entry | None:
        """The earliest live entry of ``heap`` (stale ones on top are discarded)."""
        live = self._live
        while heap:
            entry = heap[0]
            if live.get(entry[1]) == entry[2]:
                return entry
            heappop(heap)
            self._entries -= 1
        return None

    def _put(self, schedule: Schedule) -> None:
        stored = schedule.copy()
        previous = self._items.get(stored.id)
        message_id = stored.result.get("provider_message_id")
        old_message_id = previous.result.get("provider_message_id") if previous is not None else None
        if old_message_id != message_id:
            if old_message_id and self._by_message.get(old_message_id) == stored.id:
                del self._by_message[old_message_id]
            if message_id:
                self._by_message[message_id] = stored.id
        self._items[stored.id] = stored
        if previous is None and stored.user_id is not None:
            self._by_user.setdefault(stored.user_id, set()).add(stored.id)
        self._index_labels(stored.id, previous.labels if previous is not None else {}, stored.labels)
        self._index(stored)

    def _index_labels(self, schedule_id: str, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        """Move ``schedule_id`` in the label index from its ``old`` labels to its ``new`` ones."""
        if old == new:
            return
        for pair in old.items() - new.items():
            ids = self._by_label[pair]
            ids.discard(schedule_id)
            if not ids:
                del self._by_label[pair]
        for pair in new.items() - old.items():
            self._by_label.setdefault(pair, set()).add(schedule_id)

    # -- the port ------------------------------------------------------------------------------

    async def add(self, schedule: Schedule) -> None:
        if schedule.id in self._items:
            raise DuplicateSchedule(schedule.id)
        key = schedule.idempotency_key
        if key and key in self._by_key:
            raise DuplicateSchedule(self._by_key[key])
        if key:
            self._by_key[key] = schedule.id
        self._put(schedule)

    async def add_many(self, schedules: Sequence[Schedule]) -> list[str | None]:
        # Each through ``add``, in turn: nothing to save here by grouping them (and a test's store
        # that makes ``add`` fail makes these fail alike).
        existing: list[str | None] = []
        for schedule in schedules:
            try:
                await self.add(schedule)
                existing.append(None)
            except DuplicateSchedule as duplicate:
                existing.append(duplicate.existing_id)
        return existing

    async def get(self, schedule_id: str) -> Schedule | None:
        stored = self._items.get(schedule_id)
        return stored.copy() if stored else None

    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        schedule_id = self._by_key.get(key)
        return await self.get(schedule_id) if schedule_id else None

    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        found = ((key, self._by_key.get(key)) for key in dict.fromkeys(keys))
        return {key: self._items[schedule_id].copy() for key, schedule_id in found if schedule_id}

    async def get_by_provider_message_id(self, message_id: str) -> Schedule | None:
        schedule_id = self._by_message.get(message_id)
        return await self.get(schedule_id) if schedule_id else None

    async def list(
        self,
        *,
        status: ScheduleStatus | None = None,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
        user_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
        due_after: datetime | None = None,
        due_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        after: ListCursor | None = None,
    ) -> list[Schedule]:
        check_cursor(after, due_after, due_before)
        window = due_after is not None or due_before is not None
        if window and status is not None and status not in LIVE_STATUSES:
            return []  # a schedule in a final status has no due time
        candidates: Iterable[Schedule] = self._items.values()
        # Through the user and label indexes: the smallest set of ids, intersected with the others.
        sets = [self._by_label.get(pair, set()) for pair in (labels or {}).items()]
        if user_id is not None:
            sets.append(self._by_user.get(user_id, set()))
        if sets:
            sets.sort(key=len)
            candidates = [self._items[i] for i in sets[0].intersection(*sets[1:])]
        chosen = [s for s in candidates
                  if (status is None or s.status is status) and s.task_type not in exclude_types
                  and (task_types is None or s.task_type in task_types)
                  and (user_id is None or s.user_id == user_id)]
        if updated_after is not None or updated_before is not None:
            # Each bound rounded up to the millisecond as the other stores round it. Kept here as
            # the domain stamped it, a fraction of a millisecond included, ``updated_at`` then
            # compares as its millisecond, which the other stores keep, does: against a whole
            # millisecond, the fraction never decides.
            low = None if updated_after is None else bound_millis(updated_after)
            high = None if updated_before is None else bound_millis(updated_before)
            chosen = [s for s in chosen
                      if (low is None or s.updated_at >= low) and (high is None or s.updated_at < high)]
        if window:
            # By the millisecond the other stores keep (and a cursor holds), as ``created_at``
            # below: a due time kept here with a fraction (a retry's jittered instant, a recurring
            # run now's) would otherwise order ties otherwise than by id, and come after a cursor
            # made from itself (listed again, page after page). Each bound rounded up, as the
            # other stores round it: a fraction of a millisecond selects what the next one does.
            low = None if due_after is None else bound_millis(due_after)
            high = None if due_before is None else bound_millis(due_before)
            due_times = [(to_millis(s.next_run_at), s.id, s) for s in chosen
                         if s.status in LIVE_STATUSES and s.next_run_at is not None]
            timed = [entry for entry in due_times
                     if (low is None or entry[0] >= low) and (high is None or entry[0] < high)]
            if after is not None:
                position = (to_millis(after.at), after.id)
                timed = [entry for entry in timed if entry[:2] > position]
            timed.sort(key=lambda entry: entry[:2])  # soonest first, ties by id
            chosen = [s for _, _, s in timed]
        else:
            # By the millisecond the other stores keep (and a cursor holds): kept here as the
            # domain stamped it, a fraction of one would order ties otherwise than by id.
            keyed = [(to_millis(s.created_at), s.id, s) for s in chosen]
            if after is not None:
                position = (to_millis(after.at), after.id)
                keyed = [entry for entry in keyed if entry[:2] < position]
            keyed.sort(key=lambda entry: entry[:2], reverse=True)
            chosen = [s for _, _, s in keyed]
        return [s.copy() for s in chosen[offset : offset + limit]]

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
        if limit <= 0:
            return []
        items = self._items

        def wanted(task_type: str) -> bool:
            return (task_types is None or task_type in task_types) and task_type not in exclude_types

        # Running schedules whose lease lapsed (few: the runs of a replica that died). They
        # are taken out of the lease heap; those not claimed now go back.
        lapsed: list[tuple[datetime, str, _Entry]] = []
        others: list[_Entry] = []
        leases = self._leases
        while (top := self._top(leases)) is not None and top[0] < now:
            heappop(leases)
            self._entries -= 1
            stored = items[top[1]]
            if wanted(stored.task_type):
                lapsed.append((stored.next_run_at or now, top[1], top))
            else:
                others.append(top)
        lapsed.sort(reverse=True)  # the earliest last, to pop from the end

        # Scheduled ones: merge the heaps of the wanted types, earliest (next_run_at, id) first.
        heaps = [heap for task_type, heap in self._due.items() if wanted(task_type)]
        chosen: list[str] = []
        if len(heaps) == 1 and not lapsed:  # the common case, in a tight loop
            heap = heaps[0]
            while len(chosen) < limit and (entry := self._top(heap)) is not None and entry[0] <= now:
                heappop(heap)
                self._entries -= 1
                chosen.append(entry[1])
            heaps = []
        while len(chosen) < limit and (heaps or lapsed):
            best: list[_Entry] | None = None
            best_entry: _Entry | None = None
            for heap in heaps:
                entry = self._top(heap)
                if entry is not None and entry[0] <= now and (
                        best_entry is None or entry[:2] < best_entry[:2]):
                    best, best_entry = heap, entry
            if lapsed and (best_entry is None or lapsed[-1][:2] < best_entry[:2]):
                chosen.append(lapsed.pop()[1])
            elif best is not None and best_entry is not None:
                heappop(best)
                self._entries -= 1
                chosen.append(best_entry[1])
            else:
                break
        for entry in [*others, *(item[2] for item in lapsed)]:
            heappush(leases, entry)
            self._entries += 1

        claimed_at, until = to_millis(now), to_millis(now + lease_for)
        claimed: list[Schedule] = []
        for schedule_id, attempt_id in zip(chosen, attempt_ids(len(chosen)), strict=True):
            stored = items[schedule_id]
            stored.claim(owner=owner, attempt_id=attempt_id, now=claimed_at, until=until)
            self._index(stored)
            claimed.append(stored.copy())
        return claimed

    async def save(
        self,
        schedule: Schedule,
        *,
        expected_status: ScheduleStatus,
        attempt_id: str | None = None,
        expected_updated_at: datetime | None = None,
    ) -> bool:
        stored = self._items.get(schedule.id)
        if stored is None or stored.status is not expected_status:
            return False
        if attempt_id is not None and (stored.lease is None or stored.lease.attempt_id != attempt_id):
            return False
        if expected_updated_at is not None and to_millis(stored.updated_at) != to_millis(expected_updated_at):
            return False
        self._put(schedule)
        return True

    async def save_many(self, writes: Sequence[ConditionalSave]) -> list[bool]:
        check_one_each(writes)
        # One after the other through save (nothing to batch in memory), so that a store a test
        # derives from this one, changing save, changes these writes too.
        return [await self.save(write.schedule, expected_status=write.expected_status, attempt_id=write.attempt_id,
                                expected_updated_at=write.expected_updated_at) for write in writes]

    async def delete_finished(
        self, *, before: datetime, statuses: Collection[ScheduleStatus], limit: int,
        task_types: Collection[str] | None = None,
    ) -> int:
        wanted = set(check_finished(statuses))
        types = None if task_types is None else set(task_types)
        doomed = [s.id for s in self._items.values() if s.status in wanted and s.updated_at < before
                  and (types is None or s.task_type in types)][:max(limit, 0)]
        for schedule_id in doomed:
            gone = self._items.pop(schedule_id)
            self._index_labels(schedule_id, gone.labels, {})
            if gone.user_id is not None and (ids := self._by_user.get(gone.user_id)) is not None:
                ids.discard(schedule_id)
                if not ids:
                    del self._by_user[gone.user_id]
            if gone.idempotency_key:
                self._by_key.pop(gone.idempotency_key, None)
            message_id = gone.result.get("provider_message_id")
            if message_id and self._by_message.get(message_id) == schedule_id:
                del self._by_message[message_id]
        return len(doomed)

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        stored = self._items.get(schedule_id)
        if stored is None or stored.status is not ScheduleStatus.RUNNING:
            return False
        if stored.lease is None or stored.lease.attempt_id != attempt_id:
            return False
        stored.lease = replace(stored.lease, until=to_millis(until))
        self._index(stored)
        return True

    async def next_due_at(self) -> datetime | None:
        times = [entry[0] for heap in (*self._due.values(), self._leases)
                 if (entry := self._top(heap)) is not None]
        return min(times, default=None)
