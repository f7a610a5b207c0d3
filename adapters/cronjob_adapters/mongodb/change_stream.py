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

from pymongo.errors import PyMongoError

from cronjob.ports.signal import WorkSignal

from cronjob_adapters.mongodb.repository import MongoScheduleRepository

log = logging.getLogger(__name__)

#: Only what wakes a scheduler: schedules (re)entering ``scheduled``, and their due time.
_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": {"$in": ["insert", "replace"]},
                "fullDocument.status": "scheduled"}},
    {"$project": {"fullDocument.next_run_at": 1}},
]


async def watch_new_work(repository: MongoScheduleRepository, signal: WorkSignal, stop: asyncio.Event,
                         *, retry_after: float = 5.0) -> None:
    """Notify ``signal`` of every schedule that becomes due-able, until ``stop`` is set."""
    while not stop.is_set():
        try:
            async with await repository.collection.watch(
                    _PIPELINE, max_await_time_ms=500) as stream:
                log.info("watching the schedules collection for new work (change stream)")
                while not stop.is_set():
                    change = await stream.try_next()
                    if change is None:
                        await asyncio.sleep(0.05)  # nothing new (the getMore already waited)
                        continue
                    due = (change.get("fullDocument") or {}).get("next_run_at")
                    if isinstance(due, datetime):
                        signal.notify(due)
        except (PyMongoError, OSError) as exc:
            log.warning("change stream unavailable (%s); relying on the poll, retrying in %.0f s",
                        type(exc).__name__, retry_after)
            try:
                await asyncio.wait_for(stop.wait(), timeout=retry_after)
            except TimeoutError:
                pass
