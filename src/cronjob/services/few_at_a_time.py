"""Many independent store calls, a few at a time: what bulk changes, the withdrawal of events, the
application of a notification's delivery statuses and MongoDB's ``save_many`` share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def few_at_a_time(jobs: Sequence[Callable[[], Awaitable[T]]], at_once: int) -> list[T]:
    """Run each of ``jobs`` (a call that returns what to await), at most ``at_once`` at a time,
    and return their results in the order of ``jobs``.

    A few at a time because a store commits concurrent writes together (SQLite's group commit,
    MongoDB's round trips overlapping), so a thousand take seconds less than one after the
    other. The first job that fails ends the others and is raised as itself, not in an
    ``ExceptionGroup``: an unreachable store stays a 503.
    """
    room = asyncio.Semaphore(at_once)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with room:
            return await job()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run(job)) for job in jobs]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
