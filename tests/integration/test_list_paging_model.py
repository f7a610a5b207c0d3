"""A model-based test of listing by cursor while schedules are made, claimed, run and changed.

The system under test is the real :meth:`SchedulingService.page` over the in-memory store, the
SQLite store on a temp file and the MongoDB test server. A Hypothesis state machine interleaves
writes (schedules made many to a millisecond and a fraction of one apart, due at the same
instants; claims; runs that succeed, retry at a jittered instant or die; pauses, resumes,
cancels and runs now, each a conditional write as the service makes them) with walks through
the list, a page at a time, newest first or soonest due first, under every filter (status, task
types, a user, labels, a due-time and a last-change window, each bound at times within a
millisecond and in another offset).

After every page read it asserts that the page is exactly what the port's rules say it is for
what the store holds at that moment: the matching schedules after the cursor's position (its
key and id), in the order (newest ``created_at`` first, or soonest ``next_run_at``, both as the
stores keep them, to the millisecond; ties by id), ``limit`` of them, ``has_more`` true exactly
when more follow, and the cursor that of the last one. When a walk ends it asserts what the
README promises a client exporting the list meanwhile: every schedule that matched, with the
same sort key, at every page read of the walk is listed exactly once, in the list's order (newest
first the key never changes; soonest first a due time moves, and one that moved is listed where
it was when its page was read, as the README says).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule, run_state_machine_as_test

from cronjob.domain.errors import InvalidTransition
from cronjob.domain.labels import matches
from cronjob.domain.message import ErrorInfo
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import LIVE_STATUSES, Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger, fire_millisecond, whole_millisecond
from cronjob.ports.repository import ListCursor, ListOrder, list_order
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.clock import FixedClock
from tests.support.store_machine import StoreMachine

S = ScheduleStatus

T0 = datetime(2030, 1, 15, 12, 0, 0, 123_400, tzinfo=UTC)  # within a millisecond, as a real clock is
LEASE = timedelta(seconds=30)
OFFSETS = [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=45))]
TYPES = ["whatsapp.text", "email", "webhook.delivery"]
USERS = [None, "ana", "bruno"]
#: How far the clock moves in a step: not at all, within a millisecond, to the next one, ...
STEPS = [timedelta(0), timedelta(microseconds=1), timedelta(microseconds=400), timedelta(milliseconds=1),
         timedelta(milliseconds=3), timedelta(seconds=1)]

small_labels = st.dictionaries(st.sampled_from(["k", "z"]), st.sampled_from(["", "1"]), max_size=2)
#: What :meth:`ListPagingModel.make` is drawn from.
MAKE: dict[str, st.SearchStrategy[Any]] = {
    "count": st.integers(1, 4), "prefix": st.sampled_from(["a", "m", "z"]), "due_ms": st.integers(-3, 6),
    "recurring": st.booleans(), "user": st.sampled_from(USERS), "labels": small_labels,
    "task_type": st.sampled_from(TYPES)}


def mostly_none(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """None three times in four (a filter left out, so that most walks list something), else
    one of ``values``."""
    return st.sampled_from([False, False, False, True]).flatmap(lambda given: values if given else st.none())


@dataclass
class Walk:
    """A walk through one list: its filters, page size, the cursor of the next page and, per
    schedule seen matching at a page read, the sort keys it had at each read (None: it did not
    match at that read)."""

    filters: dict[str, Any]
    limit: int
    cursor: ListCursor | None = None
    listed: list[str] = field(default_factory=list)
    reads: int = 0
    keys: dict[str, list[Any]] = field(default_factory=dict)


class ListPagingModel(StoreMachine):
    """Writes and page reads interleaved over one store; every page checked against the store's contents."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(T0)
        [self.repository] = self.open_stores(1, "paging-model")
        self.service = SchedulingService(self.repository, self.clock, InProcessWorkSignal(self.clock),
                                         parse_trigger=default_trigger_parser())
        self.ids: list[str] = []
        self.walk: Walk | None = None
        self.made = 0

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # -- writes ------------------------------------------------------------------------------

    @initialize(data=st.data())
    def some_made(self, data: st.DataObject) -> None:
        """A few schedules to start with, several to a millisecond."""
        for _ in range(data.draw(st.integers(2, 5))):
            self.make(**{name: data.draw(strategy) for name, strategy in MAKE.items()})
            self.time_passes(data.draw(st.sampled_from(STEPS[:4])))

    @rule(step=st.sampled_from(STEPS))
    def time_passes(self, step: timedelta) -> None:
        self.clock.advance(step)

    @rule(**MAKE)
    def make(self, count: int, prefix: str, due_ms: int, recurring: bool, user: str | None,
             labels: dict[str, str], task_type: str) -> None:
        """``count`` schedules made at this instant (ties of ``created_at``), due at one instant
        (ties of ``next_run_at``), their ids out of the order they are made in."""
        for i in range(count):  # of several users, types and labels, so that filters split them
            self.made += 1
            user = USERS[(USERS.index(user) + i) % len(USERS)]
            task_type = TYPES[(TYPES.index(task_type) + i // 2) % len(TYPES)]
            labels = labels if i % 2 == 0 else {}
            schedule_id = f"{prefix}{(self.made * 7919) % 1000:03d}-{self.made}"
            at = fire_millisecond(self.now + timedelta(milliseconds=due_ms))
            trigger = IntervalTrigger(timedelta(seconds=1), at) if recurring else OnceTrigger(at)
            schedule = Schedule.create(id=schedule_id, task_type=task_type, payload={"to": "1", "body": "x"},
                                       trigger=trigger, timezone="UTC", first_run_at=at,
                                       now=self.now, user_id=user, labels=labels)
            self.run(self.repository.add(schedule))
            self.ids.append(schedule_id)

    @rule(limit=st.integers(1, 5))
    def claim(self, limit: int) -> None:
        self.run(self.repository.claim_due(now=self.now, owner="replica", lease_for=LEASE, limit=limit))

    @rule(pick=st.integers(0, 10_000), outcome=st.sampled_from(["succeed", "retry", "dead"]),
          retry_in=st.integers(0, 5_000))
    def run_ends(self, pick: int, outcome: str, retry_in: int) -> None:
        """A running schedule's run ends; a retry is due at a jittered instant (microseconds)."""
        running = [s for s in self._all() if s.status is S.RUNNING and s.lease is not None]
        if not running:
            return
        schedule = running[pick % len(running)]
        attempt_id = schedule.lease.attempt_id  # type: ignore[union-attr]
        if outcome == "succeed":
            schedule.succeed(attempt_id=attempt_id, now=self.now)
        else:
            retry_at = self.now + timedelta(microseconds=retry_in * 7) if outcome == "retry" else None
            schedule.fail(attempt_id=attempt_id, now=self.now, error=ErrorInfo("x", "failed", retryable=True),
                          decision=RetryDecision(retry_at, outcome))
        assert self.run(self.repository.save(schedule, expected_status=S.RUNNING, attempt_id=attempt_id))

    @rule(pick=st.integers(0, 10_000), change=st.sampled_from(["pause", "resume", "cancel", "run_now"]))
    def change(self, pick: int, change: str) -> None:
        """A user's change of one schedule, a conditional write on the version read."""
        if not self.ids:
            return
        schedule = self.run(self.repository.get(self.ids[pick % len(self.ids)]))
        assert schedule is not None
        status, version = schedule.status, schedule.updated_at
        try:
            if change == "cancel":
                if not schedule.cancellable:
                    return
                schedule.cancel(now=self.now)
            elif change == "run_now":
                if status is not S.SCHEDULED or schedule.due_to_run(self.now):
                    return
                schedule.run_now(now=self.now)
            else:
                getattr(schedule, change)(now=self.now)
        except InvalidTransition:
            return
        self.run(self.repository.save(schedule, expected_status=status, expected_updated_at=version))

    # -- reads -------------------------------------------------------------------------------

    @rule(data=st.data(), limit=st.integers(1, 3), due=st.booleans())
    def start_walk(self, data: st.DataObject, limit: int, due: bool) -> None:
        """Start a walk (ending the one under way, unchecked) with filters drawn here."""
        filters: dict[str, Any] = {
            "status": data.draw(mostly_none(st.sampled_from([S.SCHEDULED, S.RUNNING, S.PAUSED, S.SUCCEEDED, S.DEAD]))),
            "user_id": data.draw(mostly_none(st.sampled_from(USERS[1:]))),
            "labels": data.draw(mostly_none(small_labels)),
            "task_types": data.draw(mostly_none(st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True))),
        }
        if data.draw(st.booleans(), label="unfiltered"):
            filters = dict.fromkeys(filters)
        filters["exclude_types"] = [] if filters["task_types"] else ["webhook.delivery"]
        if due:
            after, before = self._window(data, "due")
            filters.update(due_after=after, due_before=before)
        if data.draw(st.integers(0, 3)) == 0:
            after, before = self._window(data, "updated")
            filters.update(updated_after=after, updated_before=before)
        self.walk = Walk(filters, limit)
        self.next_page()

    def _window(self, data: st.DataObject, name: str) -> tuple[datetime | None, datetime | None]:
        """Bounds near a schedule's time of that kind (some within a millisecond, in another
        offset), either side at times open."""
        everything = self._all()
        times = [t for s in everything if (t := s.next_run_at if name == "due" else s.updated_at) is not None]
        anchor = data.draw(st.sampled_from(times)) if times else self.now

        def bound(low: int, high: int) -> datetime:
            at = anchor + timedelta(milliseconds=data.draw(st.integers(low, high), label=f"{name} ms"),
                                      microseconds=data.draw(st.sampled_from([0, 0, 1, 500, 999])))
            return at.astimezone(data.draw(st.sampled_from(OFFSETS)))

        after = bound(-4, 1)
        before = after + timedelta(milliseconds=data.draw(st.integers(1, 12)))
        return data.draw(st.sampled_from([(after, before), (after, None), (None, before),
                                          (T0 - timedelta(days=1), None)]))

    @precondition(lambda self: self.walk is not None)
    @rule()
    def next_page(self) -> None:
        walk = self.walk
        assert walk is not None
        page = self.run(self.service.page(**walk.filters, limit=walk.limit, after=walk.cursor))
        order = list_order(walk.filters.get("due_after"), walk.filters.get("due_before"))
        everything = self._all()
        expected = self._expected(everything, walk.filters, order, walk.cursor)
        assert [s.id for s in page.items] == [s.id for s in expected[:walk.limit]], (walk.filters, walk.cursor)
        assert page.has_more == (len(expected) > walk.limit)
        if page.has_more:
            assert page.next_cursor == ListCursor.of(page.items[-1], order)
        else:
            assert page.next_cursor is None

        # What matched at this read, with its sort key then (None: it did not match).
        matching = {s.id: _key(s, order) for s in self._expected(everything, walk.filters, order, None)}
        for schedule_id in set(walk.keys) | set(matching):
            walk.keys.setdefault(schedule_id, [None] * walk.reads).append(matching.get(schedule_id))
        walk.reads += 1
        walk.listed += [s.id for s in page.items]
        walk.cursor = page.next_cursor
        if not page.has_more:
            self._walk_ends(walk, order)
            self.walk = None

    def _walk_ends(self, walk: Walk, order: ListOrder) -> None:
        """The export's promise: each schedule that matched with one sort key at every read is
        listed once, and those are listed in the order."""
        steady = {i for i, keys in walk.keys.items() if keys[0] is not None and len(set(keys)) == 1}
        listed = [i for i in walk.listed if i in steady]
        assert sorted(listed) == sorted(steady), (steady - set(listed), walk.filters)
        keys = [walk.keys[i][0] for i in listed]
        expected = sorted(keys, reverse=order is ListOrder.CREATED)
        assert keys == expected, walk.filters

    # -- the rules of the port, written out --------------------------------------------------

    def _all(self) -> list[Schedule]:
        found = [self.run(self.repository.get(i)) for i in self.ids]
        return [s for s in found if s is not None]

    @staticmethod
    def _expected(everything: list[Schedule], filters: dict[str, Any], order: ListOrder,
                  cursor: ListCursor | None) -> list[Schedule]:
        def within(value: datetime | None, after: datetime | None, before: datetime | None) -> bool:
            if value is None:
                return False
            at = whole_millisecond(value)
            return ((after is None or at >= fire_millisecond(after.astimezone(UTC)))
                    and (before is None or at < fire_millisecond(before.astimezone(UTC))))

        window = order is ListOrder.DUE
        chosen = [
            s for s in everything
            if (filters["status"] is None or s.status is filters["status"])
            and (filters["user_id"] is None or s.user_id == filters["user_id"])
            and matches(s.labels, filters["labels"] or {})
            and (filters["task_types"] is None or s.task_type in filters["task_types"])
            and s.task_type not in filters["exclude_types"]
            and (("updated_after" not in filters)
                 or within(s.updated_at, filters["updated_after"], filters["updated_before"]))
            and (not window or (s.status in LIVE_STATUSES
                                and within(s.next_run_at, filters["due_after"], filters["due_before"])))
        ]
        keyed = sorted(((_key(s, order), s) for s in chosen), key=lambda pair: pair[0],
                       reverse=order is ListOrder.CREATED)
        if cursor is not None:
            position = (whole_millisecond(cursor.at), cursor.id)
            keyed = [(key, s) for key, s in keyed
                     if (key < position if order is ListOrder.CREATED else key > position)]
        return [s for _, s in keyed]

    def teardown(self) -> None:
        self.end()


def _key(schedule: Schedule, order: ListOrder) -> tuple[datetime, str]:
    """The sort key of ``schedule`` in ``order``, as the stores keep it (to the millisecond)."""
    at = schedule.created_at if order is ListOrder.CREATED else schedule.next_run_at
    assert at is not None
    return whole_millisecond(at.astimezone(UTC)), schedule.id


class SqliteListPagingModel(ListPagingModel):
    store_kind = "sqlite"


class MongoListPagingModel(ListPagingModel):
    store_kind = "mongodb"


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, stateful_step_count=40, deadline=None, derandomize=True, database=None)


TestMemoryListPaging = ListPagingModel.TestCase
TestMemoryListPaging.settings = _settings(200)
TestSqliteListPaging = SqliteListPagingModel.TestCase
TestSqliteListPaging.settings = _settings(60)


def test_mongodb_list_paging(mongodb_uri: str) -> None:
    """The same machine over MongoDB (the test server: fewer walks, its writes cost milliseconds)."""
    MongoListPagingModel.mongodb_uri = mongodb_uri
    run_state_machine_as_test(MongoListPagingModel, settings=_settings(25))
