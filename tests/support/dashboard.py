"""What the dashboard's browser tests share: the ``cronjob serve`` under test and a client of its
API (``Service``), headless Chromium (Debian's, driven by Playwright's Python API) and a fresh tab
on the page that fails its test when the page logs an error.

The fixtures are imported by each dashboard test module (``from tests.support.dashboard import
...``), where pytest finds them; ``service`` and ``browser`` are module-scoped: one of each per module.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.support.app import AUTH, TOKEN
from tests.support.builders import seed_request
from tests.support.processes import CronjobProcess, free_port
from tests.support.waiting import wait_until

#: Flags for a headless Chromium on a machine with a closed network, run as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


expect.set_options(timeout=10_000)  # a loaded CI machine; the page refreshes every 5 s on its own


def _chromium() -> str:
    path = os.environ.get("CRONJOB_TEST_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(f"no Chromium at {path}: `make test` installs Debian's chromium package (as root); "
                    "elsewhere set CRONJOB_TEST_CHROMIUM to a Chromium or Chrome binary")
    return path


class Service:
    """The ``cronjob serve`` under test and a client of its API."""

    def __init__(self, base: str, data_dir: Path) -> None:
        self.base = base
        self.data_dir = data_dir
        self.http = httpx.Client(base_url=base, headers=AUTH, timeout=10)

    def message(self, send_at: datetime, **changes: Any) -> dict[str, Any]:
        response = self.http.post("/schedule-message", json={**seed_request(send_at), **changes})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def later(self, **changes: Any) -> dict[str, Any]:
        """A message due in an hour (it stays ``scheduled``)."""
        return self.message(datetime.now(UTC) + timedelta(hours=1), **changes)

    def dead(self, **changes: Any) -> dict[str, Any]:
        """A message due now, once the scheduler has found it cannot be sent (``dead``)."""
        created = self.message(datetime.now(UTC), **changes)
        return self.wait_for(created["id"], lambda s: s["status"] == "dead")

    def get(self, schedule_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/schedules/{schedule_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_for(self, schedule_id: str, condition: Any, timeout: float = 15) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def check() -> bool:
            found.update(self.get(schedule_id))
            return bool(condition(found))

        assert wait_until(check, timeout=timeout), f"schedule {schedule_id}: {found}"
        return found


@contextmanager
def serving(tmp: Path, **env: str) -> Iterator[Service]:
    """A ``cronjob serve`` on a free port with its data under ``tmp`` (``env``: more settings)."""
    port = free_port()
    env = {"CRONJOB_DATA_DIR": str(tmp / "var"), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
           "CRONJOB_POLL_INTERVAL_SECONDS": "0.2", "CRONJOB_HTTP_ALLOW_HOSTS": "127.0.0.1",
           "CRONJOB_SHUTDOWN_GRACE_SECONDS": "2", **env}
    serve = CronjobProcess("serve", env, tmp / "serve.log").start()
    try:
        serve.wait_http(f"http://127.0.0.1:{port}/healthcheck")
        service = Service(f"http://127.0.0.1:{port}", tmp / "var")
        yield service
        service.http.close()
    finally:
        serve.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serving(tmp_path_factory.mktemp("dashboard")) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page_errors() -> list[str]:
    """What the page logged as errors; a test that provokes one takes it out."""
    return []


@pytest.fixture
def page(browser: Browser, service: Service, page_errors: list[str]) -> Iterator[Page]:
    """A fresh tab (its own session storage) on the dashboard; fails the test if the page logs an error."""
    context = browser.new_context(base_url=service.base)
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            page_errors.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: page_errors.append(str(error)))
    opened.goto("/dashboard")
    yield opened
    context.close()
    assert page_errors == [], page_errors


def sign_in(page: Page, token: str = TOKEN) -> None:
    page.fill("#token", token)
    page.click("#token-save")


@contextmanager
def signed_in(browser: Browser, service: Service, **options: Any) -> Iterator[Page]:
    """A tab on the dashboard in a browser context of its own (``options``: its viewport, time
    zone, locale...), signed in; closed after."""
    context = browser.new_context(base_url=service.base, **options)
    try:
        opened = context.new_page()
        opened.goto("/dashboard")
        sign_in(opened)
        yield opened
    finally:
        context.close()


def row(page: Page, schedule_id: str) -> Any:
    return page.locator(f'#schedules tbody tr[data-id="{schedule_id}"]')


def row_button(page: Page, schedule_id: str) -> Any:
    """The button that opens a row of the list (its Tab stop), found as a screen reader finds it:
    a button named by the schedule's id."""
    return row(page, schedule_id).get_by_role("button", name=schedule_id, exact=True)
