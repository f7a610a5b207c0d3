"""Start-up in process (``runtime.run`` on a real port), with a store whose set-up does not answer.

The end-to-end case (a MongoDB that is down, then starts) is in ``test_cli_e2e.py``; these are the
paths a process cannot show quickly: a set-up call that hangs rather than fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path

import httpx
import pytest

from cronjob.ports.clock import SystemClock
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_bootstrap.runtime import _initialize, run
from cronjob_bootstrap.settings import Settings
from tests.support.app import TOKEN, make_container
from tests.support.processes import free_port
from tests.support.serving import serving
from tests.support.waiting import PROMPTLY, until


class StuckSetUp(InMemoryScheduleRepository):
    """The in-memory store whose ``initialize`` never answers (a stalled connection, a write
    concern that cannot be met), except from attempt ``answers_from`` on when given."""

    def __init__(self, answers_from: int | None = None) -> None:
        super().__init__()
        self.answers_from = answers_from
        self.attempts = 0

    async def initialize(self) -> None:
        self.attempts += 1
        if self.answers_from is None or self.attempts < self.answers_from:
            await asyncio.Event().wait()


async def test_a_stop_while_the_store_set_up_hangs_ends_the_process_promptly() -> None:
    port = free_port()
    store = StuckSetUp()
    container = make_container(SystemClock(), initialized=False, repository=store)
    stop = asyncio.Event()
    running = asyncio.create_task(run(container, Settings(api_tokens=TOKEN, port=port), api=True,
                                      scheduler=True, stop=stop))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=PROMPTLY) as http:

        async with asyncio.timeout(PROMPTLY):  # the probes are served while the set-up hangs
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/livez")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["indexes"] == "not created yet"
    assert store.attempts == 1 and not running.done()
    stop.set()  # what SIGTERM does
    await asyncio.wait_for(running, timeout=PROMPTLY)


async def test_a_set_up_attempt_that_does_not_answer_is_given_up_and_tried_again(
        caplog: pytest.LogCaptureFixture) -> None:
    store = StuckSetUp(answers_from=2)
    with caplog.at_level(logging.WARNING, logger="cronjob"):
        assert await asyncio.wait_for(
            _initialize(store, asyncio.Event(), first_delay=0.01, attempt_timeout=0.2), timeout=PROMPTLY)
    assert store.attempts == 2
    assert "did not finish its set-up within" in caplog.text


async def test_set_up_gives_up_when_stopped_between_attempts(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="cronjob"):
        attempt = asyncio.create_task(_initialize(StuckSetUp(), stop, first_delay=30.0, attempt_timeout=0.05))
        # The first attempt timed out: now waiting 30 s before the next.
        await until(lambda: "did not finish its set-up within" in caplog.text)
    stop.set()
    assert await asyncio.wait_for(attempt, timeout=PROMPTLY) is False


async def test_an_api_process_keeps_its_start_up_heap_out_of_the_collections_while_it_serves(
        tmp_path: Path) -> None:
    """Frozen once the store is set up (a full collection then walks only what requests made,
    not the modules, the app and its schemas), and given back when it stops."""
    container = make_container(SystemClock(), initialized=False)
    assert gc.get_freeze_count() == 0
    async with serving(container, Settings(api_tokens=TOKEN, port=free_port(), data_dir=tmp_path)):
        await until(lambda: container.health().initialized)
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
