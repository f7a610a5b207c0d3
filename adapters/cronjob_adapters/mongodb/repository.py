"""ScheduleRepository on MongoDB: one document per schedule, claims by guarded updates through indexes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from functools import partial
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pymongo
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from dns.exception import DNSException
from pymongo.errors import BulkWriteError, ConfigurationError, ConnectionFailure, DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from cronjob.domain.labels import label_pairs
from cronjob.domain.schedule import LIVE_STATUSES, Lease, Schedule, ScheduleStatus, claim_version
from cronjob.ports.repository import (
    COUNTS_TIME_LIMIT_S,
    ConditionalSave,
    DuplicateSchedule,
    ListCursor,
    ScheduleRepository,
    StoreRefused,
    StoreUnavailable,
    check_cursor,
    check_finished,
    check_one_each,
    key_chunks,
)
from cronjob.services.few_at_a_time import few_at_a_time

from cronjob_adapters.codec import (
    OPTIONAL_KEYS,
    RENAMED_STATUSES,
    ScheduleCodec,
    bound_millis,
    lease_document,
    status_counts,
    to_millis,
)
from cronjob_adapters.ids import attempt_ids

Document = dict[str, Any]

#: The field that holds a schedule's labels as ``key=value`` texts (left out when it has none),
#: beside the codec's ``labels`` object, for the multikey index that answers label filters.
LABEL_PAIRS = "label_pairs"

#: The keys of a stored schedule that are left out when it has no value for them: the codec's,
#: and the label pairs. A save removes those its document leaves out (``$unset``).
OPTIONAL_FIELDS: tuple[str, ...] = tuple(sorted(OPTIONAL_KEYS | {LABEL_PAIRS}))

#: Every write accepts work, claims it or records a result: it must survive a crash of the
#: server (``j``) and a fail-over of a replica set (``majority``).
DURABLE = WriteConcern(w="majority", j=True)

#: How long one call of the store may take in all (server selection, the driver's retry, the
#: wait for a majority), unless the URI sets ``timeoutMS``: PyMongo's own default is no limit,
#: and a server that stops answering (a partition, a frozen primary) held a call ~35 s, until the
#: driver's heartbeat gave the server up. Past it the call is :class:`StoreUnavailable`.
OPERATION_TIMEOUT_S = 10.0

#: MongoDB's error code of a write that a unique index refused.
_DUPLICATE_KEY = 11000

#: The conditional updates of one ``save_many`` in flight at once.
_SAVES_AT_ONCE = 16

#: The index the counts are read from, alone (see ``count_by_status_and_type``): its first keys
#: are the two the counts group by. It also lists a status of one type newest first (the
#: dashboard's counts are filters: a type's row, then a status).
COUNTS_INDEX = "status_task_type_created_at_id"

INDEXES = [
    # Claims, and GET /v1/schedules in a due-time window: a range of next_run_at per status. (Not
    # ``_id`` after it, though that would give the (next_run_at, _id) order whole: SecantusDB
    # 0.7.0b3, the test server, then misses the documents at the bound of a $lte, a claim's.)
    IndexModel([("status", ASCENDING), ("next_run_at", ASCENDING)], name="status_next_run_at"),
    IndexModel([("status", ASCENDING), ("lease.until", ASCENDING)], name="status_lease_until"),
    IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at_id"),
    # GET /v1/schedules?status=dead (the dashboard's dead letters, :retry's listing): without it a
    # rare status among millions of finished schedules is found by reading the created_at order.
    IndexModel([("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
               name="status_created_at_id"),
    IndexModel([("task_type", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
               name="task_type_created_at_id"),
    IndexModel([("status", ASCENDING), ("task_type", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
               name=COUNTS_INDEX),
    IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
               name="user_id_created_at_id"),
    # A user's schedules in one status: GET /v1/schedules?userId=...&status=..., and :cancel,
    # :pause and :resume by userId, which list each status they change. Without it, through the
    # user's index, all of that user's history is read for the few in that status.
    IndexModel([("user_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
               name="user_id_status_created_at_id"),
    # GET /v1/schedules?label=k=v: a multikey index over the "key=value" texts, read with $all.
    IndexModel([(LABEL_PAIRS, ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
               name="label_pairs_created_at_id"),
    IndexModel([("idempotency_key", ASCENDING)], name="idempotency_key_unique", unique=True,
               partialFilterExpression={"idempotency_key": {"$type": "string"}}),
    IndexModel([("result.provider_message_id", ASCENDING)], name="result_provider_message_id",
               partialFilterExpression={"result.provider_message_id": {"$type": "string"}}),
]

_SCHEDULED = ScheduleStatus.SCHEDULED.value
_RUNNING = ScheduleStatus.RUNNING.value


#: Server error codes that say "not now" rather than "not so": an election or a shutdown under
#: way, a majority out of reach in time, a time limit hit (MongoDB's retryable codes, plus
#: MaxTimeMSExpired and WriteConcernFailed). A write concern error carries them too: the write
#: was applied where it ran but not confirmed by a majority.
TRANSIENT_CODES = frozenset({
    6,      # HostUnreachable
    7,      # HostNotFound
    50,     # MaxTimeMSExpired
    64,     # WriteConcernFailed (a wtimeout)
    89,     # NetworkTimeout
    91,     # ShutdownInProgress
    134,    # ReadConcernMajorityNotAvailableYet
    189,    # PrimarySteppedDown
    262,    # ExceededTimeLimit
    9001,   # SocketException
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
#: The server's codes for a user it does not know or lets not do the call: the URI's user,
#: password or roles are wrong.
REFUSED_CODES = frozenset({
    13,     # Unauthorized
    18,     # AuthenticationFailed
})


def unavailable(exc: PyMongoError) -> bool:
    """Whether ``exc`` says the store cannot serve the call now (an unreachable server, a
    fail-over, a time limit) rather than that the call is wrong: the driver's own retry of a
    retryable error failed too (its label or code stays on the error, a ``WriteConcernError`` or
    an ``OperationFailure`` as often as a ``ConnectionFailure``). A ``mongodb+srv://`` name
    that DNS does not resolve (the driver's ``ConfigurationError`` from the lookup) is one too,
    as a host name in a ``mongodb://`` URI that does not resolve is: waited for, its error in
    the warnings, rather than a traceback at start-up (DNS may not answer yet)."""
    if isinstance(exc, ConnectionFailure) or exc.timeout:
        return True
    if isinstance(exc, ConfigurationError) and isinstance(exc.__cause__, DNSException):
        return True
    if exc.has_error_label("RetryableWriteError") or exc.has_error_label("TransientTransactionError"):
        return True
    return getattr(exc, "code", None) in TRANSIENT_CODES


@asynccontextmanager
async def _reachable(timeout: float | None = None) -> AsyncIterator[None]:
    """Within ``timeout`` seconds for everything the block does (None: no limit of ours), turn
    the driver's errors that mean "the store cannot serve now" (see :func:`unavailable`; a
    timeout is one) into the port's :class:`StoreUnavailable`, which the API answers with 503 and
    ``Retry-After`` and the scheduler backs off from, and a refusal of the credentials or roles
    (:data:`REFUSED_CODES`) into :class:`StoreRefused`; any other error is left as it is."""
    deadline: AbstractContextManager[None] = nullcontext() if timeout is None else pymongo.timeout(timeout)
    try:
        with deadline:
            yield
    except PyMongoError as exc:
        if (code := getattr(exc, "code", None)) in REFUSED_CODES:
            details = getattr(exc, "details", None) or {}
            raise StoreRefused(f"{details.get('errmsg', 'refused')} ({details.get('codeName', code)})") from exc
        if not unavailable(exc):
            raise
        raise StoreUnavailable(str(exc)) from exc


def _uri_option_names(uri: str) -> set[str]:
    """The names of the options in a MongoDB URI's query, lower-cased (the driver reads them so)."""
    _, _, query = uri.partition("?")
    return {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}


