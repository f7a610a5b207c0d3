"""The app through its container, in memory, for the HTTP tests: the shipped in-memory store, the
recording sender and a clock the test drives, plus a store that is down. No mocks."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from cronjob.domain.schedule import Schedule
from cronjob.ports.clock import Clock
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_bootstrap.container import Container, build_container
from cronjob_bootstrap.settings import Settings

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def by(token: str) -> str:
    """The ``data.by`` of the events a request with ``token`` causes, as the README tells an
    operator to compute it (``printf %s "$TOKEN" | sha256sum | cut -c1-12``)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def audit(token: str, answer: httpx.Response) -> dict[str, str]:
    """The ``data`` entries that the events of the request ``answer`` answered, made with
    ``token``, carry: who (``by``) and which request (``request_id``, its ``X-Request-ID``)."""
    return {"by": by(token), "request_id": answer.headers["X-Request-ID"]}


def make_container(clock: Clock, *, initialized: bool = True, repository: ScheduleRepository | None = None,
                   store: str = "memory", **settings: Any) -> Container:
    """The container with ``store`` (memory unless said), ``sender=recording`` and ``clock`` in
    place of the system clock; ``settings`` are added to ``api_tokens=TOKEN`` (and may replace
    it). The store counts as ``initialized``, as the runtime marks it once its indexes exist (the
    API answers 503 before that). ``repository``, when given, replaces the store. Both are chosen
    here, before anything is built: the health service holds the store it was built with."""
    built = build_container(Settings(**{"api_tokens": TOKEN, **settings}))
    built.config.store.from_value(store)
    built.config.sender.from_value("recording")
    built.clock.override(clock)
    if repository is not None:
        built.repository.override(repository)
    if initialized:
        built.health().mark_initialized()
    return built


@asynccontextmanager
async def set_up(clock: Clock, store: str, data_dir: Path, **settings: Any) -> AsyncIterator[Container]:
    """:func:`make_container` on ``store`` (``memory`` or ``sqlite``, its file in ``data_dir``),
    its tables and indexes made first, the store closed after."""
    built = make_container(clock, store=store, data_dir=str(data_dir), **settings)
    await built.repository().initialize()
    try:
        yield built
    finally:
        await built.repository().close()


@asynccontextmanager
async def api_client(container: Container, headers: Mapping[str, str] | None = None
                     ) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the container's app, in memory (httpx's ASGI transport), sending
    ``headers`` with every request (e.g. :data:`AUTH`)."""
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:
        yield http


class DownStore(InMemoryScheduleRepository):
    """The in-memory store answering every ``ping`` as an unreachable store does."""

    async def ping(self) -> None:
        raise StoreUnavailable("connection refused")


class WritesDownStore(InMemoryScheduleRepository):
    """The in-memory store whose writes fail once ``down`` is set (the store went away mid-way)."""

    down = False

    async def save(self, schedule: Schedule, **kwargs: Any) -> bool:
        if self.down:
            raise StoreUnavailable("connection refused")
        return await super().save(schedule, **kwargs)


class SilentStore(InMemoryScheduleRepository):
    """The in-memory store whose ``ping`` never answers (a stalled connection)."""

    async def ping(self) -> None:
        await asyncio.Event().wait()
