"""The schedule store."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from cronjob.domain.schedule import LIVE_STATUSES, Schedule, ScheduleStatus


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time."""


class StoreRefused(Exception):
    """The store refused this service's credentials or permissions: a configuration error, which
    trying again does not mend (unlike :class:`StoreUnavailable`)."""


class DuplicateSchedule(Exception):
    """``add`` found a schedule with the same id or the same client idempotency key."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"a schedule with this id or idempotency key exists: {existing_id}")
        self.existing_id = existing_id


def check_finished(statuses: Collection[ScheduleStatus]) -> list[ScheduleStatus]:
    """``statuses`` as a list, refusing the live ones (``delete_finished`` never deletes live work)."""
    live = LIVE_STATUSES & set(statuses)
    if live:
        raise ValueError(f"live schedules are never deleted: {sorted(s.value for s in live)}")
    return list(statuses)


@dataclass(frozen=True, slots=True)
class ConditionalSave:
    """One write of :meth:`ScheduleRepository.save_many`: ``schedule``, and the conditions
    :meth:`ScheduleRepository.save` takes with it."""

    schedule: Schedule
    expected_status: ScheduleStatus
    attempt_id: str | None = None
    expected_updated_at: datetime | None = None


def check_one_each(writes: Sequence[ConditionalSave]) -> None:
    """Refuse (ValueError) ``writes`` that hold two of one schedule (``save_many`` takes one each)."""
    seen: set[str] = set()
    for write in writes:
        if write.schedule.id in seen:
            raise ValueError(f"schedule {write.schedule.id} is written twice in one save_many")
        seen.add(write.schedule.id)


#: The most idempotency keys a store is asked for in one query of
#: :meth:`ScheduleRepository.get_by_idempotency_keys`: under SQLite's smallest limit of bound
#: variables (999, before 3.32) and a small part of a MongoDB command's 16 MiB (keys are at most
#: 256 characters).
KEYS_PER_QUERY = 500

#: How long (seconds) a store may work on one :meth:`ScheduleRepository.count_by_status_and_type`:
#: the API reads the counts in the background, never while a request waits (see the web
#: adapter's ``CountsCache``), so a store that reads something of every schedule to count them
#: (MongoDB: an index) is given longer than a request's call, and stops by itself after it.
COUNTS_TIME_LIMIT_S = 60.0


def key_chunks(keys: Iterable[str]) -> list[list[str]]:
    """``keys`` without repeats and without empty ones (no schedule holds an empty key), in their
    order, in lists of at most :data:`KEYS_PER_QUERY`: the queries of one
    :meth:`ScheduleRepository.get_by_idempotency_keys` (none for no keys)."""
    distinct = [key for key in dict.fromkeys(keys) if key]
    return [distinct[start:start + KEYS_PER_QUERY] for start in range(0, len(distinct), KEYS_PER_QUERY)]


class ListOrder(Enum):
    """The two orders of :meth:`ScheduleRepository.list`."""

    #: Newest ``created_at`` first, ties by id (descending): without a due-time window.
    CREATED = "created"
    #: Soonest ``next_run_at`` first, ties by id (ascending): in a due-time window.
    DUE = "due"


def list_order(due_after: datetime | None, due_before: datetime | None) -> ListOrder:
    """The order of a list with these due-time window bounds (either given: a window)."""
    return ListOrder.CREATED if due_after is None and due_before is None else ListOrder.DUE


@dataclass(frozen=True, slots=True)
class ListCursor:
    """A position in one of :meth:`ScheduleRepository.list`'s orders, just after a listed
    schedule: its sort key ``at`` (``created_at`` in the ``CREATED`` order, ``next_run_at`` in
    the ``DUE`` order) and its ``id``. A list given it as ``after`` starts with the schedule
    that follows that one in the order, wherever that one is now (changed or deleted): a page
    is found through the store's index from there, not by reading the pages before it, and
    schedules added or changed before the position since do not shift it. ``at`` is compared as
    the stores keep times, a whole millisecond (a fraction is cut, as from a stored time)."""

    order: ListOrder
    at: datetime
    id: str

    @classmethod
    def of(cls, schedule: Schedule, order: ListOrder) -> ListCursor:
        """The position just after ``schedule`` (a schedule a list in ``order`` returned)."""
        at = schedule.created_at if order is ListOrder.CREATED else schedule.next_run_at
        if at is None:
            raise ValueError(f"schedule {schedule.id} has no due time: it is in no due-time window")
        return cls(order, at, schedule.id)


def check_cursor(after: ListCursor | None, due_after: datetime | None, due_before: datetime | None) -> None:
    """Refuse (ValueError) a cursor ``after`` of another order than the list's (see :func:`list_order`)."""
    if after is not None and after.order is not list_order(due_after, due_before):
        raise ValueError(f"a cursor in the {after.order.value!r} order cannot page a list in the "
                         f"{list_order(due_after, due_before).value!r} order")