def _key_filter(key: str) -> Document:
    """Match ``idempotency_key`` so that the partial unique index serves the query."""
    return {"idempotency_key": {"$eq": key, "$type": "string"}}


def _lapsed(now: datetime) -> Document:
    """``lease.until < now`` on millisecond dates, exact even when ``now`` has microseconds."""
    floor = to_millis(now)
    return {"$lte": floor} if floor != now else {"$lt": floor}


def _window(after: datetime | None, before: datetime | None) -> Document:
    """The condition on a date of the half-open window ``after <= date < before`` (None: open on
    that side; a missing or null date, of another BSON type than a date's, matches no comparison
    with one), each bound rounded up to the millisecond the stored dates hold: exact (see
    ``codec.bound_millis``). For ``next_run_at`` (a due-time window) and ``updated_at``."""
    condition: Document = {}
    if after is not None:
        condition["$gte"] = bound_millis(after)
    if before is not None:
        condition["$lt"] = bound_millis(before)
    return condition


def _after_position(query: Document, field: str, after: ListCursor, *, descending: bool) -> None:
    """Narrow ``query`` to the documents strictly after the cursor ``after`` in the order
    ``(field, _id)``, descending or ascending: an ``$or`` of a later key, or the same key and a
    later ``_id``. The key's own bound (``$lte``/``$gte`` the cursor's, kept with the window's
    where it is tighter) is what the planner turns into a range of the index; the ``$or`` only
    refines it. The cursor's instant is cut to the millisecond, as the stored one was."""
    at = to_millis(after.at)
    strictly, bound = ("$lt", "$lte") if descending else ("$gt", "$gte")
    condition: Document = query.setdefault(field, {})
    known = condition.get(bound)
    condition[bound] = at if known is None else (min if descending else max)(known, at)
    query["$or"] = [{field: {strictly: at}}, {field: at, "_id": {strictly: after.id}}]


