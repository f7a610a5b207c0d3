"""The service's own HTTP server (``runtime.run``, the API role) in the test's event loop, on a
real port on loopback: for tests of what uvicorn and the runtime do with connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from cronjob_bootstrap.container import Container
from cronjob_bootstrap.runtime import run
from cronjob_bootstrap.settings import Settings
from tests.support.app import TOKEN
from tests.support.waiting import PROMPTLY

#: How long the server may take to answer its first ``/livez``: a start-up (imports, the app
#: built) on a loaded machine, not something the tests time.
STARTS_WITHIN = 30.0


@contextlib.asynccontextmanager
async def serving(container: Container, settings: Settings, stop: asyncio.Event | None = None
                  ) -> AsyncIterator[None]:
    """``runtime.run`` of ``container``'s API with ``settings`` (its ``port`` a free one), once
    ``/livez`` answers there; stopped on leaving, as a SIGTERM stops it (or earlier, by setting
    ``stop``), and waited for ``PROMPTLY``."""
    stop = stop or asyncio.Event()
    running = asyncio.create_task(run(container, settings, api=True, scheduler=False, stop=stop))
    try:
        async with asyncio.timeout(STARTS_WITHIN):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    async with httpx.AsyncClient() as http:
                        if (await http.get(f"http://127.0.0.1:{settings.port}/livez")).status_code == 200:
                            break
                await asyncio.sleep(0.05)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=PROMPTLY)


def creation_head(length: int, key: str) -> bytes:
    """The head of a ``POST /schedule-message`` with the tests' token, an ``Idempotency-Key`` and a
    ``Content-Length`` of ``length``, as a client writes it on a socket (its body to follow, or not)."""
    return (f"POST /schedule-message HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {length}\r\n\r\n").encode()
