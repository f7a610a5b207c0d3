"""Probes, metrics, logs and settings from files, through the real app and container."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.ports.metrics import NullMetrics
from cronjob.ports.repository import StoreUnavailable
from cronjob.services import log_context
from cronjob.services.health import HealthService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.observability.logs import JsonFormatter, configure_logging
from cronjob_adapters.tasks.python import RoutineContext, RoutineRegistry, routine
from cronjob_adapters.web.counts_cache import CountsCache
from cronjob_adapters.web.request_metrics import RequestMetrics
from cronjob_bootstrap.container import Container
from cronjob_bootstrap.settings import Settings
from tests.support.app import AUTH, TOKEN, DownStore, SilentStore, api_client, make_container
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.fake_whatsapp import FakeWhatsApp
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures
from tests.support.processes import CronjobProcess, free_port
from tests.support.replicas import wait_log
from tests.support.waiting import PROMPTLY

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


async def test_readiness_and_the_api_need_an_initialised_store(clock: FixedClock) -> None:
    starting = make_container(clock, initialized=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=starting.app()), base_url="http://t") as http:
        assert (await http.get("/livez")).status_code == 200
        before = await http.get("/readyz")
        assert before.status_code == 503 and before.json()["checks"]["indexes"] == "not created yet"
        refused = await http.get("/v1/schedules", headers=AUTH)  # no work before the indexes exist
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"].startswith("the service is starting")
        starting.health().mark_initialized()
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ok": True, "checks": {
            "process": "ok", "store": "ok", "indexes": "ok"}}
        assert (await http.get("/v1/schedules", headers=AUTH)).status_code == 200


async def test_the_probes_answer_in_time_when_the_store_does_not(clock: FixedClock) -> None:
    stalled = make_container(clock, initialized=False, repository=SilentStore())
    stalled.health.override(HealthService(stalled.repository(), clock, ping_timeout=0.2))
    stalled.health().mark_initialized()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stalled.app()), base_url="http://t") as http:
        probe = await asyncio.wait_for(http.get("/readyz"), timeout=PROMPTLY)
        assert probe.status_code == 503
        assert probe.json()["checks"]["store"] == "unavailable: no answer within 0.2 s"
        health = await asyncio.wait_for(http.get("/healthcheck"), timeout=PROMPTLY)
        assert health.status_code == 503 and health.json()["store"] == "unavailable", health.text


async def test_readiness_fails_when_the_store_is_down(clock: FixedClock) -> None:
    down = make_container(clock, repository=DownStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=down.app()), base_url="http://t") as http:
        probe = await http.get("/readyz")
        assert probe.status_code == 503
        assert probe.json()["checks"]["store"].startswith("unavailable")
        assert (await http.get("/livez")).status_code == 200  # a store outage is no reason to restart


class InternalHostDown(InMemoryScheduleRepository):
    """A store whose error names what it is (as a MongoDB driver's names its hosts); ``up`` mends it."""

    up = False

    async def ping(self) -> None:
        if not self.up:
            raise StoreUnavailable("mongo-0.db.internal:27017: [Errno 111] Connection refused")


async def test_the_open_readiness_probe_keeps_the_store_s_error_for_the_log(
        clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    """/readyz is public behind the Ingress: the driver's words (hosts, paths) go to the log only,
    once per outage, not once per probe."""
    store = InternalHostDown()
    down = make_container(clock, repository=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=down.app()), base_url="http://t") as http:
        with caplog.at_level(logging.WARNING, logger="cronjob.services.health"):
            for _ in range(3):
                probe = await http.get("/readyz")
                assert probe.status_code == 503
                assert probe.json()["checks"]["store"] == "unavailable (see the log)"
                assert "internal" not in probe.text and "27017" not in probe.text
            store.up = True
            assert (await http.get("/readyz")).status_code == 200
            store.up = False
            assert (await http.get("/readyz")).status_code == 503
        said = [r.getMessage() for r in caplog.records if r.name == "cronjob.services.health"]
        assert said == ["readiness: the store is unavailable: mongo-0.db.internal:27017: [Errno 111] "
                        "Connection refused"] * 2  # once per outage


async def test_a_stuck_scheduler_loop_fails_liveness(container: Container, clock: FixedClock) -> None:
    container.health().mark_initialized()
    last_tick = {"at": NOW}
    container.health().watch_loop(lambda: last_tick["at"])
    app = container.probe_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        clock.advance(timedelta(seconds=20))
        assert (await http.get("/livez")).status_code == 200
        clock.advance(timedelta(seconds=15))  # 35 s without a tick, the default limit is 30
        stuck = await http.get("/livez")
        assert stuck.status_code == 503 and stuck.json()["checks"]["scheduler_loop"].startswith("stuck")
        assert (await http.get("/readyz")).status_code == 503
        last_tick["at"] = clock.now()
        assert (await http.get("/livez")).status_code == 200


async def test_a_scheduler_that_sleeps_its_long_poll_interval_is_not_stuck(clock: FixedClock) -> None:
    """An idle scheduler ticks once a poll interval (both engines), and CRONJOB_POLL_INTERVAL_SECONDS
    may be up to 60 s, longer than the default CRONJOB_LOOP_STALL_SECONDS (30 s): such a loop is
    asleep as configured, not stuck. Only one silent for the stall limit past its poll is."""
    container = make_container(clock, poll_interval_seconds=60.0)
    heard_at = {"at": clock.now()}
    container.health().watch_loop(lambda: heard_at["at"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.probe_app()), base_url="http://t") as http:
        clock.advance(timedelta(seconds=59))  # waiting for its next poll
        assert (await http.get("/livez")).json() == {"ok": True, "checks": {"process": "ok", "scheduler_loop": "ok"}}
        heard_at["at"] = clock.now()  # the poll's tick
        clock.advance(timedelta(seconds=89))  # 60 s of poll and 29 s late: not yet
        assert (await http.get("/livez")).status_code == 200
        clock.advance(timedelta(seconds=2))
        stuck = await http.get("/livez")
        assert stuck.status_code == 503 and stuck.json()["checks"]["scheduler_loop"] == "stuck: no tick for 91 s"


async def scrape_after_runs(client: httpx.AsyncClient, container: Container, due: int) -> str:
    """``/metrics`` once the container's dispatcher has run the ``due`` schedules due now."""
    dispatcher = container.dispatcher()
    assert await dispatcher.dispatch_due() == due
    await dispatcher.drain(10)
    return (await client.get("/metrics", headers=AUTH)).text


async def test_metrics_after_a_run(client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    assert (await client.get("/metrics")).status_code == 401
    payload = {"to": "5511999999999", "body": "Oi {{1}}", "type": "text", "params": ["Ana"],
               "send_at": (NOW + timedelta(seconds=5)).isoformat()}
    assert (await client.post("/schedule-message", json=payload, headers=AUTH)).status_code == 201
    clock.advance(timedelta(seconds=7))
    text = await scrape_after_runs(client, container, 1)
    assert 'cronjob_schedules{status="succeeded",task_type="whatsapp.text"} 1.0' in text
    assert 'cronjob_attempts_total{code="",outcome="succeeded",task_type="whatsapp.text"} 1.0' in text
    assert 'cronjob_dispatch_lateness_seconds_bucket{le="2.5",task_type="whatsapp.text"} 1.0' in text
    assert 'cronjob_dispatch_lateness_seconds_bucket{le="1.0",task_type="whatsapp.text"} 0.0' in text
    assert "cronjob_in_flight 0.0" in text and "cronjob_lease_takeovers" in text


async def test_lateness_is_measured_for_the_runs_that_start_up_to_an_hour(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    """A run found beyond its misfire grace never starts (it is counted as ``missed``): its
    lateness is none of the histogram's, which an alert on the p99 of started runs reads. One that
    starts 10 minutes late, within the default grace of an hour, lands in a bucket of its own,
    not in +Inf with everything past a minute."""
    for grace in (60, None):
        message = {**SEED, "send_at": (NOW + timedelta(seconds=5)).isoformat(), "misfire_grace_seconds": grace}
        assert (await client.post("/schedule-message", json=message, headers=AUTH)).status_code == 201
    clock.advance(timedelta(seconds=5 + 595))
    text = await scrape_after_runs(client, container, 2)
    assert 'cronjob_attempts_total{code="missed",outcome="missed",task_type="whatsapp.template"} 1.0' in text
    assert 'cronjob_attempts_total{code="",outcome="succeeded",task_type="whatsapp.template"} 1.0' in text
    assert 'cronjob_dispatch_lateness_seconds_count{task_type="whatsapp.template"} 1.0' in text
    assert 'cronjob_dispatch_lateness_seconds_sum{task_type="whatsapp.template"} 595.0' in text
    assert 'cronjob_dispatch_lateness_seconds_bucket{le="300.0",task_type="whatsapp.template"} 0.0' in text
    assert 'cronjob_dispatch_lateness_seconds_bucket{le="900.0",task_type="whatsapp.template"} 1.0' in text


class NapArgs(BaseModel):
    """How long the test routine sleeps."""

    seconds: float


async def test_how_long_runs_take_is_measured_by_task_type(clock: FixedClock) -> None:
    """A run that ends and one stopped at its time limit are both measured, for an alert on runs
    nearing their limit or on a provider that slows down."""
    container = make_container(clock)
    routines = RoutineRegistry()

    @routine("test.nap", NapArgs, registry=routines)
    async def nap(args: NapArgs, context: RoutineContext) -> None:
        await asyncio.sleep(args.seconds)

    container.routines.override(routines)
    async with api_client(container) as http:
        for seconds in (0.3, 60):  # the second one is stopped at its limit, 0.5 s
            created = await http.post("/v1/schedules", headers=AUTH, json={
                "task": {"type": "python", "routine": "test.nap", "args": {"seconds": seconds}},
                "schedule": f"once @ {(NOW + timedelta(seconds=5)).isoformat()}", "run_timeout_seconds": 0.5,
                "retry": {"max_attempts": 1}})
            assert created.status_code == 201, created.text
        clock.advance(timedelta(seconds=6))
        text = await scrape_after_runs(http, container, 2)
    assert {'cronjob_attempts_total{code="run_timeout",outcome="failed",task_type="python"} 1.0',
            'cronjob_run_duration_seconds_count{task_type="python"} 2.0',
            'cronjob_run_duration_seconds_bucket{le="0.25",task_type="python"} 0.0',  # the nap is 0.3 s
            'cronjob_run_duration_seconds_bucket{le="5.0",task_type="python"} 2.0'} <= set(text.splitlines()), text
    took = next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith('cronjob_run_duration_seconds_sum{task_type="python"}'))
    assert 0.8 <= took < 5, took


async def test_every_api_request_is_counted_by_its_route_not_its_path(client: httpx.AsyncClient) -> None:
    created = await client.post("/schedule-message", json={**SEED, "send_at": "2030-06-21T14:00:00-03:00"},
                                headers=AUTH)
    schedule_id = created.json()["id"]
    assert (await client.get(f"/v1/schedules/{schedule_id}", headers=AUTH)).status_code == 200
    assert (await client.head(f"/v1/schedules/{schedule_id}", headers=AUTH)).status_code == 200  # as a GET
    assert (await client.get("/v1/schedules/no-such-id", headers=AUTH)).status_code == 404
    assert (await client.post("/schedule-message", json={**SEED, "to": "x"}, headers=AUTH)).status_code == 422
    assert (await client.get("/wp-login.php")).status_code == 404  # a scanner: one label for all of them
    text = (await client.get("/metrics", headers=AUTH)).text
    counted = _requests_counted(text)
    assert counted == {
        'cronjob_http_requests_total{method="POST",route="/schedule-message",status="201"} 1.0',
        'cronjob_http_requests_total{method="GET",route="/v1/schedules/{schedule_id}",status="200"} 2.0',
        'cronjob_http_requests_total{method="GET",route="/v1/schedules/{schedule_id}",status="404"} 1.0',
        'cronjob_http_requests_total{method="POST",route="/schedule-message",status="422"} 1.0',
        'cronjob_http_requests_total{method="GET",route="unmatched",status="404"} 1.0',
    }
    assert 'cronjob_http_request_duration_seconds_count{method="GET",route="/v1/schedules/{schedule_id}"} 3.0' in text
    assert schedule_id not in text


def _requests_counted(metrics: str) -> set[str]:
    """The ``cronjob_http_requests_total`` lines of the exposition text ``metrics``."""
    return {line for line in metrics.splitlines() if line.startswith("cronjob_http_requests_total{")}


async def test_the_openapi_document_and_its_pages_are_counted_by_their_route_not_as_unmatched(
        client: httpx.AsyncClient) -> None:
    """FastAPI serves these by plain Starlette routes, which leave no ``route`` in the scope: they
    were counted as ``unmatched`` 200s, beside the scanners' 404s."""
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert (await client.get(path)).status_code == 200
    assert (await client.head("/openapi.json")).status_code == 200  # as the GET it is answered as
    assert (await client.post("/openapi.json")).status_code == 405
    assert (await client.get("/wp-login.php")).status_code == 404
    text = (await client.get("/metrics", headers=AUTH)).text
    counted = _requests_counted(text)
    assert counted == {
        'cronjob_http_requests_total{method="GET",route="/openapi.json",status="200"} 2.0',
        'cronjob_http_requests_total{method="GET",route="/docs",status="200"} 1.0',
        'cronjob_http_requests_total{method="GET",route="/redoc",status="200"} 1.0',
        'cronjob_http_requests_total{method="POST",route="/openapi.json",status="405"} 1.0',
        'cronjob_http_requests_total{method="GET",route="unmatched",status="404"} 1.0',
    }, counted


async def test_a_request_that_fails_is_counted_as_a_500_and_an_odd_method_as_other() -> None:
    seen: list[tuple[str, str, int]] = []

    class Seen(NullMetrics):
        def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
            assert seconds >= 0
            seen.append((method, route, status))

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = APIRoute("/v1/things/{thing_id}", endpoint=lambda: None)
        raise RuntimeError("a bug")

    measured = RequestMetrics(failing, Seen())
    with pytest.raises(RuntimeError):
        await measured({"type": "http", "method": "GET", "path": "/v1/things/1"}, _nothing, _nowhere)
    await RequestMetrics(_teapot, Seen())({"type": "http", "method": "BREW", "path": "/"}, _nothing, _nowhere)
    assert seen == [("GET", "/v1/things/{thing_id}", 500), ("OTHER", "unmatched", 418)]


async def _teapot(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _nowhere(message: Message) -> None:
    return None


class CountlessStore(InMemoryScheduleRepository):
    """The in-memory store whose counts can be made to fail as an unreachable store's do."""

    down = False

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        if self.down:
            raise StoreUnavailable("connection refused")
        return await super().count_by_status_and_type()


async def test_metrics_are_served_while_the_store_is_down(clock: FixedClock) -> None:
    """The outage is when the process's own metrics matter most: only the counts are missing."""
    store = CountlessStore()
    container = make_container(clock, repository=store)
    # Read again at every scrape: no age, and a clock that stands still, so that no read's
    # duration (10 times which a read waits after the last, a few ms under load) holds it back.
    container.counts.override(CountsCache(store.count_by_status_and_type, max_age=0, monotonic=lambda: 0.0))
    container.metrics().in_flight(3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        message = {**SEED, "send_at": (NOW + timedelta(hours=1)).isoformat()}
        assert (await http.post("/schedule-message", json=message, headers=AUTH)).status_code == 201
        up = await http.get("/metrics", headers=AUTH)
        assert up.status_code == 200 and "cronjob_store_up 1.0" in up.text
        assert 'cronjob_schedules{status="scheduled",task_type="whatsapp.template"} 1.0' in up.text
        store.down = True
        # The scrape that finds the counts due to be read again still shows the last ones (with
        # store_up 1), its read having failed. Once it failed, the next scrape says so.
        during = await http.get("/metrics", headers=AUTH)
        assert during.status_code == 200 and "cronjob_store_up 1.0" in during.text
        await asyncio.sleep(0.01)
        down = await http.get("/metrics", headers=AUTH)
        assert down.status_code == 200, down.text
        assert "cronjob_store_up 0.0" in down.text and "cronjob_in_flight 3.0" in down.text
        assert "cronjob_schedules{" not in down.text  # no stale counts
        store.down = False
        back = await http.get("/metrics", headers=AUTH)
        assert "cronjob_store_up 1.0" in back.text and "cronjob_schedules{" in back.text


class SilentCounts(InMemoryScheduleRepository):
    """The in-memory store whose counts never come (a stalled connection)."""

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_metrics_and_stats_answer_while_the_store_does_not(clock: FixedClock) -> None:
    container = make_container(clock, repository=SilentCounts())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        for _ in range(2):  # the second scrape does not queue behind the first one's read
            scrape = await asyncio.wait_for(http.get("/metrics", headers=AUTH), timeout=PROMPTLY + 2)
            assert scrape.status_code == 200 and "cronjob_store_up 0.0" in scrape.text
        stats = await asyncio.wait_for(http.get("/v1/stats", headers=AUTH), timeout=PROMPTLY + 2)
        assert stats.status_code == 503 and stats.headers["retry-after"], stats.text


class SlowCounts(InMemoryScheduleRepository):
    """The in-memory store whose counts, once ``slow`` is set, take until ``answer`` is set (a
    store of millions, whose count takes longer than a request waits)."""

    slow = False

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.reads = 0

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        self.reads += 1
        if self.slow:
            await self.answer.wait()
        return await super().count_by_status_and_type()


async def test_stats_answer_the_last_counts_at_once_while_a_slow_count_runs(clock: FixedClock) -> None:
    """Once counted, a slow count is no 503: every request gets the last counts and when they
    were read (``as_of``) at once, while one read goes on behind them (as the process wires it:
    counts at most 2 s old are not read again, a request waits 2 s for a first read)."""
    store = SlowCounts()
    container = make_container(clock, repository=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        message = {**SEED, "send_at": (NOW + timedelta(hours=1)).isoformat()}
        assert (await http.post("/schedule-message", json=message, headers=AUTH)).status_code == 201
        first = (await http.get("/v1/stats", headers=AUTH)).json()
        assert first["total"] == 1
        store.slow = True
        assert (await http.post("/schedule-message", json=message | {"to": "+15550002"},
                                headers=AUTH)).status_code == 201
        await asyncio.sleep(2.05)  # the counts are due to be read again
        for _ in range(3):
            stats = await asyncio.wait_for(http.get("/v1/stats", headers=AUTH), timeout=0.5)
            assert stats.status_code == 200 and stats.json() == first, stats.text
        scrape = await asyncio.wait_for(http.get("/metrics", headers=AUTH), timeout=0.5)
        assert "cronjob_store_up 1.0" in scrape.text
        assert store.reads == 2  # one read under way, not one per request
        store.answer.set()
        await asyncio.sleep(0.05)
        fresh = (await http.get("/v1/stats", headers=AUTH)).json()
        assert fresh["total"] == 2 and fresh["as_of"] > first["as_of"]


class CountsOverTheirLimit(InMemoryScheduleRepository):
    """The in-memory store whose counts run for ``takes`` seconds and then fail as a store's count
    that ran into its time limit does (too many schedules to count within it)."""

    takes = 0.4

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def count_by_status_and_type(self) -> dict[tuple[ScheduleStatus, str], int]:
        self.reads += 1
        await asyncio.sleep(self.takes)
        raise StoreUnavailable("the counts were not read within their time limit")


async def test_a_count_that_runs_into_its_limit_is_not_started_again_at_every_request(clock: FixedClock) -> None:
    """As the process wires it (its read limit shortened): a count that failed after 0.4 s, past
    half its limit, is not made again sooner than 4 s after it (10 times as long), so that the store is not kept counting all the time; the
    requests meanwhile are 503 at once, scrapes say the store could not be read, and the one
    after the interval reads again."""
    store = CountsOverTheirLimit()
    container = make_container(clock, repository=store)
    # The container's cache, with a read limit of 0.6 s instead of 65 s: 0.4 s is past its half.
    container.counts.override(CountsCache(store.count_by_status_and_type, 2.0, read_limit=0.6))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        first = await http.get("/v1/stats", headers=AUTH)
        assert first.status_code == 503 and first.headers["retry-after"], first.text
        for _ in range(5):
            stats = await asyncio.wait_for(http.get("/v1/stats", headers=AUTH), timeout=0.2)
            assert stats.status_code == 503 and stats.headers["retry-after"], stats.text
            scrape = await asyncio.wait_for(http.get("/metrics", headers=AUTH), timeout=0.2)
            assert scrape.status_code == 200 and "cronjob_store_up 0.0" in scrape.text
            await asyncio.sleep(0.3)
        assert store.reads == 1  # not one per request, back to back
        store.takes = 0.0
        # 10 times the failed read's duration: 4 s, up to 6 s on a loaded machine (its limit is
        # 0.6 s, so no longer): waited out whole, so that a slow read cannot fail this test.
        await asyncio.sleep(6.1 - 5 * 0.3)
        await http.get("/v1/stats", headers=AUTH)
        assert store.reads == 2


class WritesGoAway(InMemoryScheduleRepository):
    """The in-memory store whose writes (an outcome, a webhook delivery) fail as an unreachable
    store's do once ``down`` is set."""

    down = False

    async def save(self, schedule: Schedule, **conditions: Any) -> bool:
        if self.down:
            raise StoreUnavailable("mongo-0.db.internal:27017: [Errno 111] Connection refused")
        return await super().save(schedule, **conditions)

    async def add(self, schedule: Schedule) -> None:
        if self.down:
            raise StoreUnavailable("mongo-0.db.internal:27017: [Errno 111] Connection refused")
        await super().add(schedule)


async def test_a_store_outage_while_recording_a_run_is_a_warning_not_a_crash(
        clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    """The runbook's outage: the run's outcome and its webhook deliveries cannot be written. That
    is expected and handled (the lease lapses, the run is taken over): warnings that name the run,
    no ERROR and no traceback for an alert on errors to page someone with."""
    store = WritesGoAway()
    # A short lease: the outcome is tried again until it lapses.
    container = make_container(clock, repository=store, webhook_urls="https://hooks.example/cronjob",
                               webhook_secret="s3cret", webhook_events="succeeded", lease_seconds=1)
    async with api_client(container, AUTH) as http:
        message = {**SEED, "send_at": (NOW + timedelta(seconds=5)).isoformat()}
        created = await http.post("/schedule-message", json=message)
        assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    clock.advance(timedelta(seconds=7))
    dispatcher = container.dispatcher()
    store.down = True
    with caplog.at_level(logging.INFO):
        assert await dispatcher.dispatch_due() == 1
        await dispatcher.drain(30)
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert not [m for m in said if m[0] >= logging.ERROR], said
    assert not [r for r in caplog.records if r.exc_info], "a traceback for an expected outage"
    undelivered = re.compile(rf"webhook delivery of event \w+ \(schedule {schedule_id}\) could not be stored: "
                             r"the store is unavailable \(StoreUnavailable\)")
    assert any(level == logging.WARNING and undelivered.fullmatch(m) for level, m in said), said
    not_recorded = [m for level, m in said if level == logging.WARNING and "not recorded" in m]
    assert len(not_recorded) == 1 and not_recorded[0].startswith(f"schedule {schedule_id} attempt "), said
    assert re.search(r"-> succeeded not recorded: the store is unavailable \(StoreUnavailable: .+\); "
                     r"it runs again once its lease lapses$", not_recorded[0]), said
    store.down = False
    kept = await container.repository().get(schedule_id)
    assert kept is not None and kept.status is ScheduleStatus.RUNNING  # held by its lease, not lost


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    mine = await client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = await client.get("/livez", headers={"X-Request-ID": "bad id\n"})
    assert len(made.headers["x-request-id"]) == 32


def test_json_logs_carry_the_run_and_nothing_else() -> None:
    record = logging.LogRecord("cronjob", logging.INFO, __file__, 1, "sent %s", ("wamid.1",), None)
    token_s, token_a = log_context.schedule_id.set("s-1"), log_context.attempt_id.set("a-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        log_context.schedule_id.reset(token_s)
        log_context.attempt_id.reset(token_a)
    assert line["message"] == "sent wamid.1" and line["schedule_id"] == "s-1" and line["attempt_id"] == "a-1"
    assert set(line) == {"ts", "level", "logger", "message", "schedule_id", "attempt_id"}


def test_configure_logging_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json")
        logging.getLogger("cronjob.test").info("hello")
        logging.getLogger("httpx").info("GET https://secret.example/?token=x")  # quieted
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["hello"]


def test_settings_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "tokens"
    secret.write_text("t1,t2\n")
    monkeypatch.setenv("CRONJOB_API_TOKENS_FILE", str(secret))
    monkeypatch.setenv("CRONJOB_WHATSAPP_TOKEN_FILE", str(secret))
    settings = Settings()
    assert settings.tokens == ["t1", "t2"]
    assert settings.whatsapp_token is not None and settings.whatsapp_token.get_secret_value() == "t1,t2"
    assert "t1" not in repr(settings)


def test_scheduler_process_serves_probes_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with FakeWhatsApp() as whatsapp:
        env = {"CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
               "CRONJOB_WHATSAPP_API_URL": whatsapp.url, "CRONJOB_WHATSAPP_TOKEN": whatsapp.token,
               "CRONJOB_WHATSAPP_PHONE_NUMBER_ID": whatsapp.phone_number_id}
        scheduler = CronjobProcess("scheduler", env, tmp_path / "scheduler.log").start()
        try:
            # The probes answer from the start; ready once the store is set up and the loop runs.
            scheduler.wait_ready(base)
            ready = httpx.get(f"{base}/readyz").json()
            assert ready["ok"] and ready["checks"]["scheduler_loop"] == "ok"
            assert httpx.get(f"{base}/metrics").status_code == 401
            assert "cronjob_in_flight" in httpx.get(f"{base}/metrics", headers=AUTH).text
            assert httpx.get(f"{base}/v1/schedules", headers=AUTH).status_code == 404  # no API here
            assert scheduler.stop(signal.SIGTERM) == 0
            lines = [json.loads(line) for line in scheduler.output().splitlines() if line.startswith("{")]
            assert any(line["message"].startswith("scheduler started") for line in lines)
            assert TOKEN not in scheduler.output()
        finally:
            scheduler.stop(signal.SIGKILL)


def test_a_scheduler_on_a_busy_port_keeps_working(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
               "CRONJOB_LOG_FORMAT": "text"}
        scheduler = CronjobProcess("scheduler", env, tmp_path / "s.log").start()
        try:
            wait_log(scheduler, "health endpoints unavailable")  # fails at once if the process exits
            wait_log(scheduler, "scheduler started as")  # and it goes on to schedule
            assert scheduler.process is not None and scheduler.process.poll() is None
        finally:
            assert scheduler.stop(signal.SIGTERM) == 0
        api = CronjobProcess("api", env, tmp_path / "a.log").start()
        assert api.process is not None and api.process.wait(timeout=30) != 0
        assert "cannot listen on" in api.output()