class ScheduleRepository(ABC):
    """Durable storage of schedules, and the claims that make each due run happen exactly once.

    Contract (the tests in ``tests/contract`` hold every adapter to it):

    - Datetimes go in and come out aware, in UTC, to the millisecond (MongoDB's precision).
    - A schedule read back equals the one written (every field, the trigger by its expression,
      its labels included; one stored before labels existed reads back with none).
    - ``claim_due`` is atomic per schedule: however many replicas call it at once, each due
      schedule is returned to exactly one of them, with ``status`` ``running`` and a lease
      carrying the caller's ``owner``, a fresh ``attempt_id`` and ``until = now + lease_for``,
      and a new version: ``updated_at`` is ``claim_version`` of the one it replaces (``now``, or
      a millisecond after that one when it is ahead of ``now``), so that no version comes back.
      Due means ``scheduled`` with ``next_run_at <= now``, or ``running`` with a lease that
      lapsed (``lease.until < now``); oldest ``next_run_at`` first; at most ``limit``. Nothing
      else is ever due: a ``paused`` schedule keeps its ``next_run_at`` and is never claimed.
    - Every write of a run is fenced: ``save(..., attempt_id=a)`` and ``renew_lease(..., a)``
      change nothing and return False unless the stored lease still carries attempt ``a``.
    - Nothing is held in memory beyond what a call returns: a store with millions of schedules
      answers ``claim_due`` and ``next_due_at`` through its due-time index, and
      ``get_by_provider_message_id`` through an index of the latest provider message ids.
    """

    @abstractmethod
    async def initialize(self) -> None:
        """Create tables, collections and indexes. Idempotent; safe to call from every replica.
        Raises :class:`StoreUnavailable` when the store cannot be reached (the runtime retries it
        until it can); any other error is a configuration the runtime cannot fix by waiting."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections. The repository is not used afterwards."""

    @abstractmethod
    async def ping(self) -> None:
        """Return when the store answers; raise :class:`StoreUnavailable` when it does not."""

    async def store_time(self) -> datetime | None:
        """The store's own clock, now (aware, UTC), for a store on other hosts whose time can
        differ from this process's (MongoDB: its server's); None for one that keeps no clock of
        its own apart from this host's (memory, SQLite). Raise :class:`StoreUnavailable` when it
        does not answer."""
        return None

    @abstractmethod
    async def add(self, schedule: Schedule) -> None:
        """Store a new schedule durably before returning.

        Raise :class:`DuplicateSchedule` (with the existing schedule's id) when the id or the
        non-empty ``idempotency_key`` is already taken; nothing is written then, and nothing
        else is undone: adds made at the same time are stored (SQLite commits concurrent writes
        together, and a duplicate among them leaves the others committed).
        """

    @abstractmethod
    async def add_many(self, schedules: Sequence[Schedule]) -> list[str | None]:
        """Each of ``schedules`` as :meth:`add` stores it, in order, durably before returning:
        answer, in the order of ``schedules``, None for each stored, or for each whose id or
        non-empty ``idempotency_key`` was taken (by a stored schedule, or by one before it in
        ``schedules``), the id of the schedule that has it (what :class:`DuplicateSchedule`
        names), that one not written. A duplicate leaves the others to be written; an empty
        ``schedules`` writes nothing.

        A store writes them in as few round trips as it can (SQLite: one transaction, one sync
        of its log for the lot), which is what makes storing the status webhook deliveries of a
        page of changes cheap. An error (:class:`StoreUnavailable`) leaves each written or not,
        as an error of :meth:`add` does: adding the same schedules again answers those written
        as duplicates of themselves.
        """

    @abstractmethod
    async def get(self, schedule_id: str) -> Schedule | None:
        """The schedule with this id, or None."""

    @abstractmethod
    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        """The schedule created with this client idempotency key, or None."""

    @abstractmethod
    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        """The schedules created with these client idempotency keys, each under its key: for each
        key what :meth:`get_by_idempotency_key` answers, in as few round trips as the store can
        (a batch sent again looks up all its keys at once).

        A key that no schedule holds (an empty one included) is absent from the answer, not
        None. ``keys`` may come in any order and hold repeats: each key is answered once, and
        the answer's order means nothing. No keys answer ``{}`` without asking the store (not
        even whether it is reachable).

        Any number of keys: the store is asked for at most :data:`KEYS_PER_QUERY` of them per
        query (SQLite: one ``IN (...)``; MongoDB: one ``$in`` through the idempotency key's
        index), the adapter splitting them (:func:`key_chunks`), so that callers need not. The
        queries read the store as it is when each runs, as one call per key would: a schedule
        added meanwhile may be found or not. An error (:class:`StoreUnavailable`) answers
        nothing.
        """

    @abstractmethod
    async def get_by_provider_message_id(self, message_id: str) -> Schedule | None:
        """The schedule whose latest send returned this provider message id
        (``result['provider_message_id']``, e.g. a WhatsApp ``wamid``), or None.

        Served by an index. A later send of the same schedule replaces the id: the earlier one
        then finds nothing.
        """

    @abstractmethod
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
        """Schedules, newest ``created_at`` first (ties by id), optionally of one status, of the
        ``task_types`` given (None: any), of none of ``exclude_types``, of one ``user_id``
        (None: anyone's) and carrying every one of ``labels`` (each key with exactly that value,
        an empty value included; None or empty: any labels). The filters combine (AND). A store
        answers the user filter and the label filter through an index (a user's schedules, or
        those with a label, without reading everyone else's).

        A due-time window: with ``due_after`` and/or ``due_before`` (aware; None leaves that
        side open), only the schedules due in the half-open window ``due_after <= next_run_at <
        due_before``, soonest ``next_run_at`` first (ties by id) instead of newest first. Only
        live schedules (:data:`~cronjob.domain.schedule.LIVE_STATUSES`: ``scheduled``,
        ``running``, with the occurrence it runs, and ``paused``, with the time it keeps) have a
        due time: no other is ever in a window, whatever it stored, so a window with a
        ``status`` outside them lists none; nor is a live one without a ``next_run_at``. The
        bounds are instants (any offset), compared exactly with the stored times: those being
        whole milliseconds, a bound with a fraction of one acts as its next whole millisecond
        (``>= 12:00:00.0005`` selects what ``>= 12:00:00.001`` does, and ``<`` likewise). A
        store answers a window without a user or label filter through its due-time index,
        ``(status, next_run_at)``, reading no more of it than ``offset + limit`` per status
        where it can; with one, through that filter's index, as above.

        A last-change window: with ``updated_after`` and/or ``updated_before`` (aware; None
        leaves that side open), only the schedules whose ``updated_at`` is in the half-open
        window ``updated_after <= updated_at < updated_before`` (for one that ended: when it
        ended, or last got a delivery status), in any status. It combines (AND) with every other
        filter, a due-time window included, and leaves the order as it is (newest first, or
        soonest due first in a due-time window). The bounds are instants (any offset), compared
        exactly with the stored times, as a due-time window's are: a bound with a fraction of a
        millisecond acts as its next whole millisecond. No store keeps an index of
        ``updated_at`` (every claim and save moves it): the window narrows what the other
        filters read (a user or labels through their indexes, as above).

        Keyset paging: with ``after`` (a :class:`ListCursor`, usually of the last schedule of the
        previous page), only the schedules strictly after that position in the list's order
        (newest first: ``(created_at, id) < (at, id)``; in a due-time window: ``(next_run_at,
        id) > (at, id)``), the other filters as ever; ``offset`` then skips that many more. A
        cursor of the other order is a ValueError (:func:`check_cursor`). A store finds the
        position in the index that serves the order (``created_at`` and id after the type's,
        the user's or the label's, or ``(status, next_run_at)``), so a page costs the same
        wherever it is; a label filter in SQLite reads that label's schedules, as it does anyway.
        """

    async def count_by_status(self) -> dict[ScheduleStatus, int]:
        """How many schedules are in each status (statuses with none may be left out)."""
        counts: dict[ScheduleStatus, int] = {}
        for (status, _), count in (await self.count_by_status_and_type()).items():
            counts[status] = counts.get(status, 0) + count
        return counts

    @abstractmethod
    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        """How many schedules there are per (status, task type) (pairs with none may be left out).

        A store that reads something of every schedule to count takes longer the more it holds
        (MongoDB reads an index, no document): it stops within :data:`COUNTS_TIME_LIMIT_S`, as
        :class:`StoreUnavailable`."""

    @abstractmethod
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
        """Atomically claim up to ``limit`` due schedules for ``owner`` (see the class contract).

        Only schedules whose ``task_type`` is in ``task_types`` (when given) and not in
        ``exclude_types`` are considered; the rest stay in the store, in due order, for later
        (that is how per-type concurrency limits queue work). Each returned schedule has status
        ``running`` and ``lease`` set, exactly as stored.
        """

    @abstractmethod
    async def save(
        self,
        schedule: Schedule,
        *,
        expected_status: ScheduleStatus,
        attempt_id: str | None = None,
        expected_updated_at: datetime | None = None,
    ) -> bool:
        """Replace the stored schedule with ``schedule`` if the stored one still has
        ``expected_status`` and, when ``attempt_id`` is given, a lease with that attempt id, and,
        when ``expected_updated_at`` is given, that ``updated_at`` (to the millisecond): the
        optimistic check of writers that hold no lease (cancel, operator retry, status webhooks).

        Return True when written (durably), False when the condition did not hold (nothing
        written: another replica or user got there first). The id, idempotency key, task type and
        ``created_at`` are fixed when the schedule is added; a save does not change them.
        """

    @abstractmethod
    async def save_many(self, writes: Sequence[ConditionalSave]) -> list[bool]:
        """Each of ``writes`` as :meth:`save` writes it, each on its own conditions: one refused
        leaves the others to be written. Return, in the order of ``writes``, whether each was
        written (durably, as :meth:`save`); an empty ``writes`` writes nothing.

        One write per schedule: ``writes`` holding two of one id is a ValueError, nothing
        written (:func:`check_one_each`). A store writes them in as few round trips as it can
        (SQLite: one transaction, so one sync of its log for the lot), which is what makes a bulk
        change of thousands of schedules cheap. An error (:class:`StoreUnavailable`) leaves each
        written or not, as an error of :meth:`save` does.
        """

    @abstractmethod
    async def delete_finished(
        self, *, before: datetime, statuses: Collection[ScheduleStatus], limit: int,
        task_types: Collection[str] | None = None,
    ) -> int:
        """Delete up to ``limit`` schedules in one of ``statuses`` (never a live one, ``scheduled``,
        ``running`` or ``paused``: those are refused with ValueError) last updated before
        ``before`` and, with ``task_types``, of one of those types; return how many were deleted.

        One call is one bounded step (callers page through a large backlog with repeated calls
        of a modest ``limit``, so that no call holds SQLite's writer or a MongoDB operation for
        long). With ``task_types`` a store narrows through its task-type index first (the
        service's own jobs are then found without reading every user's finished schedule)."""

    @abstractmethod
    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        """Extend a running schedule's lease to ``until`` if it still carries ``attempt_id``."""

    @abstractmethod
    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of a ``scheduled`` schedule, or the earliest lease expiry
        of a ``running`` one, whichever is sooner; None when nothing is pending."""
