"""Running the service: the API (uvicorn), the scheduler engine, or both in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from cronjob_bootstrap.container import Container
from cronjob_bootstrap.settings import Settings

log = logging.getLogger("cronjob")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM/SIGINT, so that the
    scheduler can drain before the process exits."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run(container: Container, settings: Settings, *, api: bool, scheduler: bool,
              stop: asyncio.Event | None = None) -> None:
    """Start the selected roles and run until SIGTERM/SIGINT (or ``stop``) is set."""
    stop = stop or asyncio.Event()
    _install_stop_handlers(stop)
    repository = container.repository()
    await repository.initialize()
    tasks: list[asyncio.Task[None]] = []
    server: _Server | None = None
    try:
        if scheduler:
            tasks.append(asyncio.create_task(container.engine().run(stop), name="scheduler"))
            log.info("scheduler started as %s", settings.instance_id)
        if api:
            config = uvicorn.Config(container.app(), host=settings.host, port=settings.port,
                                    log_config=None, access_log=False, lifespan="off")
            server = _Server(config)
            tasks.append(asyncio.create_task(server.serve(), name="api"))
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stopping}:
            task.result()  # a role that ended on its own: surface its error
            stop.set()
        stop.set()
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await container.sender().close()
        await repository.close()
        log.info("stopped")
