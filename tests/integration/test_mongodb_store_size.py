"""MongoDB with millions of schedules: what a store's size must not slow down.

No ``mongod`` runs here, and SecantusDB (the test server) plans queries its own way: its
``explain`` names the index it scans but reports a FETCH above every index scan, covered or not,
and its choice among indexes is not MongoDB's. So these tests read the commands the adapter
actually sends (PyMongo's command monitoring) and check them against the indexes it creates, by
the rules MongoDB plans with: a hinted aggregation whose pipeline needs only the index's keys and
has no filter is read from that index alone (a covered plan: ``jstests/aggregation/
use_query_projection.js``; ``QueryPlannerAccess::scanWholeIndex`` adds no FETCH for an empty
filter), and a list is served by an index whose keys are its equalities, in any order, followed
by its sort (MongoDB's ESR rule). Real server, real repository; the README says what was reasoned.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import COUNTS_TIME_LIMIT_S, ListCursor, ListOrder
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.mongodb.repository import COUNTS_INDEX, INDEXES, MongoScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.builders import T0, ended, one_off
from tests.support.mongo_commands import Commands

#: The indexes this version adds to a database an earlier version made.
ADDED = {COUNTS_INDEX, "user_id_status_created_at_id"}

Document = dict[str, Any]


class Store:
    """A repository on a fresh database, over a client whose commands are recorded."""

    def __init__(self, uri: str) -> None:
        self.commands = Commands()
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, tzinfo=UTC, event_listeners=[self.commands])
        self.repo = MongoScheduleRepository(self.client, f"size_{uuid.uuid4().hex[:12]}",
                                            ScheduleCodec(default_trigger_parser()))

    async def indexes(self) -> dict[str, Document]:
        """The collection's indexes by name, each its key as ``{field: direction}``."""
        listed = await self.repo.collection.list_indexes()
        return {index["name"]: dict(index["key"]) async for index in listed}


@pytest.fixture
async def store(mongodb_uri: str) -> AsyncIterator[Store]:
    made = Store(mongodb_uri)
    try:
        yield made
    finally:
        await made.repo.drop_database()
        await made.client.close()