def _type_condition(task_types: Collection[str] | None, exclude_types: Collection[str]) -> Document:
    """The filter on ``task_type`` that keeps only the wanted types (empty: any type)."""
    condition: Document = {}
    if task_types is not None:
        condition["$in"] = list(task_types)
    if exclude_types:
        condition["$nin"] = list(exclude_types)
    return {"task_type": condition} if condition else {}


def _claim(
    candidate: Document, *, now: datetime, until: datetime, owner: str, attempt_id: str
) -> UpdateOne:
    """The guarded update that claims ``candidate`` if it is still as read, its version included
    (``now`` and ``until`` to the millisecond).

    It changes what :meth:`Schedule.claim` changes, encoded as the codec encodes them: its
    ``updated_at`` becomes the :func:`claim_version` of the version read, which the guard holds.
    """
    version: datetime = candidate["updated_at"]  # aware: the client is tz_aware
    guard: Document = {"_id": candidate["_id"], "updated_at": version}
    if candidate["status"] == _SCHEDULED:
        guard.update({"status": _SCHEDULED, "next_run_at": {"$lte": now}})
    else:
        guard.update({"status": _RUNNING, "lease.until": _lapsed(now),
                      "lease.attempt_id": (candidate.get("lease") or {}).get("attempt_id")})
    previous = (candidate.get("lease") or {}).get("owner") if candidate["status"] == _RUNNING else None
    lease = Lease(owner=owner, attempt_id=attempt_id, claimed_at=now, until=until, taken_over_from=previous)
    change = {"$set": {"status": _RUNNING, "lease": lease_document(lease),
                       "updated_at": claim_version(version, now)}}
    return UpdateOne(guard, change)


