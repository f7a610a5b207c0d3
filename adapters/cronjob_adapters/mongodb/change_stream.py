"""Learning of work created by other processes at once, through a MongoDB change stream.

The API replicas insert schedules; scheduler replicas would otherwise see them only at their next
poll. Where the server offers change streams (a replica set, as production and the compose stack
run), each scheduler watches the collection and turns every insert or replace that leaves a
schedule due at some time into a :class:`WorkSignal` notification (the store's only partial
updates, claims and lease renewals, never leave a schedule ``scheduled``, so they are not
watched, and the events carry their whole document without a lookup). The poll stays as the safety
net: a stream that fails is logged and reopened after a pause, and nothing depends on it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from cronjob.ports.signal import WorkSignal

from cronjob_adapters.mongodb.repository import MongoScheduleRepository

log = logging.getLogger(__name__)

#: Only what wakes a scheduler: schedules (re)entering ``scheduled``, and their due time.
_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": {"$in": ["insert", "replace"]},
                "fullDocument.status": "scheduled"}},
    {"$project": {"fullDocument.next_run_at": 1}},
]

#: Server codes meaning this server has no change streams at all, which asking again will not
#: change: "only supported on replica sets" (a standalone ``mongod``), an unknown stage.
NO_CHANGE_STREAMS = frozenset({40573, 40324})


async def watch_new_work(repository: MongoScheduleRepository, signal: WorkSignal, stop: asyncio.Event,
                         *, retry_after: float = 5.0) -> None:
    """Notify ``signal`` of every schedule that becomes due-able, until ``stop`` is set.

    A stream that fails is reopened every ``retry_after`` seconds; the outage is logged once
    (a warning as it starts, the reopening when it ends), not at every try. A server that has no
    change streams at all (a standalone ``mongod``) is said so once, and not asked again: the
    poll finds the work. Returns only once ``stop`` is set (the runtime takes a role that ends on
    its own for a failure)."""
    failing: str | None = None  # what the outage under way is, once it has been logged
    while not stop.is_set():
        try:
            async with await repository.collection.watch(
                    _PIPELINE, max_await_time_ms=500) as stream:
                if failing is None:
                    log.info("watching the schedules collection for new work (change stream)")
                else:
                    log.info("change stream open again (it failed with %s meanwhile)", failing)
                    failing = None
                while not stop.is_set():
                    change = await stream.try_next()
                    if change is None:
                        await asyncio.sleep(0.05)  # nothing new (the getMore already waited)
                        continue
                    due = (change.get("fullDocument") or {}).get("next_run_at")
                    if isinstance(due, datetime):
                        signal.notify(due)
        except OperationFailure as exc:
            if exc.code not in NO_CHANGE_STREAMS:
                failing = _outage(exc, failing, retry_after)
            else:
                log.warning("this MongoDB server offers no change streams (%s, code %s: a standalone server?); "
                            "work created by other processes is found by the poll", type(exc).__name__, exc.code)
                await stop.wait()
                return
        except (PyMongoError, OSError) as exc:
            failing = _outage(exc, failing, retry_after)
        try:
            await asyncio.wait_for(stop.wait(), timeout=retry_after)
        except TimeoutError:
            pass


def _outage(exc: BaseException, failing: str | None, retry_after: float) -> str:
    """Log a failed stream (a warning once per outage, then at debug level); the outage's name."""
    reason = type(exc).__name__
    if failing is None:
        log.warning("change stream unavailable (%s); relying on the poll, trying again every %g s",
                    reason, retry_after)
    else:
        log.debug("change stream still unavailable (%s)", reason)
    return failing or reason