def fields_of(pipeline: list[Document]) -> set[str]:
    """Every field path (``$name``) and sort key the pipeline refers to."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str) and value.startswith("$") and not value.startswith("$$"):
            found.add(value[1:])
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for stage in pipeline:
        (name, spec), = stage.items()
        if name == "$sort":
            found.update(spec)
        else:
            walk(spec)
    return found


async def grouped(store: Store) -> dict[tuple[ScheduleStatus, str], int]:
    """The counts as reading every document finds them (what the index's must equal)."""
    counts: dict[tuple[ScheduleStatus, str], int] = {}
    async for doc in store.repo.collection.find({}, {"status": 1, "task_type": 1}):
        key = (ScheduleStatus(doc["status"]), doc["task_type"])
        counts[key] = counts.get(key, 0) + 1
    return counts


async def test_the_counts_are_read_from_an_index_alone(store: Store) -> None:
    """``GET /v1/stats`` and ``/metrics`` read the counts: a group-by with no index read every
    document (a few KB each: GBs at millions) at every read. Now one hinted aggregation whose
    pipeline needs nothing but the first keys of that index, with no filter (MongoDB reads it
    covered: no document), given the counts' own time limit, not a request's."""
    await store.repo.initialize()
    await store.repo.add_many([one_off(), one_off(), one_off(task_type="email"), one_off(user_id=None)])
    await store.repo.add_many([ended("webhook.delivery", made=T0, at=T0 + timedelta(minutes=1)),
                               ended("whatsapp.text", made=T0, at=T0, dead=True)])
    store.commands.sent.clear()
    counts = await store.repo.count_by_status_and_type()
    assert counts == await grouped(store) == {
        (ScheduleStatus.SCHEDULED, "whatsapp.text"): 3, (ScheduleStatus.SCHEDULED, "email"): 1,
        (ScheduleStatus.SUCCEEDED, "webhook.delivery"): 1, (ScheduleStatus.DEAD, "whatsapp.text"): 1}

    (command,) = store.commands.named("aggregate")
    key = (await store.indexes())[command["hint"]]  # the hint names an index that exists
    assert command["hint"] == COUNTS_INDEX
    pipeline = command["pipeline"]
    assert [next(iter(stage)) for stage in pipeline] == ["$sort", "$group"], pipeline  # no filter
    assert fields_of(pipeline) == {"status", "task_type"} == set(list(key)[:2]), (pipeline, key)
    assert list(pipeline[0]["$sort"].items()) == list(key.items())[:2]  # the index's own order
    # The driver turns the counts' time limit into the server's (maxTimeMS): far longer than the
    # 2 s a request waits, for a read that runs in the background.
    assert COUNTS_TIME_LIMIT_S * 1000 - 5000 < command["maxTimeMS"] <= COUNTS_TIME_LIMIT_S * 1000

    # The server takes the hint: SecantusDB's plan scans that index (it reports a FETCH above
    # every index scan, so whether it is covered is MongoDB's to say, as reasoned above).
    sent = {k: command[k] for k in ("aggregate", "pipeline", "cursor", "hint")}
    plan = await store.client[store.repo._database].command(
        {"explain": sent, "verbosity": "queryPlanner"})
    scan = plan["queryPlanner"]["winningPlan"]["inputStage"]
    assert (scan["stage"], scan["indexName"]) == ("IXSCAN", COUNTS_INDEX), plan


async def test_a_database_an_earlier_version_made_gets_the_new_indexes(store: Store) -> None:
    """``initialize`` at start-up adds what is missing to a collection of schedules made before."""
    collection = store.repo.collection
    await collection.create_indexes([model for model in INDEXES if model.document["name"] not in ADDED])
    await store.repo.add_many([one_off(), one_off(task_type="email")])
    assert ADDED.isdisjoint(await store.indexes())
    await store.repo.initialize()
    indexes = await store.indexes()
    assert list(indexes[COUNTS_INDEX].items()) == [("status", 1), ("task_type", 1), ("created_at", -1), ("_id", -1)]
    assert list(indexes["user_id_status_created_at_id"].items()) == [
        ("user_id", 1), ("status", 1), ("created_at", -1), ("_id", -1)]
    assert {model.document["name"] for model in INDEXES} <= set(indexes)
    assert await store.repo.count_by_status_and_type() == {
        (ScheduleStatus.SCHEDULED, "whatsapp.text"): 1, (ScheduleStatus.SCHEDULED, "email"): 1}
    assert len(await store.repo.list(user_id="abc123", status=ScheduleStatus.SCHEDULED)) == 2



#: The service's own task types, which the API's list leaves out unless a type is named.
INTERNAL = ("webhook.delivery", "whatsapp.status", "cronjob.retention")
#: The types a bulk change names when the client names none: those the service schedules.
USER_TYPES = ("whatsapp.template", "whatsapp.text", "email", "http.request", "python")
CURSOR = ListCursor(ListOrder.CREATED, T0, "0123456789abcdef")

#: Each filter the API's list and the bulk actions send, newest first (the order that pages
#: through the whole history), as ``ScheduleRepository.list``'s arguments, and the index that
#: has its equalities first and its order after.
LISTS: dict[str, tuple[dict[str, Any], str]] = {
    "the list": ({"exclude_types": INTERNAL}, "created_at_id"),
    "status": ({"status": ScheduleStatus.DEAD, "exclude_types": INTERNAL}, "status_created_at_id"),
    "type": ({"task_types": ["email"]}, "task_type_created_at_id"),
    "type and status (the dashboard's counts as filters)": (
        {"task_types": ["email"], "status": ScheduleStatus.DEAD}, COUNTS_INDEX),
    "userId": ({"user_id": "acme", "exclude_types": INTERNAL}, "user_id_created_at_id"),
    "userId and status": (
        {"user_id": "acme", "status": ScheduleStatus.PAUSED, "exclude_types": INTERNAL},
        "user_id_status_created_at_id"),
    ":pause/:resume/:cancel by userId, a page after the first": (
        {"user_id": "acme", "status": ScheduleStatus.PAUSED, "task_types": USER_TYPES, "after": CURSOR},
        "user_id_status_created_at_id"),
    "label": ({"labels": {"campaign": "bf"}, "exclude_types": INTERNAL}, "label_pairs_created_at_id"),
    ":retry of a status": ({"status": ScheduleStatus.DEAD, "task_types": USER_TYPES}, "status_created_at_id"),
}


def equalities(query: Document) -> set[str]:
    """The fields ``query`` matches on one value each (``$all`` of label texts: each one)."""
    found: set[str] = set()
    for field, condition in query.items():
        if field.startswith("$"):
            continue
        if not isinstance(condition, dict) or set(condition) == {"$eq"} or "$all" in condition:
            found.add(field)
        elif set(condition) == {"$in"} and len(condition["$in"]) == 1:
            found.add(field)
    return found


def serving(indexes: dict[str, Document], query: Document, sort: Document) -> set[str]:
    """The indexes whose keys are ``query``'s equalities (in any order), then ``sort``'s keys in
    its directions (or all reversed): MongoDB's ESR rule, a range of one index in the list's
    order, read from its first match, with no sort of its own."""
    wanted = equalities(query)
    order = list(sort.items())
    backwards = [(key, -direction) for key, direction in order]
    return {name for name, key in indexes.items()
            if set(list(key)[:len(wanted)]) == wanted
            and list(key.items())[len(wanted):len(wanted) + len(order)] in (order, backwards)}


@pytest.mark.parametrize("case", list(LISTS))
async def test_every_list_is_a_range_of_an_index_in_its_order(store: Store, case: str) -> None:
    """A list that pages newest first through millions of schedules reads only what it shows
    when one index has its filter's equalities first and its order after; otherwise it reads
    what one filter selects to find the others (a user's whole history for a status it has
    few in) or sorts them. The finds the adapter sends for each filter the API and the bulk
    actions combine, against the indexes it creates."""
    arguments, index = LISTS[case]
    await store.repo.initialize()
    await store.repo.add(one_off(user_id="acme", labels={"campaign": "bf"}))
    store.commands.sent.clear()
    await store.repo.list(limit=5, **arguments)
    (find,) = store.commands.named("find")
    assert find["sort"] == {"created_at": -1, "_id": -1}
    assert index in serving(await store.indexes(), find["filter"], find["sort"]), find["filter"]


async def test_a_label_in_a_status_reads_the_label_s_schedules(store: Store) -> None:
    """The one combination left to read one filter's schedules: labels and a status (a bulk
    change by labels). A multikey index of labels and status would be written on every claim
    and outcome, up to 16 keys a schedule; the label's own index bounds the read to its
    schedules, newest first, as on SQLite."""
    await store.repo.initialize()
    store.commands.sent.clear()
    await store.repo.list(labels={"campaign": "bf"}, status=ScheduleStatus.PAUSED, task_types=USER_TYPES)
    (find,) = store.commands.named("find")
    indexes = await store.indexes()
    assert not serving(indexes, find["filter"], find["sort"])
    assert serving(indexes, {"label_pairs": find["filter"]["label_pairs"]}, find["sort"]) == {
        "label_pairs_created_at_id"}


async def test_a_claim_reads_the_due_schedules_in_their_index_s_order(store: Store) -> None:
    """Every poll of every scheduler claims: its read of the due schedules must stop after the
    batch it claims. Sorted on a key its index does not hold (``_id`` after ``next_run_at``),
    MongoDB fetches and sorts every due schedule first: a burst of 100,000 due at once read
    whole for every batch of a few dozen claimed."""
    await store.repo.initialize()
    due = [one_off(T0 - timedelta(seconds=s)) for s in (3, 1, 2)]
    await store.repo.add_many([*due, one_off(T0 + timedelta(seconds=1))])
    store.commands.sent.clear()
    claimed = await store.repo.claim_due(now=T0, owner="r1", lease_for=timedelta(seconds=30), limit=2,
                                         exclude_types=INTERNAL)
    assert [s.id for s in claimed] == [due[0].id, due[2].id]
    (find,) = [body for body in store.commands.named("find") if body["filter"].get("status") == "scheduled"]
    assert find["limit"] == 2
    assert serving(await store.indexes(), find["filter"], find["sort"]) == {"status_next_run_at"}, find