class MongoScheduleRepository(ScheduleRepository):
    """Schedules in one collection, documents made by :class:`ScheduleCodec`.

    A claim reads the due ids through the ``(status, next_run_at)`` and ``(status, lease.until)``
    indexes, then sends one unordered bulk of updates, each guarded by ``_id`` and the state that
    was read (still ``scheduled`` and due, or still the same lapsed lease) and setting its own
    fresh ``attempt_id``; a last read by those attempt ids returns what this caller won. Two
    claimers racing for a schedule cannot both match the guard, so at most one wins it.
    "Now" always comes from the caller, never from the server (``$$NOW``). ``list`` in a
    due-time window reads the first index too: a range of ``next_run_at`` in each live status
    (the server sorts what it reads by ``(next_run_at, _id)``, keeping ``skip + limit``).
    A cursor (``after``) starts that range, or the range of ``created_at`` in the index that
    serves the list newest first (``created_at`` and ``_id``, alone or after the type, the user
    or the label pairs), at its position.
    """

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        codec: ScheduleCodec,
        *,
        collection: str = "schedules",
        owns_client: bool = False,
        operation_timeout: float | None = OPERATION_TIMEOUT_S,
    ) -> None:
        if not client.codec_options.tz_aware:
            raise ValueError("the client must be created with tz_aware=True (dates are compared aware)")
        self._client = client
        self._database = database
        self._codec = codec
        self._owns_client = owns_client
        self._timeout = operation_timeout
        self._schedules: AsyncCollection[Document] = client[database].get_collection(
            collection, write_concern=DURABLE
        )

    @property
    def collection(self) -> AsyncCollection[Document]:
        """The schedules collection (for change streams)."""
        return self._schedules

    @classmethod
    def from_uri(
        cls, uri: str, database: str, codec: ScheduleCodec, *, server_selection_timeout_ms: int = 5000,
        operation_timeout: float | None = OPERATION_TIMEOUT_S,
    ) -> MongoScheduleRepository:
        """A repository with its own client (closed by :meth:`close`); dates come back aware UTC.

        ``server_selection_timeout_ms`` and ``operation_timeout`` (seconds, None: none) are
        defaults: the URI's ``serverSelectionTimeoutMS`` wins over the first, its ``timeoutMS``
        (MongoDB's limit of every operation, 0 for none) replaces the second."""
        options = _uri_option_names(uri)
        settings: Document = {}
        if "serverselectiontimeoutms" not in options:
            settings["serverSelectionTimeoutMS"] = server_selection_timeout_ms
        if "timeoutms" in options:
            operation_timeout = None  # the client applies the URI's to every operation
        client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True, tzinfo=UTC, **settings)
        return cls(client, database, codec, owns_client=True, operation_timeout=operation_timeout)

    def _call(self) -> AbstractAsyncContextManager[None]:
        """One call of the store: within the operation timeout, an outage :class:`StoreUnavailable`."""
        return _reachable(self._timeout)

    def _document(self, schedule: Schedule) -> Document:
        """The stored form of ``schedule``: the codec's document, and its labels' ``key=value`` texts."""
        doc = self._codec.to_document(schedule)
        if schedule.labels:
            doc[LABEL_PAIRS] = label_pairs(schedule.labels)
        return doc

    def _update(self, schedule: Schedule) -> Document:
        """The update that makes a stored document ``schedule``'s, key by key: ``$set`` of every
        key of :meth:`_document` (``_id`` aside, which never changes), ``$unset`` of the
        :data:`OPTIONAL_FIELDS` it leaves out. Unlike a whole-document replace, it keeps the keys
        this version does not know, which a later version writes (a rolling update, a roll-back)."""
        doc = self._document(schedule)
        del doc["_id"]
        update: Document = {"$set": doc}
        if absent := [key for key in OPTIONAL_FIELDS if key not in doc]:
            update["$unset"] = dict.fromkeys(absent, "")
        return update

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self) -> None:
        # No limit of ours: an index built over a large collection takes what it takes (the
        # runtime gives up on an attempt that hangs, and tries again).
        async with _reachable():
            await self._schedules.create_indexes(INDEXES)
            # Statuses earlier versions named otherwise, by their name now (a lookup of the
            # status index), so that a list by status and the counts find them.
            for old, new in RENAMED_STATUSES.items():
                await self._schedules.update_many({"status": old}, {"$set": {"status": new.value}})

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def ping(self) -> None:
        async with self._call():
            await self._client.admin.command("ping")

    async def store_time(self) -> datetime:
        # The server's clock as its handshake reports it (a millisecond's precision).
        async with self._call():
            answer = await self._client.admin.command("hello")
        local_time: datetime = answer["localTime"]  # a command's answer is decoded naive: UTC
        return local_time if local_time.tzinfo else local_time.replace(tzinfo=UTC)

    async def drop_database(self) -> None:
        """Drop the whole database (tests clean up with it)."""
        async with self._call():
            await self._client.drop_database(self._database)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, schedule_id: str) -> Schedule | None:
        async with self._call():
            doc = await self._schedules.find_one({"_id": schedule_id})
        return self._codec.from_document(doc) if doc else None

    async def get_by_idempotency_key(self, key: str) -> Schedule | None:
        async with self._call():
            doc = await self._schedules.find_one(_key_filter(key))
        return self._codec.from_document(doc) if doc else None

    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        found: dict[str, Schedule] = {}
        for chunk in key_chunks(keys):
            # ``$type`` as in _key_filter: the partial unique index serves the ``$in``. One batch
            # of answers for the chunk, not the driver's first 101 documents and a getMore.
            query = {"idempotency_key": {"$in": chunk, "$type": "string"}}
            async with self._call():
                docs = await self._schedules.find(query, batch_size=len(chunk)).to_list()
            for doc in docs:
                found[doc["idempotency_key"]] = self._codec.from_document(doc)
        return found

    async def get_by_provider_message_id(self, message_id: str) -> Schedule | None:
        # The ``$type`` condition matches the partial index's filter, so the index serves the query.
        query = {"result.provider_message_id": {"$eq": message_id, "$type": "string"}}
        async with self._call():
            doc = await self._schedules.find_one(query, sort=[("created_at", DESCENDING)])
        return self._codec.from_document(doc) if doc else None

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
        if limit <= 0:
            return []
        query: Document = _type_condition(task_types, exclude_types)
        if status is not None:
            query["status"] = status.value
        if user_id is not None:
            query["user_id"] = user_id
        if labels:
            query[LABEL_PAIRS] = {"$all": label_pairs(labels)}
        if updated_after is not None or updated_before is not None:
            query["updated_at"] = _window(updated_after, updated_before)
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        if due_after is not None or due_before is not None:
            if status is not None and status not in LIVE_STATUSES:
                return []  # a schedule in a final status has no due time
            if status is None:
                query["status"] = {"$in": sorted(s.value for s in LIVE_STATUSES)}
            query["next_run_at"] = _window(due_after, due_before)
            order = [("next_run_at", ASCENDING), ("_id", ASCENDING)]
            if after is not None:
                _after_position(query, "next_run_at", after, descending=False)
        elif after is not None:
            _after_position(query, "created_at", after, descending=True)
        async with self._call():
            docs = await self._schedules.find(query).sort(order).skip(offset).limit(limit).to_list()
        return [self._codec.from_document(doc) for doc in docs]

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        # Read from the index alone (a covered plan), never a document: a group on the index's
        # first keys, in its order, with no filter, hinted. Without the hint a group with no
        # filter reads every document, a few KB each (MongoDB's planner considers no index for
        # it); with a filter, its whole-index scan would fetch each document to check it. Still
        # one key per schedule: COUNTS_TIME_LIMIT_S, not the calls' limit, bounds it (maxTimeMS).
        pipeline: list[Document] = [
            {"$sort": {"status": ASCENDING, "task_type": ASCENDING}},
            {"$group": {"_id": {"status": "$status", "task_type": "$task_type"}, "n": {"$sum": 1}}}]
        async with _reachable(COUNTS_TIME_LIMIT_S):
            cursor = await self._schedules.aggregate(pipeline, hint=COUNTS_INDEX)
            rows = await cursor.to_list()
        return status_counts((row["_id"]["status"], row["_id"]["task_type"], row["n"]) for row in rows)

    async def next_due_at(self) -> datetime | None:
        async with self._call():
            scheduled, running = await asyncio.gather(
                self._first({"status": _SCHEDULED, "next_run_at": {"$ne": None}}, "next_run_at"),
                self._first({"status": _RUNNING, "lease.until": {"$ne": None}}, "lease.until"))
        times = [t for t in (scheduled, running) if t is not None]
        return min(times, default=None)

    async def _first(self, query: Document, field: str) -> datetime | None:
        """The smallest ``field`` (a dotted path to a date) among ``query``'s matches."""
        doc = await self._schedules.find_one(query, {field: 1, "_id": 0}, sort=[(field, ASCENDING)])
        if doc is None:
            return None
        value: Any = doc
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value.astimezone(UTC) if isinstance(value, datetime) else None

    # -- writes ------------------------------------------------------------------------------

    async def add(self, schedule: Schedule) -> None:
        async with self._call():
            try:
                await self._schedules.insert_one(self._document(schedule))
            except DuplicateKeyError as exc:
                raise DuplicateSchedule(await self._existing_id(schedule)) from exc

    async def add_many(self, schedules: Sequence[Schedule]) -> list[str | None]:
        if not schedules:
            return []
        existing: list[str | None] = [None] * len(schedules)
        async with self._call():
            try:  # unordered: a duplicate leaves the others to be inserted, in one round trip
                await self._schedules.insert_many([self._document(s) for s in schedules], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if exc.details.get("writeConcernErrors"):  # written, but not known durable
                    raise StoreUnavailable(f"write concern not met: {exc.details['writeConcernErrors']}") from exc
                if not errors or any(error.get("code") != _DUPLICATE_KEY for error in errors):
                    raise
                for error in errors:
                    index = error["index"]
                    existing[index] = await self._existing_id(schedules[index])
        return existing

    async def _existing_id(self, schedule: Schedule) -> str:
        """The id of the schedule that ``schedule`` collided with (by id, else by key)."""
        if await self._schedules.find_one({"_id": schedule.id}, {"_id": 1}) is not None:
            return schedule.id
        if schedule.idempotency_key:
            doc = await self._schedules.find_one(_key_filter(schedule.idempotency_key), {"_id": 1})
            if doc is not None:
                return str(doc["_id"])
        return schedule.id

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
        async with self._call():
            candidates = await self._due(now, limit, _type_condition(task_types, exclude_types))
            if not candidates:
                return []
            claimed_at, until = to_millis(now), to_millis(now + lease_for)
            attempts = attempt_ids(len(candidates))
            claims = [_claim(doc, now=claimed_at, until=until, owner=owner, attempt_id=attempt_id)
                      for doc, attempt_id in zip(candidates, attempts, strict=True)]
            result = await self._schedules.bulk_write(claims, ordered=False)
            if result.modified_count == 0:
                return []
            won = {"_id": {"$in": [doc["_id"] for doc in candidates]}, "lease.attempt_id": {"$in": attempts}}
            # A claim that came back late (a server that was down) may carry leases that lapsed
            # meanwhile: the dispatcher renews such a lease, fenced, before running (any store).
            docs = await self._schedules.find(won).to_list()
        order = {doc["_id"]: index for index, doc in enumerate(candidates)}
        docs.sort(key=lambda doc: order[doc["_id"]])
        return [self._codec.from_document(doc) for doc in docs]

    async def _due(self, now: datetime, limit: int, type_filter: Document) -> list[Document]:
        """Up to ``limit`` due candidates (id, status, lease attempt), oldest ``next_run_at`` first.

        Two queries, each a range over its own index, rather than one ``$or``: SecantusDB (the
        test server) scans the whole collection for an ``$or``, and a real server sorts either.
        The scheduled ones are read in the order of ``(status, next_run_at)`` itself, so that the
        server stops after ``limit`` of them: sorted by ``_id`` too, which that index does not
        hold, it would fetch and sort every due schedule at every claim (a burst of 100,000 due
        at once read whole for each batch claimed). Ties are taken in the index's order.
        """
        projection = {"_id": 1, "status": 1, "next_run_at": 1, "updated_at": 1, "lease.attempt_id": 1,
                      "lease.owner": 1}
        scheduled = self._schedules.find({"status": _SCHEDULED, "next_run_at": {"$lte": now}, **type_filter},
                                         projection).sort("next_run_at", ASCENDING)
        # Lapsed leases are few (the runs of a replica that stopped): sorted as they are found.
        lapsed = self._schedules.find({"status": _RUNNING, "lease.until": _lapsed(now), **type_filter},
                                      projection).sort([("next_run_at", ASCENDING), ("_id", ASCENDING)])
        found = await asyncio.gather(*(cursor.limit(limit).to_list() for cursor in (scheduled, lapsed)))
        candidates = [doc for docs in found for doc in docs]
        candidates.sort(key=lambda doc: (doc.get("next_run_at") or now, doc["_id"]))
        return candidates[:limit]

    async def save(
        self,
        schedule: Schedule,
        *,
        expected_status: ScheduleStatus,
        attempt_id: str | None = None,
        expected_updated_at: datetime | None = None,
    ) -> bool:
        guard: Document = {"_id": schedule.id, "status": expected_status.value}
        if attempt_id is not None:
            guard["lease.attempt_id"] = attempt_id
        if expected_updated_at is not None:
            guard["updated_at"] = to_millis(expected_updated_at)
        async with self._call():
            result = await self._schedules.update_one(guard, self._update(schedule))
        return result.matched_count == 1

    async def save_many(self, writes: Sequence[ConditionalSave]) -> list[bool]:
        check_one_each(writes)
        # One conditional update each, their round trips overlapping: a bulk write answers how
        # many matched, not which, and a write refused must be known as refused.
        return await few_at_a_time([partial(self.save, write.schedule, expected_status=write.expected_status,
                                            attempt_id=write.attempt_id,
                                            expected_updated_at=write.expected_updated_at) for write in writes],
                                   _SAVES_AT_ONCE)

    async def delete_finished(
        self, *, before: datetime, statuses: Collection[ScheduleStatus], limit: int,
        task_types: Collection[str] | None = None,
    ) -> int:
        wanted = [s.value for s in check_finished(statuses)]
        if not wanted or limit <= 0 or (task_types is not None and not task_types):
            return 0
        # created_at <= updated_at: its bound lets the planner take (status, created_at) or, with
        # task types, (task_type, created_at) rather than read every finished schedule.
        cutoff = to_millis(before)
        query: Document = {"status": {"$in": wanted}, "created_at": {"$lt": cutoff}, "updated_at": {"$lt": cutoff}}
        if task_types is not None:
            query["task_type"] = {"$in": list(task_types)}
        async with self._call():
            ids = [doc["_id"] for doc in await self._schedules.find(query, {"_id": 1}).limit(limit).to_list()]
            if not ids:
                return 0
            result = await self._schedules.delete_many({"_id": {"$in": ids}, **query})
        return result.deleted_count

    async def renew_lease(self, schedule_id: str, attempt_id: str, until: datetime) -> bool:
        guard = {"_id": schedule_id, "status": _RUNNING, "lease.attempt_id": attempt_id}
        async with self._call():
            result = await self._schedules.update_one(guard, {"$set": {"lease.until": to_millis(until)}})
        return result.matched_count == 1
