"""Running the service: the API (uvicorn), the scheduler engine, or both in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from cronjob.ports.engine import SchedulerEngine
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable
from cronjob.services.clock_check import FIRST_CHECK_TIMEOUT, check_once, keep_checking
from cronjob.services.retention import Kept, RetentionKeeper

from cronjob_adapters.engine.collector import freeze_start_up_heap

from cronjob_bootstrap.container import Container
from cronjob_bootstrap.http_protocol import HeaderTimeLimitedH11
from cronjob_bootstrap.settings import Settings

log = logging.getLogger("cronjob")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM/SIGINT, so that the
    scheduler can drain before the process exits."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _install_stop_handlers(stop: asyncio.Event, hurry: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; one more while stopping sets ``hurry``: stop waiting."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)


def _stop_waiting(server: _Server | None, engine: SchedulerEngine | None) -> None:
    """A second SIGTERM/SIGINT while stopping (Ctrl-C twice): end the grace now, as its end
    would. The engine cancels its runs (their leases given back, a send that may have reached its
    provider parked as ``unknown``), uvicorn stops waiting and its requests in progress are cut."""
    waited_for: list[str] = []
    if engine is not None:
        waited_for.append(f"{engine.stop_waiting()} running jobs")
    if server is not None:
        server.force_exit = True
        requests = list(server.server_state.tasks)
        for request in requests:
            request.cancel()
        waited_for.append(f"{len(requests)} requests in progress")
    log.warning("second signal: not waiting for %s; stopping now", " and ".join(waited_for) or "anything")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the server starts so that a busy port is known at once.

    Made with ``IPPROTO_TCP`` named: the connections it accepts carry that protocol number,
    which asyncio checks before it turns Nagle's algorithm off for them (``TCP_NODELAY``). With
    the default (0) it does not, and every response after the first on a kept-alive connection
    waited for the client's delayed ACK: about 40 ms a request."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _http_server(app: FastAPI, sock: socket.socket, settings: Settings) -> tuple[_Server, asyncio.Task[None]]:
    # Requests in progress at SIGTERM get the same grace as running jobs, then are cut. An idle
    # kept-alive connection stays open ``keep_alive_seconds``: longer than a proxy in front keeps
    # one (ingress-nginx: 60 s), or the proxy may send a request on a connection closed under it
    # (a 502 for the client). uvicorn's own default is 5 s. A request's headers must come within
    # ``header_timeout_seconds`` (uvicorn has no such limit): h11, always, with that timer added.
    protocol = functools.partial(HeaderTimeLimitedH11, header_timeout=settings.header_timeout_seconds)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", http=protocol,
                            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
                            timeout_keep_alive=settings.keep_alive_seconds)  # type: ignore[arg-type]
    server = _Server(config)
    return server, asyncio.create_task(server.serve(sockets=[sock]), name="http")


async def _initialize(repository: ScheduleRepository, stop: asyncio.Event, *, first_delay: float = 0.5,
                      max_delay: float = 30.0, attempt_timeout: float = 60.0) -> bool:
    """Create the store's tables and indexes, waiting for a store that cannot be reached yet (a
    database restarting under a rolling update should not crash-loop every replica): retried
    with a growing delay until it works (True) or ``stop`` is set first (False). An attempt that
    gets no answer within ``attempt_timeout`` (a stalled connection, a write concern that cannot
    be met) counts as one that failed."""
    delay = first_delay
    while not stop.is_set():
        try:
            async with asyncio.timeout(attempt_timeout):
                await repository.initialize()
            return True
        except StoreUnavailable as exc:
            log.warning("the store is unavailable (%s); trying again in %.1f s", exc, delay)
        except TimeoutError:
            log.warning("the store did not finish its set-up within %.0f s; trying again in %.1f s",
                        attempt_timeout, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, max_delay)
    return False


async def keep_retention(keeper: RetentionKeeper, stop: asyncio.Event, *, delay: float = 1.0,
                         max_delay: float = 30.0) -> Kept | None:
    """Make the retention schedule of the service's own jobs what the setting says (see
    :class:`RetentionKeeper`), asking again while it is busy (its run in progress, another
    replica changing it) or the store does not answer, until it is done (what was done) or
    ``stop`` is set (None)."""
    while not stop.is_set():
        try:
            kept = await keeper.keep()
        except StoreUnavailable as exc:
            log.warning("the retention of the service's own jobs could not be set up (%s); trying again in %.0f s",
                        exc, delay)
        else:
            if kept is not Kept.BUSY:
                hours = keeper.keep_hours
                log.info("retention of the service's own finished jobs: %s (%s)", kept.value,
                         f"{hours} h" if hours else "kept for ever")
                return kept
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, max_delay)
    return None


async def _keep_retention_chore(keeper: RetentionKeeper, stop: asyncio.Event) -> None:
    """:func:`keep_retention` beside the scheduler: an error is said, and the scheduler runs on."""
    try:
        await keep_retention(keeper, stop)
    except Exception:
        log.exception("the retention of the service's own jobs could not be set up")


async def run(container: Container, settings: Settings, *, api: bool, scheduler: bool,
              stop: asyncio.Event | None = None) -> None:
    """Start the selected roles and run until SIGTERM/SIGINT (or ``stop``) is set, then give
    running jobs and requests the shutdown grace to finish; a second SIGTERM/SIGINT ends it.

    Every role serves HTTP on ``CRONJOB_PORT``: the API with the probes, or (scheduler only) just
    ``/livez``, ``/readyz``, ``/healthcheck`` and ``/metrics``. The API cannot start on a busy port;
    a scheduler whose port is busy keeps scheduling and says so (its probes are then unreachable).
    """
    stop = stop or asyncio.Event()
    hurry = asyncio.Event()
    _install_stop_handlers(stop, hurry)
    repository = container.repository()
    health = container.health()
    tasks: list[asyncio.Task[None]] = []
    chores: list[asyncio.Task[None]] = []
    server: _Server | None = None
    engine: SchedulerEngine | None = None
    sock: socket.socket | None = None
    froze = False
    try:
        sock = listen(settings.host, settings.port)
    except OSError as exc:
        if api:
            raise SystemExit(f"cronjob: cannot listen on {settings.base_url} (CRONJOB_HOST, "
                             f"CRONJOB_PORT): {exc.strerror}") from None
        log.error("cannot listen on %s (%s): health endpoints unavailable", settings.base_url, exc.strerror)
    try:
        if sock is not None:
            # Served from the start, so that the probes answer while the store is being set up
            # (``/readyz`` is 503 until it is; the API answers 503 meanwhile).
            server, http = _http_server(container.app() if api else container.probe_app(), sock, settings)
            tasks.append(http)
            log.info("listening on %s", settings.base_url)
        stopping = asyncio.create_task(stop.wait())
        # Set up the store while watching the rest: a SIGTERM, or the HTTP server failing, must not
        # wait for a store that does not answer.
        initializing = asyncio.create_task(_initialize(repository, stop), name="initialize")
        done, _ = await asyncio.wait({initializing, stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        if initializing not in done:
            initializing.cancel()
            await asyncio.wait({initializing})
        elif initializing.result():
            # Measured before anything is claimed or created (the API answers 503 until the store
            # is marked set up), so that a host whose clock is off the store's keeps the store's
            # time from the first claim and the first creation on.
            clock_check = container.clock_check()
            try:
                more = await asyncio.wait_for(check_once(clock_check), FIRST_CHECK_TIMEOUT)
            except TimeoutError:
                more = True
            if more:
                chores.append(asyncio.create_task(keep_checking(clock_check, stop, now=False), name="clock-check"))
            health.mark_initialized()
            if scheduler:
                engine = container.engine()
                collector = container.collector()
                collector.install()
                health.watch_loop(lambda: engine.last_tick)
                tasks.append(asyncio.create_task(engine.run(stop), name="scheduler"))
                # Not a role: it ends once done, which must not end the process.
                chores.append(asyncio.create_task(_keep_retention_chore(container.retention_keeper(), stop),
                                                  name="retention"))
                watch = container.new_work_watcher()
                if watch is not None:
                    tasks.append(asyncio.create_task(watch(repository, container.signal(), stop),
                                                     name="change-stream"))
                log.info("scheduler started as %s", settings.instance_id)
            else:
                # API only: CPython's own full collections (a batch of 1,000 schedules sets several
                # off) would walk the start-up heap each time, a fifth of a batch's CPU; a scheduler
                # process freezes it as its QuietCollector is installed.
                freeze_start_up_heap()
                froze = True
            done, _ = await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stopping, initializing}:
            task.result()  # a role that ended on its own: surface its error
        stop.set()
        if server is not None:
            server.should_exit = True
            if api:
                # A request whose body is still coming has done nothing yet: answered 503 now
                # rather than holding the stop for as long as its client takes.
                container.body_waits().cut()
        # The roles end within the grace; a second signal (before or meanwhile) cuts it short.
        finishing = asyncio.gather(*tasks)
        hurrying = asyncio.create_task(hurry.wait())
        try:
            await asyncio.wait({finishing, hurrying}, return_when=asyncio.FIRST_COMPLETED)
            if not finishing.done():
                _stop_waiting(server, engine)
            await finishing
        finally:
            hurrying.cancel()
    finally:
        for task in (*tasks, *chores):
            task.cancel()
        if scheduler:
            container.collector().uninstall()  # a no-op unless installed above
        if froze:
            gc.unfreeze()
        await container.sender().close()
        await repository.close()
        if sock is not None:
            sock.close()
        log.info("stopped")
