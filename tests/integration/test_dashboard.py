"""The dashboard in headless Chromium, against a real ``cronjob serve`` (SQLite store, no WhatsApp
credentials: every message that falls due ends ``dead`` with ``not_configured``, which gives the
page dead letters to show and retry).

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test``; ``CRONJOB_TEST_CHROMIUM``
names another), driven by Playwright's Python API; no browser is downloaded. Every test also
checks that the page logged no error (a script error, a refused request, a CSP violation).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, Route, expect

from tests.support.accessibility import chromium_name, chromium_text, violations
from tests.support.app import AUTH, TOKEN, by
from tests.support.builders import seed_request
from tests.support.processes import CronjobProcess, free_port
from tests.support.dashboard import (  # noqa: F401 (fixtures: pytest finds them here)
    Service,
    browser,
    page,
    page_errors,
    row,
    row_button,
    service,
    sign_in,
    signed_in,
)
from tests.support.waiting import wait_until


@contextmanager
def signed_in_in_tokyo(browser: Browser, service: Service) -> Iterator[Page]:
    """A tab on the dashboard, signed in, in a browser in Asia/Tokyo (not the schedules' zone)."""
    with signed_in(browser, service, timezone_id="Asia/Tokyo", locale="en-GB") as page:
        yield page


def test_the_page_needs_a_valid_token(page: Page, service: Service, page_errors: list[str]) -> None:
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("#ready")).to_have_text("ready")  # the probe needs no token
    sign_in(page, "not-the-token")
    expect(page.locator("#message")).to_contain_text("The token was refused (401)")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('cronjob.token')") is None
    refused = [error for error in page_errors if "status of 401" in error]
    assert len(refused) == 1  # Chromium logs the refused request itself
    page_errors.remove(refused[0])


def test_counts_and_rows_agree_with_the_api(page: Page, service: Service) -> None:
    later, dead = service.later(), service.dead()
    sign_in(page)
    expect(row(page, later["id"])).to_be_visible()
    stats = service.http.get("/v1/stats").json()
    page.click("#refresh")  # the page read its counts before these
    expect(page.locator("#total")).to_have_text(str(stats["total"]))
    for status, count in stats["by_status"].items():
        expect(page.locator(f'.count[data-status="{status}"] .n')).to_have_text(str(count))
    page.click("#by-type-section summary")
    for task_type, counts in stats["by_type"].items():
        cells = page.locator(f'#by-type tbody tr[data-type="{task_type}"] td.n')
        expect(cells).to_have_text([str(counts.get(s, "")) for s in stats["by_status"]])
    listed = service.http.get("/v1/schedules", params={"limit": 50}).json()["items"]
    expect(page.locator("#schedules tbody tr")).to_have_count(len(listed))
    expect(row(page, dead["id"]).locator("td.status")).to_have_text("dead")
    expect(row(page, dead["id"]).locator("td.error")).to_contain_text("not_configured")

    page.click('.count[data-status="dead"]')  # the dead letters
    expect(page.locator("#status-filter")).to_have_value("dead")
    expect(row(page, later["id"])).to_have_count(0)
    statuses = page.locator("#schedules tbody td.status")
    expect(statuses.first).to_have_text("dead")
    assert set(statuses.all_text_contents()) == {"dead"}


def test_a_dead_letter_is_retried_from_its_detail(page: Page, service: Service) -> None:
    dead = service.dead()
    sign_in(page)
    row(page, dead["id"]).click()
    expect(page.locator("#detail-id")).to_have_text(dead["id"])
    expect(page.locator("#detail-status")).to_have_text("dead")
    expect(page.locator("#detail-error")).to_contain_text("not_configured")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    expect(page.locator("#events tbody td.type")).to_have_text(["scheduled", "started", "failed", "dead"])
    expect(page.locator("#cancel")).to_be_hidden()

    page.click("#retry")
    # The retry runs (and, with no credentials, ends dead again at once): a second attempt, on the page too.
    again = service.wait_for(dead["id"], lambda s: len(s["attempts"]) == 2 and s["status"] == "dead")
    page.click("#refresh")
    expect(page.locator("#attempts tbody tr")).to_have_count(2)
    expect(page.locator("#detail-status")).to_have_text("dead")
    # What the request did (the retry's time is its attempt's), not a status the detail contradicts.
    retried_at = local_time(page, again["attempts"][1]["scheduled_for"])
    expect(page.locator("#message")).to_have_text(f"Schedule {dead['id']}: retry scheduled, due at {retried_at}.")


def test_a_schedule_deleted_meanwhile_closes_its_detail(page: Page, service: Service,
                                                       page_errors: list[str]) -> None:
    dead = service.dead()
    sign_in(page)
    row(page, dead["id"]).click()
    expect(page.locator("#detail-status")).to_have_text("dead")
    with sqlite3.connect(service.data_dir / "cronjob.sqlite3") as db:  # as the retention clean-up does
        assert db.execute("DELETE FROM schedules WHERE id = ?", (dead["id"],)).rowcount == 1
    page.click("#refresh")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page.locator("#message")).to_have_text(f"There is no schedule {dead['id']} (any more).")
    expect(row(page, dead["id"])).to_have_count(0)
    missing = [error for error in page_errors if "status of 404" in error]
    assert 1 <= len(missing) <= 2  # Chromium logs the refused requests (the schedule and its events)
    for error in missing:
        page_errors.remove(error)


def test_a_schedule_opens_by_its_id(page: Page, service: Service, page_errors: list[str]) -> None:
    oldest = service.later()
    for _ in range(50):  # pushed off the first page
        service.later()
    sign_in(page)
    expect(page.locator("#schedules tbody tr")).to_have_count(50)
    expect(row(page, oldest["id"])).to_have_count(0)
    page.fill("#open-id", f"  {oldest['id']} ")
    page.click("#open")
    expect(page.locator("#detail-id")).to_have_text(oldest["id"])
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    expect(page.locator("#detail-heading")).to_be_in_viewport()  # below 50 rows: scrolled to
    # The keyboard opens a row as a click does: Tab to its button, Enter.
    newest = page.locator("#schedules tbody tr").first.get_by_role("button")
    newest.focus()
    newest.press("Enter")
    expect(page.locator("#detail-id")).to_have_text(newest.text_content() or "")
    expect(page.locator("#detail-heading")).to_be_in_viewport()
    expect(page.locator("#detail-heading")).to_be_focused()
    page.fill("#open-id", "no-such-id")
    page.click("#open")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page.locator("#message")).to_have_text("There is no schedule no-such-id (any more).")
    # Both reads are refused, the schedule and its events; the message comes at the first refusal,
    # perhaps before the browser's note of the second (left for the end of the test, it failed it).
    missing: list[str] = []
    for _ in range(50):
        missing = [error for error in page_errors if "status of 404" in error]
        if len(missing) == 2:
            break
        page.wait_for_timeout(100)
    assert len(missing) == 2, page_errors
    for error in missing:
        page_errors.remove(error)


def test_the_retention_of_the_own_jobs_is_listed_by_its_type_and_offers_no_action(page: Page,
                                                                                 service: Service) -> None:
    assert wait_until(lambda: service.http.get("/v1/schedules/cronjob-retention").status_code == 200)
    sign_in(page)
    expect(page.locator("#type-filter option", has_text="cronjob.retention")).to_have_count(1)
    page.fill("#open-id", "cronjob-retention")
    page.click("#open")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    # Switched off by its setting, not by hand (the API refuses a cancel, a pause, a run now).
    for action in ("#cancel", "#pause", "#run"):
        expect(page.locator(action)).to_be_hidden()


def test_cancel_asks_first(page: Page, service: Service) -> None:
    later = service.later()
    sign_in(page)
    row(page, later["id"]).click()
    expect(page.locator("#retry")).to_be_hidden()
    answers: list[str] = []

    def answer(accept: bool) -> Any:
        def handle(dialog: Dialog) -> None:
            answers.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    deletes: list[str] = []
    page.on("request", lambda request: deletes.append(request.url) if request.method == "DELETE" else None)
    page.once("dialog", answer(False))
    page.click("#cancel")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    # A DELETE sent on the click would be requested before this refresh's list is answered.
    with page.expect_response(lambda response: "/v1/schedules?" in response.url):
        page.click("#refresh")
    assert deletes == [] and service.get(later["id"])["status"] == "scheduled"

    page.once("dialog", answer(True))
    page.click("#cancel")
    expect(page.locator("#detail-status")).to_have_text("cancelled")
    assert deletes == [f"{service.base}/v1/schedules/{later['id']}"]
    expect(page.locator("#cancel")).to_be_hidden()
    assert service.get(later["id"])["status"] == "cancelled"
    assert answers == [f"Cancel schedule {later['id']}? This cannot be undone."] * 2


def test_a_waiting_schedule_is_moved_from_its_detail(page: Page, service: Service, page_errors: list[str]) -> None:
    later = service.later()
    sign_in(page)
    row(page, later["id"]).click()
    expect(page.locator("#move-form")).to_be_visible()
    expect(page.locator("#move-hint")).to_contain_text("America/Sao_Paulo")
    page.fill("#move-to", "yesterday")  # refused by the API: its reason is shown, nothing moves
    page.click("#move")
    expect(page.locator("#message")).to_contain_text("Invalid request (422): send_at: ")
    expect(page.locator("#message")).not_to_contain_text("[")  # the fields, named once (by the detail)
    assert service.get(later["id"])["send_at"] == later["send_at"]
    target = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    page.fill("#move-to", target.isoformat())
    page.press("#move-to", "Enter")
    expect(page.locator("#message")).to_contain_text("moved")
    moved = service.get(later["id"])
    assert datetime.fromisoformat(moved["send_at"]) == target and moved["status"] == "scheduled"
    expect(page.locator("#move-to")).to_have_value("")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#detail-status")).to_have_text("cancelled")
    expect(page.locator("#move-form")).to_be_hidden()  # only what waits can be moved
    refused = [error for error in page_errors if "status of 422" in error]
    assert len(refused) == 1  # the browser's own note of the refused move; nothing else
    page_errors.remove(refused[0])


def test_a_waiting_schedule_is_paused_and_resumed_from_its_detail(page: Page, service: Service) -> None:
    later = service.later()
    sign_in(page)
    row(page, later["id"]).click()
    expect(page.locator("#resume")).to_be_hidden()
    page.click("#pause")
    expect(page.locator("#message")).to_contain_text(f"Schedule {later['id']}: paused")
    expect(page.locator("#detail-status")).to_have_text("paused")
    assert service.get(later["id"])["status"] == "paused"
    expect(page.locator("#pause")).to_be_hidden()
    expect(page.locator("#move-form")).to_be_visible()  # a paused one can still be moved, and cancelled
    expect(page.locator("#cancel")).to_be_visible()
    target = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    page.fill("#move-to", target.isoformat())
    page.click("#move")
    expect(page.locator("#message")).to_contain_text("moved")
    expect(page.locator("#message")).to_contain_text("still paused")
    moved = service.get(later["id"])
    assert moved["status"] == "paused" and datetime.fromisoformat(moved["next_run_at"]) == target
    expect(row(page, later["id"]).locator("td.status")).to_have_text("paused")
    page.click('.count[data-status="paused"]')
    expect(page.locator("#status-filter")).to_have_value("paused")
    expect(row(page, later["id"])).to_be_visible()

    page.click("#resume")
    expect(page.locator("#message")).to_have_text(
        f"Schedule {later['id']}: resumed, due at {local_time(page, moved['next_run_at'])}.")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    resumed = service.get(later["id"])
    assert (resumed["status"], resumed["next_run_at"]) == ("scheduled", moved["next_run_at"])
    expect(page.locator("#events tbody td.type")).to_have_text(["scheduled", "paused", "scheduled", "resumed"])


def test_an_action_answered_with_another_status_than_it_leaves_says_so(page: Page, service: Service) -> None:
    """A recurring schedule whose rule ended while it was paused has nothing left to run: the resume
    is answered ``missed``, which the outcome says as answered (not "resumed" alone)."""
    soon = datetime.now(UTC) + timedelta(seconds=2)
    text = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    response = service.http.post("/v1/schedules", json={
        "task": text, "schedule": f"every 1 hour from {soon.isoformat()} until {(soon + timedelta(seconds=1)).isoformat()}"})
    assert response.status_code == 201, response.text
    ended = response.json()
    assert service.http.post(f"/v1/schedules/{ended['id']}/pause").status_code == 200
    sign_in(page)
    page.fill("#open-id", ended["id"])
    page.click("#open")
    expect(page.locator("#detail-status")).to_have_text("paused")
    assert wait_until(lambda: datetime.now(UTC) > soon + timedelta(seconds=1.1), timeout=10)
    page.click("#resume")
    expect(page.locator("#message")).to_have_text(f"Schedule {ended['id']}: resumed (answered: missed).")
    expect(page.locator("#detail-status")).to_have_text("missed")


def test_a_waiting_schedule_is_run_now_from_its_detail(page: Page, service: Service) -> None:
    later = service.later()
    sign_in(page)
    row(page, later["id"]).click()
    page.click("#run")
    # No WhatsApp credentials here: it runs at once and ends dead, instead of in an hour.
    ran = service.wait_for(later["id"], lambda s: s["status"] == "dead")
    assert len(ran["attempts"]) == 1
    page.click("#refresh")
    expect(page.locator("#detail-status")).to_have_text("dead")
    expect(page.locator("#run")).to_be_hidden()
    ran_at = local_time(page, ran["attempts"][0]["scheduled_for"])  # the time the run-now set
    expect(page.locator("#message")).to_have_text(f"Schedule {later['id']}: set to run now, due at {ran_at}.")


def test_a_recurring_schedule_paused_by_its_failures_says_why(page: Page, service: Service) -> None:
    # No WhatsApp credentials here: every occurrence ends dead, so the first one pauses it.
    created = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "every 1 seconds", "pause_after_failures": 1, "run_timeout_seconds": 90})
    assert created.status_code == 201, created.text
    paused = service.wait_for(created.json()["id"], lambda s: s["status"] == "paused")
    assert paused["failed_in_a_row"] == 1 and len(paused["attempts"]) == 1
    sign_in(page)
    row(page, paused["id"]).click()
    expect(page.locator("#detail-status")).to_have_text("paused")
    expect(page.locator("#detail-fields")).to_contain_text("1 occurrence(s) ended dead (paused at 1)")
    expect(page.locator("#detail-fields")).to_contain_text("run time limit90 s")  # <dt>, then <dd>
    expect(page.locator("#events tbody td.type").last).to_have_text("paused")
    expect(page.locator("#events tbody tr").last).to_contain_text("pause_after_failures 1")
    expect(page.locator("#resume")).to_be_visible()
    time.sleep(1.5)  # occurrences fall due meanwhile: none runs
    assert len(service.get(paused["id"])["attempts"]) == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#detail-status")).to_have_text("cancelled")


def test_a_recurring_schedule_is_moved_to_another_rule(page: Page, service: Service) -> None:
    created = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "every day at 09:00", "timezone": "America/Sao_Paulo"}).json()
    sign_in(page)
    page.fill("#open-id", created["id"])
    page.click("#open")
    expect(page.locator("#move-to")).to_have_attribute("placeholder", "every day at 10:00")
    page.fill("#move-to", "every monday at 07:15")
    page.click("#move")
    expect(page.locator("#message")).to_contain_text("moved")
    assert service.get(created["id"])["schedule"] == "weekly on monday at 07:15"
    first = page.locator("#message").inner_text()
    # Any rule the API takes: a monthly one, its next runs shown on the 1st and each month's last day.
    page.fill("#move-to", "every month on 1st, last at 08:30")
    page.click("#move")
    # The second move's message (another next run): not the first's, still shown until it answers.
    expect(page.locator("#message")).not_to_have_text(first)
    expect(page.locator("#message")).to_contain_text("moved")
    assert service.get(created["id"])["schedule"] == "monthly on 1,last at 08:30"
    expected = service.http.get(f"/v1/schedules/{created['id']}/upcoming", params={"count": 5}).json()["runs"]
    assert {int(run["local"][8:10]) for run in expected} - {1} <= {28, 29, 30, 31}
    expect(page.locator("#next-runs td.local")).to_contain_text(
        [f"{run['local'][:10]} 08:30:00 -03:00" for run in expected])


def test_a_schedule_s_next_runs_are_shown_in_its_zone_and_in_utc(browser: Browser, service: Service) -> None:
    created = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"},
        "schedule": "every monday at 09:00", "timezone": "America/Sao_Paulo"}).json()
    expected = service.http.get(f"/v1/schedules/{created['id']}/upcoming", params={"count": 5}).json()["runs"]
    # In a browser in another zone: the runs are shown in the schedule's own.
    with signed_in_in_tokyo(browser, service) as page:
        page.fill("#open-id", created["id"])
        page.click("#open")
        expect(page.locator("#next-runs-zone")).to_have_text("in America/Sao_Paulo")
        expect(page.locator("#next-runs tbody tr")).to_have_count(5)
        locals_ = page.locator("#next-runs td.local")
        expect(locals_).to_have_text([f"Mon {run['local'][:10]} 09:00:00 -03:00" for run in expected])
        expect(page.locator("#next-runs td.utc")).to_have_text(
            [f"{run['at'][:10]} 12:00:00Z" for run in expected])
        assert locals_.first.locator("time").get_attribute("datetime") == created["next_run_at"] == expected[0]["at"]
        expect(page.locator("#next-runs-note")).to_have_text("")

        page.click("#pause")  # paused: what a resume now would do
        expect(page.locator("#next-runs-note")).to_have_text("(if resumed now)")
        expect(page.locator("#next-runs tbody tr")).to_have_count(5)
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cancel")  # ended: no next runs, and none asked for
        expect(page.locator("#detail-status")).to_have_text("cancelled")
        expect(page.locator("#next-runs-section")).to_be_hidden()
        with page.expect_response(lambda response: response.url.endswith("/events")):
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            page.click("#refresh")
        page.wait_for_timeout(200)
        assert not any("/upcoming" in url for url in asked), asked


def test_a_one_off_shows_its_one_run(page: Page, service: Service) -> None:
    later = service.later()
    sign_in(page)
    row(page, later["id"]).click()
    expect(page.locator("#next-runs tbody tr")).to_have_count(1)
    at = datetime.fromisoformat(later["next_run_at"])
    local = at.astimezone(ZoneInfo("America/Sao_Paulo"))  # the seed's clients send milliseconds
    millis = f".{local.microsecond // 1000:03d}" if local.microsecond >= 1000 else ""
    expect(page.locator("#next-runs td.local")).to_have_text(local.strftime(f"%a %Y-%m-%d %H:%M:%S{millis} -03:00"))
    expect(page.locator("#next-runs td.utc")).to_have_text(at.strftime(f"%Y-%m-%d %H:%M:%S{millis or '.000'}Z")
                                                            .replace(".000Z", "Z"))
    expect(page.locator("#next-runs-none")).to_be_hidden()


class SlowReceiver:
    """A local HTTP endpoint that holds every request for ``hold`` seconds before answering 200."""

    def __init__(self, hold: float) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.arrived.set()
                time.sleep(hold)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.arrived = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_recurring_schedule_can_be_cancelled_while_it_runs(page: Page, service: Service) -> None:
    receiver = SlowReceiver(hold=60)  # the run lasts the whole test
    try:
        start = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        created = service.http.post("/v1/schedules", json={
            "task": {"type": "http.request", "method": "POST", "url": receiver.url, "timeout_seconds": 30},
            "schedule": f"every 1 hour from {start}"})
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]
        assert receiver.arrived.wait(15)
        service.wait_for(schedule_id, lambda s: s["status"] == "running")
        sign_in(page)
        page.fill("#open-id", schedule_id)
        page.click("#open")
        expect(page.locator("#detail-status")).to_have_text("running")
        owner = service.get(schedule_id)["running"]["owner"]
        expect(page.locator("#detail-fields")).to_contain_text(f"running on{owner}")  # <dt>, then <dd>
        expect(page.locator("#cancel")).to_be_visible(timeout=3000)  # while it runs, not once it ended
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cancel", timeout=3000)
        expect(page.locator("#detail-status")).to_have_text("cancelled")
        cancelled = service.get(schedule_id)
        assert cancelled["status"] == "cancelled" and cancelled["attempts"] == []  # the run had not ended
    finally:
        receiver.close()


def test_a_failed_webhook_delivery_says_why(page: Page, service: Service) -> None:
    # No CRONJOB_WEBHOOK_SECRET here: every delivery fails with webhook_secret_missing.
    dead = service.dead(callback_url="https://hooks.example/status")

    def failed_delivery() -> bool:
        events = service.http.get(f"/v1/schedules/{dead['id']}/events").json()["items"]
        return any(d.get("last_error_code") == "webhook_secret_missing" for e in events for d in e["deliveries"])

    assert wait_until(failed_delivery, timeout=15)
    sign_in(page)
    row(page, dead["id"]).click()
    expect(page.locator("#events tbody")).to_contain_text("webhook_secret_missing")
    # A refresh leaves a selection in the (unchanged) payload alone: it can be copied.
    page.evaluate("""() => { const range = document.createRange();
        range.selectNodeContents(document.querySelector("#detail-payload"));
        getSelection().removeAllRanges(); getSelection().addRange(range); }""")
    with page.expect_response(lambda response: response.url.endswith("/events")):
        page.click("#refresh")
    page.wait_for_timeout(200)  # the answer is written into the page
    assert page.evaluate("() => getSelection().toString()").startswith("{")


def _select_text(page: Page, selector: str) -> None:
    """Select the text of the first element ``selector`` finds, as a mouse drag over it would."""
    page.evaluate("""(selector) => { const range = document.createRange();
        range.selectNodeContents(document.querySelector(selector));
        getSelection().removeAllRanges(); getSelection().addRange(range); }""", selector)


def _next_refresh(page: Page) -> None:
    """Wait for the page's own refresh (every 5 s) to read the open detail again and show it."""
    with page.expect_response(lambda response: response.url.endswith("/events")):
        pass
    page.wait_for_timeout(300)  # the answers are written into the page


def test_a_refresh_keeps_the_keyboard_s_focus_and_a_text_selection(page: Page, service: Service) -> None:
    """Every 5 s the page reads the list and the detail again: a row that did not change stays the
    same element, so the row the keyboard is on keeps the focus (Enter still opens it) and a text
    being copied stays selected; a row that changed hands the focus to its new self."""
    user = "dashboard-focus"
    first, second = service.later(userId=user), service.later(userId=user)
    sign_in(page)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(2)
    row(page, first["id"]).click()
    expect(page.locator("#detail-fields")).to_contain_text(first["to"])
    row_button(page, second["id"]).focus()
    _select_text(page, "#detail-fields dd:nth-of-type(2)")  # its rule, being copied
    _next_refresh(page)
    assert page.evaluate("document.activeElement.closest('tr').dataset.id") == second["id"]
    assert page.evaluate("getSelection().toString()") == first["schedule"]

    assert service.http.post(f"/v1/schedules/{second['id']}/pause").status_code == 200
    _select_text(page, f'#schedules tbody tr[data-id="{first["id"]}"] td.id')
    _next_refresh(page)
    expect(row(page, second["id"]).locator("td.status")).to_have_text("paused")
    assert page.evaluate("document.activeElement.closest('tr').dataset.id") == second["id"]
    assert page.evaluate("getSelection().toString()") == first["id"]
    page.keyboard.press("Enter")
    expect(page.locator("#detail-id")).to_have_text(second["id"])


def test_a_phone_s_width_scrolls_tables_not_the_page(browser: Browser, service: Service) -> None:
    dead = service.dead()
    with signed_in(browser, service, viewport={"width": 375, "height": 740}) as phone:
        expect(row(phone, dead["id"])).to_have_count(1)
        widths = "() => [document.documentElement.scrollWidth, window.innerWidth]"
        page_width, viewport = phone.evaluate(widths)
        assert page_width <= viewport, (page_width, viewport)
        phone.click("#by-type-section summary")  # a column per status
        expect(phone.locator("#by-type tbody tr").first).to_be_visible()
        page_width, viewport = phone.evaluate(widths)
        assert page_width <= viewport, (page_width, viewport)
        row(phone, dead["id"]).click()
        expect(phone.locator("#detail-status")).to_have_text("dead")
        page_width, viewport = phone.evaluate(widths)
        assert page_width <= viewport, (page_width, viewport)


def test_a_long_label_or_error_does_not_push_the_last_error_out_of_sight(browser: Browser, service: Service) -> None:
    """A label value without a space (256 characters, as the API allows) breaks in its cell, as an
    error would: the list fits a laptop's width, each row's last error in sight beside it."""
    user = "dashboard-wide"
    dead = service.dead(userId=user)
    created = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá"}, "schedule": "daily at 10:00",
        "userId": user, "labels": {"trace": "x" * 256}})
    assert created.status_code == 201, created.text
    with signed_in(browser, service, viewport={"width": 1280, "height": 800}) as laptop:
        laptop.fill("#user-filter", user)
        laptop.press("#user-filter", "Enter")
        expect(laptop.locator("#schedules tbody tr")).to_have_count(2)
        expect(row(laptop, dead["id"]).locator("td.error")).to_contain_text("not_configured")
        box = laptop.evaluate("() => { const box = document.querySelector('#schedules').parentElement;"
                              " return [box.scrollWidth, box.clientWidth]; }")
        assert box[0] <= box[1], box
        error = row(laptop, dead["id"]).locator("td.error").bounding_box()
        assert error is not None and error["x"] + error["width"] <= 1280, error
        assert error["width"] >= 150, error  # not squeezed to a letter a line


def _lines(page: Page, selector: str) -> list[str]:
    """The text of the first element ``selector`` finds, line by line as the browser lays it out."""
    lines: list[str] = page.evaluate("""(selector) => {
        const lines = [];
        let top = null;
        const texts = document.createTreeWalker(document.querySelector(selector), NodeFilter.SHOW_TEXT);
        for (let text = texts.nextNode(); text; text = texts.nextNode()) {
            for (let i = 0; i < text.length; i++) {
                const range = document.createRange();
                range.setStart(text, i);
                range.setEnd(text, i + 1);
                const box = range.getClientRects()[0];  // none: a space collapsed at a line's end
                if (box && top !== null && box.top > top + 2) lines.push("");
                if (box) top = box.top;
                if (!lines.length) lines.push("");
                lines[lines.length - 1] += text.data[i];
            }
        }
        return lines; }""", selector)
    return lines


def _wrapped_at_label_parts(page: Page, selector: str, text: str) -> list[str]:
    """The lines of the labels ``selector`` shows, each checked to end between labels or after a
    part (``=``, ``-``, ``.``, ``/``, ``_``, ``:``), never mid-word; their text, and a selection of
    them (what is copied), ``text`` as it is, no break character added."""
    lines = _lines(page, selector)
    assert "".join(lines) == text, lines
    _select_text(page, selector)
    assert page.evaluate("getSelection().toString()") == text  # copied as it is
    assert all(line.rstrip()[-1] in ",=-./_:" for line in lines[:-1]), lines
    return lines


def test_labels_wrap_between_labels_and_their_parts_not_mid_word(browser: Browser, service: Service) -> None:
    """A narrow labels cell wraps between labels, or after a ``=``, ``-``, ``.``, ``/``, ``_`` or ``:``
    in one, never mid-word (``corporation.interna`` / ``tional``); the text, read out or copied, is
    the labels' as they are."""
    labels = {"customer": "acme-corporation.international", "order": "dash-123456",
              "region": "eu-west.example", "team": "billing/reminders_2030", "kind": "reminder"}
    created = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá"}, "schedule": "daily at 10:00",
        "userId": "dashboard-wrap", "labels": labels})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    text = ", ".join(f"{key}={value}" for key, value in labels.items())
    with signed_in(browser, service, viewport={"width": 1280, "height": 800}) as laptop:
        laptop.fill("#user-filter", "dashboard-wrap")
        laptop.press("#user-filter", "Enter")
        cell = row(laptop, schedule_id).locator("td.labels")
        expect(cell).to_have_text(text)
        selector = f'#schedules tbody tr[data-id="{schedule_id}"] td.labels'
        assert chromium_name(laptop, selector) == text  # read as it is (not "dash- 123456")
        lines = _wrapped_at_label_parts(laptop, selector, text)
        assert len(lines) > 3, lines  # narrow: it wraps


def test_a_schedule_s_labels_wrap_at_their_parts_in_its_detail_at_320_px_too(browser: Browser,
                                                                            service: Service) -> None:
    """The labels in a schedule's detail wrap as the list's do: between labels or at their parts,
    not mid-word, also at 320 px wide (WCAG's reflow), where the detail is one column; read out
    and copied as they are. A part wider than the window (a 256-character value) still breaks,
    rather than widen the page."""
    # A value without a space or a hyphen, wider than the window (the browser's own breaks are
    # at spaces and after hyphens): where may it end a line?
    labels = {"customer": "acme-corporation.international", "path": "/srv/billing/reminders_2030/daily_summary.csv",
              "kind": "reminder"}
    created = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá"}, "schedule": "daily at 10:00",
        "labels": labels})
    assert created.status_code == 201, created.text
    wide = service.http.post("/v1/schedules", json={
        "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá"}, "schedule": "daily at 10:00",
        "labels": {"trace": "x" * 256}})
    assert wide.status_code == 201, wide.text
    text = ", ".join(f"{key}={value}" for key, value in labels.items())
    with signed_in(browser, service, viewport={"width": 320, "height": 640}) as phone:
        phone.uncheck("#auto-refresh")
        phone.fill("#open-id", created.json()["id"])
        phone.press("#open-id", "Enter")
        shown = phone.locator("#detail-fields dt", has_text="labels")
        expect(shown).to_have_count(1)
        place = phone.locator("#detail-fields dt").evaluate_all(
            "terms => terms.findIndex((term) => term.textContent === 'labels')") + 1
        selector = f"#detail-fields dd:nth-of-type({place})"
        expect(phone.locator(selector)).to_have_text(text)
        assert chromium_text(phone, selector) == text  # read as it is
        lines = _wrapped_at_label_parts(phone, selector, text)
        assert len(lines) > 2, lines  # narrow: it wraps
        assert violations(phone) == ""

        phone.fill("#open-id", wide.json()["id"])
        phone.press("#open-id", "Enter")
        expect(phone.locator("#detail-fields")).to_contain_text("trace=" + "x" * 256)
        width = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width


def test_data_is_shown_as_text_never_as_markup(page: Page, service: Service) -> None:
    markup = '<img src=x onerror="window.pwned=1">'
    later = service.later(body=f"Olá, {{{{1}}}}! {markup}", params=["Leandro"], userId="<b>bold</b>")
    sign_in(page)
    row(page, later["id"]).click()
    expect(page.locator("#detail-fields")).to_contain_text(f"Olá, Leandro! {markup}")
    expect(page.locator("#detail-fields")).to_contain_text("<b>bold</b>")
    assert page.locator("img, b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_the_type_filter_and_its_own_jobs(page: Page, service: Service) -> None:
    text = service.later(type="text", templateName=None)
    template = service.later()
    sign_in(page)
    expect(row(page, template["id"])).to_be_visible()
    page.select_option("#type-filter", "whatsapp.text")
    expect(row(page, template["id"])).to_have_count(0)
    expect(row(page, text["id"])).to_be_visible()
    assert set(page.locator("#schedules tbody td.type").all_text_contents()) == {"whatsapp.text"}
    # The counts follow the type (read again within 2 s + the 5 s refresh).
    expect(page.locator("#total")).to_have_text(str(_count(service, None, "whatsapp.text")))
    expect(page.locator('.count[data-status="scheduled"] .n')).to_have_text(
        str(_count(service, "scheduled", "whatsapp.text")))
    page.click("#by-type-section summary")  # a type's row in the counts is the same filter
    page.click('#by-type tbody tr[data-type="whatsapp.template"]')
    expect(page.locator("#type-filter")).to_have_value("whatsapp.template")
    expect(row(page, text["id"])).to_have_count(0)
    expect(row(page, template["id"])).to_be_visible()
    # The service's own jobs are one of the types to pick.
    assert {"webhook.delivery", "whatsapp.status"} <= set(page.locator("#type-filter option").all_text_contents())


def test_the_user_filter(page: Page, service: Service, page_errors: list[str]) -> None:
    ana = service.later(userId="dashboard-ana")
    other = service.later()
    sign_in(page)
    expect(row(page, other["id"])).to_be_visible()
    page.fill("#user-filter", " dashboard-ana ")  # spaces around a pasted id do not count
    page.press("#user-filter", "Enter")
    expect(row(page, other["id"])).to_have_count(0)
    expect(page.locator("#schedules tbody tr")).to_have_count(1)
    expect(row(page, ana["id"])).to_be_visible()
    expect(page.locator("#user-filter")).to_have_value("dashboard-ana")
    page.fill("#user-filter", "nobody-at-all")
    page.click("#user-apply")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#cancel-user")).to_be_visible()  # for the user shown
    page.fill("#user-filter", "")  # empty: anyone's again
    page.press("#user-filter", "Enter")
    expect(row(page, other["id"])).to_be_visible()
    expect(row(page, ana["id"])).to_be_visible()
    expect(page.locator("#cancel-user")).to_be_hidden()  # never everyone's
    assert page_errors == []


def test_an_empty_list_or_one_not_loaded_shows_no_range(page: Page, service: Service,
                                                       page_errors: list[str]) -> None:
    """"No schedules match." stands alone (not beside "0–0"); a list that could not be loaded
    shows no rows, no range and no "No schedules match.": the message says what went wrong."""
    alone = service.later(userId="dashboard-alone")
    sign_in(page)
    page.uncheck("#auto-refresh")
    page.fill("#user-filter", "nobody-at-all")
    page.press("#user-filter", "Enter")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#page")).to_have_text("")
    page.fill("#user-filter", "dashboard-alone")
    page.press("#user-filter", "Enter")
    expect(row(page, alone["id"])).to_be_visible()
    expect(page.locator("#page")).to_have_text("1–1")
    expect(page.locator("#empty")).to_be_hidden()
    page.fill("#user-filter", "nobody-at-all")
    page.press("#user-filter", "Enter")
    expect(page.locator("#empty")).to_be_visible()
    bad_gateway = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    page.route(lambda url: "/v1/schedules?" in url,
               lambda route: route.fulfill(status=502, content_type="text/html", body=bad_gateway))
    page.click("#refresh")
    expect(page.locator("#message")).to_have_text("Bad Gateway (502)")
    expect(page.locator("#empty")).to_be_hidden()  # not known to be empty
    page.unroute_all()
    page.fill("#user-filter", "dashboard-alone")
    page.press("#user-filter", "Enter")
    expect(page.locator("#page")).to_have_text("1–1")
    page.route(lambda url: "/v1/schedules?" in url,
               lambda route: route.fulfill(status=502, content_type="text/html", body=bad_gateway))
    page.click("#refresh")
    expect(page.locator("#message")).to_have_text("Bad Gateway (502)")
    expect(page.locator("#schedules tbody tr")).to_have_count(0)
    expect(page.locator("#page")).to_have_text("")  # no rows shown: no range
    refused = [error for error in page_errors if "status of 502" in error]
    assert len(refused) == 2  # Chromium logs each error page itself
    for error in refused:
        page_errors.remove(error)


def test_all_of_a_user_s_schedules_are_cancelled_from_the_filter(page: Page, service: Service,
                                                                 page_errors: list[str]) -> None:
    first, second = service.later(userId="dashboard-bia"), service.later(userId="dashboard-bia")
    other = service.later()
    sign_in(page)
    page.fill("#user-filter", "dashboard-bia")
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(2)
    asked: list[str] = []

    def answer(accept: bool) -> Callable[[Dialog], None]:
        def handle(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    page.once("dialog", answer(False))  # not confirmed: nothing happens
    page.click("#cancel-user")
    expect(page.locator("#schedules tbody td.status")).to_have_text(["scheduled", "scheduled"])
    page.once("dialog", answer(True))
    page.click("#cancel-user")
    expect(page.locator("#message")).to_have_text("User dashboard-bia: 2 schedule(s) cancelled.")
    expect(page.locator("#schedules tbody td.status")).to_have_text(["cancelled", "cancelled"])
    assert asked == ["Cancel every live schedule of user dashboard-bia? This cannot be undone."] * 2
    for schedule, status in ((first, "cancelled"), (second, "cancelled"), (other, "scheduled")):
        assert service.get(schedule["id"])["status"] == status
    assert page_errors == []


def test_labels_are_shown_filtered_by_and_their_schedules_cancelled(page: Page, service: Service,
                                                                     page_errors: list[str]) -> None:
    def labelled(labels: dict[str, str]) -> dict[str, Any]:
        response = service.http.post("/v1/schedules", json={
            "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "labels": labels,
            "schedule": f"once @ {(datetime.now(UTC) + timedelta(hours=1)).isoformat()}"})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    first, second = labelled({"order": "dash-1", "kind": "reminder"}), labelled({"order": "dash-1", "kind": "reminder"})
    receipt, other = labelled({"order": "dash-1", "kind": "receipt"}), service.later()
    sign_in(page)
    expect(row(page, first["id"]).locator("td.labels")).to_have_text("order=dash-1, kind=reminder")
    expect(row(page, other["id"]).locator("td.labels")).to_have_text("")
    page.fill("#label-filter", " order=dash-1 ,kind=reminder, ")  # spaces and a trailing comma do not count
    page.press("#label-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(2)
    expect(row(page, receipt["id"])).to_have_count(0)
    expect(page.locator("#label-filter")).to_have_value("order=dash-1, kind=reminder")
    expect(page.locator("#cancel-user")).to_have_text("Cancel all matching")
    row(page, second["id"]).click()
    expect(page.locator("#detail-fields")).to_contain_text("labelsorder=dash-1, kind=reminder")
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#cancel-user")
    expect(page.locator("#message")).to_have_text("Labels order=dash-1, kind=reminder: 2 schedule(s) cancelled.")
    expect(page.locator("#schedules tbody td.status")).to_have_text(["cancelled", "cancelled"])
    assert asked == ["Cancel every live schedule of labels order=dash-1, kind=reminder? This cannot be undone."]
    for schedule, status in ((first, "cancelled"), (second, "cancelled"), (receipt, "scheduled"),
                             (other, "scheduled")):
        assert service.get(schedule["id"])["status"] == status
    page.fill("#label-filter", "order")  # not key=value: the API's 422 says why
    page.press("#label-filter", "Enter")
    expect(page.locator("#message")).to_contain_text("a label selector is key=value, not 'order'")
    expect(page.locator("#schedules tbody tr")).to_have_count(0)  # not the last filter's rows
    expect(page.locator("#cancel-user")).to_be_hidden()
    page.fill("#label-filter", "order=dash-1, order=dash-2")  # a key twice: refused, nothing to cancel
    page.press("#label-filter", "Enter")
    expect(page.locator("#message")).to_contain_text("the label 'order' is given twice")
    expect(page.locator("#schedules tbody tr")).to_have_count(0)
    expect(page.locator("#cancel-user")).to_be_hidden()
    assert service.get(receipt["id"])["status"] == "scheduled"
    page.fill("#label-filter", "")  # empty: any labels again, and no bulk cancel
    page.press("#label-filter", "Enter")
    expect(row(page, other["id"])).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()
    expect(page.locator("#cancel-user")).to_be_hidden()
    refused = [error for error in page_errors if "status of 422" in error]
    assert refused
    for error in refused:
        page_errors.remove(error)


def test_times_are_shown_in_the_browser_s_zone_and_say_so(browser: Browser, service: Service) -> None:
    later = service.later()
    with signed_in_in_tokyo(browser, service) as page:
        expect(page.locator("#zone option:checked")).to_have_text("Asia/Tokyo (this browser's zone)")
        shown = row(page, later["id"]).locator("td.next-run time")
        expect(shown).to_have_attribute("datetime", later["next_run_at"])
        tokyo = datetime.fromisoformat(later["next_run_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
        assert tokyo.strftime("%H:%M:%S") in (shown.text_content() or "")


def test_every_time_is_shown_as_its_utc_instant_at_a_key_press_and_stays_so(browser: Browser,
                                                                            service: Service) -> None:
    """The header's "Times in" shows every instant (the list's, a schedule's fields, its attempts,
    its events and their details, a bulk action's confirmation) as its UTC instant to the
    millisecond, as the API writes it: reached and changed with the keyboard and read out as text,
    which a tooltip is not. The choice is kept in this browser; the wall times of its next runs
    keep their offset."""
    user = "times-in-utc"
    dead = service.dead(userId=user)
    with signed_in_in_tokyo(browser, service) as page:
        page.fill("#user-filter", user)
        page.press("#user-filter", "Enter")
        expect(page.locator("#schedules tbody tr")).to_have_count(1)  # its times counted below
        page.fill("#open-id", dead["id"])
        page.press("#open-id", "Enter")
        expect(page.locator("#events tbody tr")).to_have_count(4)  # scheduled, started, failed, dead
        page.uncheck("#auto-refresh")  # shown again at once, not by the next refresh
        instants = page.locator("time.instant")
        local = instants.evaluate_all("times => times.map(t => t.textContent)")
        assert local == [page.evaluate("iso => new Date(iso).toLocaleString()", t)
                         for t in instants.evaluate_all("times => times.map(t => t.dateTime)")]
        expect(page.locator("#zone")).to_have_accessible_name("Times in")
        page.focus("#zone")
        page.keyboard.press("ArrowDown")  # a closed select takes its next option at once
        expect(page.locator("#zone")).to_have_value("UTC")
        expect(row(page, dead["id"]).locator("td.created")).to_have_text(dead["created_at"])
        attempt = dead["attempts"][0]
        expect(page.locator("#attempts tbody td").nth(4)).to_have_text(attempt["finished_at"])
        expect(page.locator("#detail-fields time")).to_have_text(
            [dead["send_at"], dead["created_at"], dead["updated_at"]])
        assert len(local) == instants.count() > 8
        assert instants.evaluate_all(
            "times => times.filter(t => t.textContent !== new Date(t.dateTime).toISOString())") == []
        page.select_option("#changed-filter", "hour")
        confirmed = accepting(page)
        with page.expect_request(lambda request: request.url.endswith("/v1/schedules:cancel")) as cancel:
            page.click("#cancel-user")
        since = cancel.value.post_data_json["updated_after"]
        assert confirmed == [f"Cancel every live schedule of user {user} changed since {since}? This cannot be undone."]

        page.reload()  # kept
        expect(page.locator("#zone")).to_have_value("UTC")
        expect(row(page, dead["id"]).locator("td.created")).to_have_text(dead["created_at"])
        page.focus("#zone")
        page.keyboard.press("ArrowUp")
        expect(row(page, dead["id"]).locator("td.created")).to_have_text(local_time(page, dead["created_at"]))


def test_times_in_an_event_s_details_are_shown_as_other_times(browser: Browser, service: Service) -> None:
    """An event's details that are instants (``next_run_at``, ``occurrence``, ``rescheduled_from``)
    are shown in the browser's zone with their UTC instant on hover, as its "at" is; the others
    stay text, also a reason that names an instant; who made the change (``by``, ``request_id``)
    is said in words, last: ``by token 3f2a9c1b7e4d (request ...)``."""
    now = datetime.now(UTC)
    moved = service.later()
    to = (now + timedelta(hours=2)).isoformat(timespec="milliseconds")
    patched = service.http.patch(f"/v1/schedules/{moved['id']}", json={"send_at": to})
    assert patched.status_code == 200
    events = service.http.get(f"/v1/schedules/{moved['id']}/events").json()["items"]
    assert [e["type"] for e in events] == ["scheduled", "scheduled"]
    assert list(events[1]["data"]) == ["next_run_at", "rescheduled_from", "by", "request_id"]
    instants = [events[0]["data"]["next_run_at"], events[1]["data"]["next_run_at"],
                events[1]["data"]["rescheduled_from"]]
    # Too late to run once resumed: missed, "not run by its send_by deadline <instant>".
    late = service.message(now + timedelta(seconds=2), send_by=(now + timedelta(seconds=3)).isoformat())
    assert service.http.post(f"/v1/schedules/{late['id']}/pause").status_code == 200
    assert wait_until(lambda: datetime.now(UTC) > now + timedelta(seconds=3.1), timeout=10)
    assert service.http.post(f"/v1/schedules/{late['id']}/resume").status_code == 200
    reason = service.wait_for(late["id"], lambda s: s["status"] == "missed")["last_error"]["message"]
    assert reason.startswith("not run by its send_by deadline ") and reason.endswith("Z")
    with signed_in_in_tokyo(browser, service) as page:
        page.fill("#open-id", moved["id"])
        page.click("#open")
        details = page.locator("#events tbody td.details")
        expect(details).to_have_count(2)
        shown = details.locator("time")
        expect(shown).to_have_count(3)
        assert shown.evaluate_all("times => times.map(t => t.dateTime)") == instants
        assert shown.evaluate_all("times => times.map(t => t.title)") == instants  # the UTC instant on hover
        expect(shown).to_have_text([local_time(page, instant) for instant in instants])
        # Who moved it, in words: "by token 3f2a9c1b7e4d", not "by equals token colon 3f2a...".
        fingerprint = by(TOKEN).removeprefix("token:")
        expect(details.last).to_have_text(f"next_run_at={local_time(page, instants[1])}, "
                                          f"rescheduled_from={local_time(page, instants[2])}, by token {fingerprint} "
                                          f"(request {patched.headers['X-Request-ID']})")
        assert violations(page) == ""
        tokyo = datetime.fromisoformat(instants[0]).astimezone(ZoneInfo("Asia/Tokyo"))
        assert tokyo.strftime("%H:%M:%S") in (shown.first.text_content() or "")

        page.fill("#open-id", late["id"])
        page.click("#open")
        expect(page.locator("#events tbody td.type")).to_have_text(
            ["scheduled", "paused", "resumed", "missed"])
        missed = page.locator("#events tbody tr").last.locator("td.details")
        expect(missed).to_have_text(f"reason={reason}")  # an instant inside a text is text
        expect(missed.locator("time")).to_have_count(0)
        resumed = page.locator("#events tbody tr", has=page.locator("td.type", has_text="resumed"))
        expect(resumed.locator("td.details time")).to_have_count(1)  # its next_run_at


def test_the_times_in_an_action_s_outcome_follow_times_in_too(browser: Browser, service: Service) -> None:
    """An action's outcome names a time (``resumed, due at ...``, a move's next run, a bulk
    action's window): shown as every other time is, and in the other form at once when "Times in"
    changes, the outcome still said (in its polite live region) as it was."""
    user = "times-in-outcomes"
    later = service.later(userId=user)
    with signed_in_in_tokyo(browser, service) as page:
        page.uncheck("#auto-refresh")
        page.fill("#user-filter", user)
        page.press("#user-filter", "Enter")
        row(page, later["id"]).click()
        page.click("#pause")
        expect(page.locator("#detail-status")).to_have_text("paused")
        page.click("#resume")
        said = page.locator("#message").get_by_role("status")
        due = later["next_run_at"]
        expect(said).to_have_text(f"Schedule {later['id']}: resumed, due at {local_time(page, due)}.")
        page.select_option("#zone", "UTC")
        expect(said).to_have_text(f"Schedule {later['id']}: resumed, due at {due}.")
        expect(said.locator("time")).to_have_attribute("title", local_time(page, due))  # the other form on hover

        target = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        page.fill("#move-to", target.isoformat())
        page.press("#move-to", "Enter")
        expect(said).to_contain_text("moved; next run")  # the move answered: read it
        moved = service.get(later["id"])["next_run_at"]
        expect(said).to_have_text(f"Schedule {later['id']}: moved; next run {moved}.")
        page.select_option("#zone", "local")
        expect(said).to_have_text(f"Schedule {later['id']}: moved; next run {local_time(page, moved)}.")

        page.select_option("#changed-filter", "hour")
        accepting(page)
        with page.expect_request(lambda request: request.url.endswith("/v1/schedules:pause")) as pause:
            page.click("#pause-matching")
        since = pause.value.post_data_json["updated_after"]
        expect(said).to_have_text(f"User {user} changed since {local_time(page, since)}: 1 schedule(s) paused.")
        page.focus("#zone")
        page.keyboard.press("ArrowDown")
        expect(said).to_have_text(f"User {user} changed since {since}: 1 schedule(s) paused.")
        expect(page.locator("#message").get_by_role("alert")).to_have_text("")


def test_the_header_s_updated_clock_follows_times_in_and_says_its_zone(browser: Browser, service: Service) -> None:
    """The header's "updated" clock is a time like the others: a time of day in the browser's zone
    with that zone said, or in UTC once "Times in" says so (at once, and at every refresh after),
    not the browser's zone beside times in UTC."""
    service.later()
    with signed_in_in_tokyo(browser, service) as page:
        page.uncheck("#auto-refresh")
        clock = page.locator("#last-updated time")
        expect(clock).to_have_count(1)
        first = clock.get_attribute("datetime") or ""
        at = datetime.fromisoformat(first)
        tokyo = at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M:%S")
        expect(page.locator("#last-updated")).to_have_text(f"updated {tokyo} GMT+9")
        expect(clock).to_have_attribute("title", f"{at.astimezone(UTC):%H:%M:%S} UTC")  # the other form on hover
        assert violations(page) == ""
        page.focus("#zone")
        page.keyboard.press("ArrowDown")
        expect(page.locator("#last-updated")).to_have_text(f"updated {at.astimezone(UTC):%H:%M:%S} UTC")
        expect(clock).to_have_attribute("title", f"{tokyo} GMT+9")
        page.click("#refresh")
        expect(clock).not_to_have_attribute("datetime", first)
        later = datetime.fromisoformat(clock.get_attribute("datetime") or "")
        expect(page.locator("#last-updated")).to_have_text(f"updated {later.astimezone(UTC):%H:%M:%S} UTC")
        assert violations(page) == ""


def list_queries(page: Page) -> list[dict[str, list[str]]]:
    """The query of every list the page asks for from now on."""
    queries: list[dict[str, list[str]]] = []
    page.on("request", lambda request: queries.append(parse_qs(urlsplit(request.url).query))
            if "/v1/schedules?" in request.url else None)
    return queries


def ids(page: Page) -> list[str]:
    """The ids of the rows the list shows, in order."""
    shown: list[str] = page.locator("#schedules tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return shown


def test_paging_and_a_page_that_empties(page: Page, service: Service) -> None:
    for _ in range(51 - _count(service, "scheduled", "whatsapp.template")):
        service.later()
    total = _count(service, "scheduled", "whatsapp.template")
    queries = list_queries(page)
    sign_in(page)
    page.select_option("#status-filter", "scheduled")
    page.select_option("#type-filter", "whatsapp.template")
    expect(page.locator("#next")).to_be_enabled()  # once this filter's list came
    expect(page.locator("#schedules tbody tr")).to_have_count(50)
    expect(page.locator("#page")).to_have_text("1–50")
    expect(page.locator("#prev")).to_be_disabled()
    first_page = ids(page)
    with page.expect_response(lambda response: "cursor=" in response.url) as older:
        page.click("#next")
    expect(page.locator("#page")).to_have_text(f"51–{total}")
    expect(page.locator("#prev")).to_be_enabled()
    expect(page.locator("#next")).to_be_disabled()  # no empty page behind the last one
    # Page 2 is the one after page 1's last row, asked for by the cursor page 1 was answered with.
    answered = [q for q in queries if "cursor" not in q][-1]
    assert parse_qs(urlsplit(older.value.url).query)["cursor"] == [_next_cursor(service, answered)]
    assert not any("offset" in q for q in queries)
    for schedule_id in ids(page):  # the last page empties (cancelled elsewhere): back to the one before
        assert service.http.delete(f"/v1/schedules/{schedule_id}").status_code == 200
    page.click("#refresh")
    expect(page.locator("#page")).to_have_text("1–50")
    expect(page.locator("#empty")).to_be_hidden()
    expect(page.locator("#prev")).to_be_disabled()
    expect(page.locator("#next")).to_be_disabled()
    assert ids(page) == first_page


def _next_cursor(service: Service, query: dict[str, list[str]]) -> str:
    """The ``next_cursor`` the API answers the page of ``query`` with now."""
    answer = service.http.get("/v1/schedules", params=query)
    assert answer.status_code == 200, answer.text
    return answer.json()["next_cursor"]  # type: ignore[no-any-return]


def test_a_page_keeps_its_rows_while_newer_schedules_come(page: Page, service: Service) -> None:
    """Each refresh reads page 2 again from its own cursor: schedules made meanwhile go on page 1
    and move none of its rows (by offset, each new one pushed a row of page 1 onto it)."""
    user = "dashboard-steady"
    made = [service.later(userId=user) for _ in range(55)]
    queries = list_queries(page)
    sign_in(page)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#next")).to_be_enabled()
    page.click("#next")
    expect(page.locator("#page")).to_have_text("51–55")
    oldest = [s["id"] for s in reversed(made[:5])]
    expect(page.locator("#schedules tbody td.id")).to_have_text(oldest)
    newer = [service.later(userId=user) for _ in range(3)]
    # One of its rows changes too: shown once the refresh has read the page again.
    assert service.http.post(f"/v1/schedules/{oldest[0]}/pause").status_code == 200
    page.click("#refresh")
    expect(row(page, oldest[0]).locator("td.status")).to_have_text("paused")
    expect(page.locator("#schedules tbody td.id")).to_have_text(oldest)
    expect(page.locator("#page")).to_have_text("51–55")
    page.click("#prev")  # page 1 is read again too: the new ones are on it
    expect(page.locator("#page")).to_have_text("1–50")
    expect(page.locator("#prev")).to_be_disabled()
    expect(page.locator("#schedules tbody td.id").first).to_have_text(newer[-1]["id"])
    page.click("#next")  # and after it, all that follows it now
    expect(page.locator("#page")).to_have_text("51–58")
    assert ids(page) == [s["id"] for s in reversed(made[:8])]
    assert not any("offset" in q for q in queries)


def test_a_list_answered_for_the_filter_before_is_not_taken_for_the_new_one(page: Page, service: Service) -> None:
    """The Due filter changes while a refresh reads the list: that answer is not shown, nor its
    next_cursor offered (one of the other order: asked with, a 422); the new filter's list is read."""
    user = "dashboard-held"
    for _ in range(51):
        service.later(userId=user)
    sign_in(page)
    page.uncheck("#auto-refresh")
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#next")).to_be_enabled()
    held: list[Any] = []
    page.route(lambda url: "/v1/schedules?" in url, lambda route: held.append(route))
    page.click("#refresh")
    _wait_for(page, lambda: len(held) == 1)
    page.select_option("#due-filter", "day")
    held[0].continue_()
    _wait_for(page, lambda: len(held) == 2)  # asked once the first answer was handled
    assert "due_after" in parse_qs(urlsplit(held[1].request.url).query)
    assert page.locator("#next").is_disabled()
    held[1].continue_()
    page.unroute_all()
    expect(page.locator("#next")).to_be_enabled()
    page.click("#next")
    expect(page.locator("#page")).to_have_text("51–51")


def _wait_for(page: Page, condition: Callable[[], bool]) -> None:
    """Let the page run until ``condition`` holds (events such as requests reach the test meanwhile)."""
    for _ in range(400):
        if condition():
            return
        page.wait_for_timeout(25)
    raise AssertionError("the page did not get there in 10 s")


def test_next_follows_has_more_not_a_full_page(page: Page, service: Service) -> None:
    user = "dashboard-fifty"
    for _ in range(50):
        service.later(userId=user)
    queries = list_queries(page)
    sign_in(page)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(50)
    expect(page.locator("#next")).to_be_disabled()  # a full page, and nothing after it
    assert queries and all(q["limit"] == ["50"] for q in queries)
    service.later(userId=user)
    page.click("#refresh")
    expect(page.locator("#next")).to_be_enabled()
    page.click("#next")
    expect(page.locator("#page")).to_have_text("51–51")
    expect(page.locator("#next")).to_be_disabled()
    page.select_option("#due-filter", "day")  # back to the first page, as any filter goes
    expect(page.locator("#page")).to_have_text("1–50")
    expect(page.locator("#next")).to_be_enabled()  # the window's own has_more
    page.click("#next")
    expect(page.locator("#page")).to_have_text("51–51")
    expect(page.locator("#next")).to_be_disabled()
    # The window's page 2, by a cursor of its own order (one of the list without it is a 422).
    assert "due_after" in queries[-1] and "cursor" in queries[-1] and "offset" not in queries[-1]
    page.click("#refresh")  # read again from its cursor, in a window that moved meanwhile
    expect(page.locator("#page")).to_have_text("51–51")


def _count(service: Service, status: str | None, task_type: str) -> int:
    """Counted off the list, which is never cached (the stats may be up to 2 s old)."""
    params = {"type": task_type, "limit": 500, **({"status": status} if status else {})}
    listed = service.http.get("/v1/schedules", params=params)
    return len(listed.json()["items"])


def test_signing_out_forgets_the_token_and_what_it_read(page: Page, service: Service) -> None:
    later = service.later()
    sign_in(page)
    expect(page.locator("#token")).to_have_value("")  # not left in the page
    expect(row(page, later["id"])).to_be_visible()
    page.reload()  # the token lasts as long as the tab
    expect(row(page, later["id"])).to_be_visible()
    row(page, later["id"]).click()
    expect(page.locator("#detail-id")).to_have_text(later["id"])
    page.fill("#open-id", later["id"])
    page.fill("#user-filter", "someone")
    page.select_option("#due-filter", "overdue")
    page.select_option("#changed-filter", "day")
    expect(page.locator("#order-note")).to_contain_text("soonest due first")
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('cronjob.token')") is None
    expect(page.locator("#token")).to_have_value("")
    expect(page.locator("#open-id")).to_have_value("")
    expect(page.locator("#user-filter")).to_have_value("")
    expect(page.locator("#due-filter")).to_have_value("")
    expect(page.locator("#changed-filter")).to_have_value("")
    expect(page.locator("#order-note")).to_have_text("newest first")
    for selector in ("#schedules tbody tr", "#by-type tbody tr", "#attempts tbody tr", "#events tbody tr",
                     "#detail-fields dd", "#next-runs tbody tr"):
        expect(page.locator(selector)).to_have_count(0)
    expect(page.locator("#detail-payload")).to_have_text("")
    page.click("#token-save")  # an empty field opens nothing
    expect(page.locator("#sign-in")).to_be_visible()
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()


def test_a_proxy_s_error_page_and_a_service_that_is_gone_are_said_plainly(
        browser: Browser, tmp_path: Path) -> None:
    """An answer that is no problem+json (an ingress's 502 page) is named by its status, not
    "Error (502): "; no answer at all (the service stopped) says so, not only "Failed to fetch"."""
    port = free_port()
    env = {"CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN}
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    context = browser.new_context(base_url=f"http://127.0.0.1:{port}")
    try:
        serve.wait_http(f"http://127.0.0.1:{port}/healthcheck")
        alone = context.new_page()
        alone.goto("/dashboard")
        sign_in(alone)
        expect(alone.locator("#app")).to_be_visible()
        alone.uncheck("#auto-refresh")
        alone.route(lambda url: "/v1/schedules?" in url, lambda route: route.fulfill(
            status=502, content_type="text/html", body="<html><body><h1>502 Bad Gateway</h1></body></html>"))
        alone.click("#refresh")
        expect(alone.locator("#message")).to_have_text("Bad Gateway (502)")
        alone.unroute_all()
        alone.click("#refresh")
        expect(alone.locator("#message")).to_be_hidden()
        serve.stop(signal.SIGTERM)
        alone.click("#refresh")
        expect(alone.locator("#message")).to_have_text("The service did not answer: Failed to fetch")
        expect(alone.locator("#ready")).to_have_text("unreachable")
        expect(alone.locator("#app")).to_be_visible()  # still signed in: it comes back
    finally:
        context.close()
        serve.stop(signal.SIGTERM)


def test_a_tab_opened_again_while_the_service_is_gone_stays_signed_in_and_recovers(
        browser: Browser, tmp_path: Path) -> None:
    """The tab's token stays when the service does not answer as the page loads (a restart, a
    reload while it is down): the page says so, shows no sign-in form, and recovers at its next
    refresh once the service is back, as it does when the service goes away later."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN}
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    context = browser.new_context(base_url=base)
    script_errors: list[str] = []
    try:
        serve.wait_http(f"{base}/healthcheck")
        with httpx.Client(base_url=base, headers=AUTH, timeout=10) as http:
            created = http.post("/schedule-message", json=seed_request(datetime.now(UTC) + timedelta(hours=1)))
            assert created.status_code == 201, created.text
            # The page's own files, as the browser's cache holds them while the service is down.
            files = {path: http.get(path) for path in ("/dashboard", "/dashboard/dashboard.js",
                                                       "/dashboard/dashboard.css")}
        tab = context.new_page()
        tab.on("pageerror", lambda error: script_errors.append(str(error)))
        tab.goto("/dashboard")
        sign_in(tab)
        expect(row(tab, created.json()["id"])).to_be_visible()
        serve.stop(signal.SIGTERM)
        tab.route(lambda url: urlsplit(url).path in files, lambda route: route.fulfill(
            status=200, headers=dict(files[urlsplit(route.request.url).path].headers),
            body=files[urlsplit(route.request.url).path].content))
        tab.reload()
        expect(tab.locator("#message")).to_have_text("The service did not answer: Failed to fetch")
        expect(tab.locator("#ready")).to_have_text("unreachable")
        expect(tab.locator("#app")).to_be_visible()
        expect(tab.locator("#sign-in")).to_be_hidden()
        expect(tab.locator("#sign-out")).to_be_visible()
        assert tab.evaluate("sessionStorage.getItem('cronjob.token')") == TOKEN

        serve.start().wait_http(f"{base}/healthcheck")  # the same port and data
        expect(row(tab, created.json()["id"])).to_be_visible()  # at its next refresh, on its own
        expect(tab.locator("#message")).to_be_hidden()
        expect(tab.locator("#ready")).to_have_text("ready")
        expect(tab.locator('#type-filter option[value="whatsapp.template"]')).to_have_count(1)  # read now

        tab.evaluate("sessionStorage.setItem('cronjob.token', 'not-the-token')")  # refused: signed out
        tab.reload()
        expect(tab.locator("#message")).to_contain_text("The token was refused (401)")
        expect(tab.locator("#sign-in")).to_be_visible()
        expect(tab.locator("#app")).to_be_hidden()
        assert tab.evaluate("sessionStorage.getItem('cronjob.token')") is None
        assert script_errors == []
    finally:
        context.close()
        serve.stop(signal.SIGTERM)


def test_the_page_is_locked_down(service: Service) -> None:
    """No token needed for the page (it holds no data); only its own script runs; no framing."""
    with httpx.Client(base_url=service.base, timeout=10) as http:
        home = http.get("/")
        assert home.status_code == 307 and home.headers["location"] == "dashboard"  # relative: keeps a prefix
        slash = http.get("/dashboard/")
        assert slash.status_code == 307 and slash.headers["location"] == "../dashboard"
        page = http.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "require-trusted-types-for 'script'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        script = http.get("/dashboard/dashboard.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert http.head("/dashboard").status_code == 200
        unknown = http.get("/dashboard/app.py")
        assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
        assert http.get("/v1/stats").status_code == 401  # the data still needs the token


@pytest.mark.parametrize("ended", [False, True], ids=["live", "ended"])
def test_signing_out_while_a_detail_loads_asks_nothing_more(page: Page, service: Service, ended: bool) -> None:
    """A live schedule's detail asks for its next runs once the rest has come (that request went out
    with 'Bearer null'); an ended one's asks nothing more, and then nothing it read may be shown."""
    opened = service.dead() if ended else service.later()
    sign_in(page)
    expect(row(page, opened["id"])).to_be_visible()
    page.uncheck("#auto-refresh")
    held: list[Any] = []
    sent: list[tuple[str, str | None]] = []
    page.route("**/events", lambda route: held.append(route))  # answered once the test lets them
    page.on("request", lambda request: sent.append((request.url, request.headers.get("authorization"))))
    row(page, opened["id"]).click()
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)
    assert held, "the detail did not ask for its events"
    page.click("#sign-out")
    held[0].continue_()
    page.wait_for_timeout(500)  # the detail's load ends: it would ask for the next runs now
    assert [url for url, auth in sent if auth == "Bearer null"] == []
    assert not any("/upcoming" in url for url, _ in sent)
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#detail")).to_be_hidden()
    expect(page.locator("#detail-id")).to_have_text("")  # hidden with #app, but not filled in either
    expect(page.locator("#detail-fields dd")).to_have_count(0)
    expect(page.locator("#message")).to_be_hidden()  # not "the token was refused"


def test_the_due_filter_lists_a_moving_window_soonest_first(page: Page, service: Service) -> None:
    user = "dashboard-due"
    now = datetime.now(UTC)
    overdue = service.message(now + timedelta(seconds=2), userId=user)
    assert service.http.post(f"/v1/schedules/{overdue['id']}/pause").status_code == 200  # keeps its time
    in_3_days = service.message(now + timedelta(days=3), userId=user)
    in_3_hours = service.message(now + timedelta(hours=3), userId=user)
    in_10_days = service.message(now + timedelta(days=10), userId=user)
    in_30_minutes = service.message(now + timedelta(minutes=30), userId=user)
    assert wait_until(lambda: datetime.now(UTC) > now + timedelta(seconds=2.1), timeout=5)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/v1/schedules?" in request.url else None)
    sign_in(page)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    newest_first = [in_30_minutes, in_10_days, in_3_hours, in_3_days, overdue]
    expect(page.locator("#schedules tbody td.id")).to_have_text([s["id"] for s in newest_first])
    expect(page.locator("#order-note")).to_have_text("newest first")
    for due, expected in (("overdue", [overdue]), ("hour", [in_30_minutes]),
                          ("day", [in_30_minutes, in_3_hours]), ("week", [in_30_minutes, in_3_hours, in_3_days]),
                          ("", newest_first)):
        asked.clear()
        page.select_option("#due-filter", due)
        expect(page.locator("#schedules tbody td.id")).to_have_text([s["id"] for s in expected])
        query = parse_qs(urlsplit(asked[-1]).query)
        after, before = query.get("due_after"), query.get("due_before")
        if not due:
            assert (after, before) == (None, None)
            expect(page.locator("#order-note")).to_have_text("newest first")
            continue
        expect(page.locator("#order-note")).to_contain_text("soonest due first")
        expect(page.locator("#next")).to_have_text("later →")
        assert before is not None and before[0].endswith("Z")
        sent_at = datetime.fromisoformat(before[0])
        if due == "overdue":
            assert after is None and abs(sent_at - datetime.now(UTC)) < timedelta(seconds=30)
        else:
            assert after is not None and after[0].endswith("Z")
            span = sent_at - datetime.fromisoformat(after[0])
            assert span == {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}[due]
    with page.expect_request(lambda request: "due_after" in request.url) as first:
        page.select_option("#due-filter", "week")
    expect(page.locator("#schedules tbody tr")).to_have_count(3)
    page.wait_for_timeout(50)
    with page.expect_request(lambda request: "due_after" in request.url) as again:
        page.click("#refresh")  # the window moves: each refresh asks from its own now
    starts = [datetime.fromisoformat(parse_qs(urlsplit(r.value.url).query)["due_after"][0]) for r in (first, again)]
    assert starts[1] - starts[0] >= timedelta(milliseconds=50)
    page.select_option("#status-filter", "scheduled")
    expect(page.locator("#order-note")).to_contain_text("soonest due first")
    expect(page.locator("#cancel-user")).to_be_hidden()  # it would cancel paused ones in the window too
    page.select_option("#status-filter", "")
    expect(page.locator("#schedules tbody tr")).to_have_count(3)
    confirmed = accepting(page)
    with page.expect_request(lambda request: request.url.endswith("/v1/schedules:cancel")) as cancel:
        page.click("#cancel-user")  # those shown, in the window computed now
    body = cancel.value.post_data_json
    assert body == {"userId": user, "due_after": body["due_after"], "due_before": body["due_before"],
                    "limit": 1000}
    assert datetime.fromisoformat(body["due_before"]) - datetime.fromisoformat(body["due_after"]) == timedelta(days=7)
    window = f"due between {local_time(page, body['due_after'])} and {local_time(page, body['due_before'])}"
    assert confirmed == [f"Cancel every live schedule of user {user} {window}? This cannot be undone."]
    expect(page.locator("#message")).to_have_text(f"User {user} {window}: 3 schedule(s) cancelled.")
    assert [service.get(s["id"])["status"] for s in (in_30_minutes, in_3_hours, in_3_days, overdue, in_10_days)] \
        == ["cancelled"] * 3 + ["paused", "scheduled"]


def local_time(page: Page, instant: str) -> str:
    """``instant`` as the page shows it (the browser's zone and locale)."""
    return str(page.evaluate("iso => new Date(iso).toLocaleString()", instant))


def accepting(page: Page) -> list[str]:
    """Accept every dialog the page opens from now on; the list holds what each asked."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_a_user_s_schedules_are_paused_and_resumed_from_the_filter(page: Page, service: Service) -> None:
    user = "dashboard-hold"
    first, second = service.later(userId=user), service.message(datetime.now(UTC) + timedelta(days=3), userId=user)
    other = service.later()
    sign_in(page)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(2)
    expect(page.locator("#pause-matching")).to_have_text("Pause all of this user's")
    expect(page.locator("#resume-matching")).to_be_visible()
    page.select_option("#due-filter", "hour")
    expect(page.locator("#schedules tbody tr")).to_have_count(1)
    asked = accepting(page)
    with page.expect_request(lambda request: request.url.endswith("/v1/schedules:pause")) as pause:
        page.click("#pause-matching")
    body = pause.value.post_data_json
    window = f"due between {local_time(page, body['due_after'])} and {local_time(page, body['due_before'])}"
    expect(page.locator("#message")).to_have_text(f"User {user} {window}: 1 schedule(s) paused.")
    assert asked == [f"Pause every waiting schedule of user {user} {window}?"]
    # The one due in three days is not shown: not paused.
    assert [service.get(s["id"])["status"] for s in (first, second, other)] == ["paused", "scheduled", "scheduled"]
    page.select_option("#due-filter", "")
    expect(page.locator("#schedules tbody td.status")).to_have_text(["scheduled", "paused"])
    page.select_option("#status-filter", "paused")
    expect(page.locator("#schedules tbody tr")).to_have_count(1)
    for hidden in ("#cancel-user", "#pause-matching"):  # they would act on schedules not shown
        expect(page.locator(hidden)).to_be_hidden()
    page.click("#resume-matching")
    expect(page.locator("#message")).to_have_text(f"User {user}: 1 schedule(s) resumed.")
    assert asked[-1] == f"Resume every paused schedule of user {user}?"
    expect(page.locator("#empty")).to_be_visible()
    assert [service.get(s["id"])["status"] for s in (first, second)] == ["scheduled", "scheduled"]
    page.select_option("#status-filter", "")
    page.fill("#user-filter", "")
    page.press("#user-filter", "Enter")
    expect(page.locator("#pause-matching")).to_be_hidden()  # never everyone's
    expect(page.locator("#resume-matching")).to_be_hidden()


def test_what_died_in_the_last_hour_is_listed_and_retried(page: Page, service: Service) -> None:
    """Status dead and Changed "in the last hour": what died in the last hour. With the browser's
    clock an hour on, so that its hour starts between two deaths, the list shows the later one
    only, and Retry all retries it alone (the window goes with the request)."""
    user = "dashboard-changed"
    earlier = service.dead(userId=user)
    later = service.dead(userId=user)
    died = [datetime.fromisoformat(s["updated_at"]) for s in (earlier, later)]
    assert died[0] < died[1]
    hour_start = died[0] + (died[1] - died[0]) / 2
    hour_start -= timedelta(microseconds=hour_start.microsecond % 1000)  # the browser's clock has ms
    page.clock.set_fixed_time(hour_start + timedelta(hours=1))
    sign_in(page)
    page.uncheck("#auto-refresh")  # a list asked for is one a filter asked for
    page.select_option("#status-filter", "dead")
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody td.id")).to_have_text([later["id"], earlier["id"]])
    for hidden in ("#cancel-user", "#pause-matching", "#resume-matching"):  # no dead one is theirs to change
        expect(page.locator(hidden)).to_be_hidden()
    for changed, span in (("day", timedelta(days=1)), ("week", timedelta(days=7)), ("hour", timedelta(hours=1))):
        with page.expect_request(lambda request: "updated_after" in request.url) as listed:
            page.select_option("#changed-filter", changed)
        query = parse_qs(urlsplit(listed.value.url).query)
        assert datetime.fromisoformat(query["updated_after"][0]) == hour_start + timedelta(hours=1) - span
        assert "updated_before" not in query
    expect(page.locator("#schedules tbody td.id")).to_have_text([later["id"]])

    asked = accepting(page)
    since = page.evaluate("iso => new Date(iso).toLocaleString()", hour_start.isoformat())
    with page.expect_request(lambda request: request.url.endswith("/v1/schedules:retry")) as retry:
        page.click("#retry-matching")
    assert asked == [f"Retry every dead schedule of user {user} changed since {since} now?"]
    body = retry.value.post_data_json
    assert body == {"status": "dead", "userId": user, "updated_after": body["updated_after"], "limit": 1000}
    assert datetime.fromisoformat(body["updated_after"]) == hour_start
    expect(page.locator("#message")).to_have_text(
        f"Every dead schedule of user {user} changed since {since}: 1 schedule(s) retried.")
    for schedule, retried in ((earlier, False), (later, True)):
        events = service.http.get(f"/v1/schedules/{schedule['id']}/events").json()["items"]
        assert any(e["data"].get("retried_from") for e in events) is retried
    service.wait_for(later["id"], lambda s: s["status"] == "dead")  # again: no WhatsApp credentials here
    page.clock.set_fixed_time(datetime.now(UTC))  # both died within the last hour
    page.click("#refresh")
    expect(page.locator("#schedules tbody td.id")).to_have_text([later["id"], earlier["id"]])
    page.select_option("#status-filter", "")
    expect(page.locator("#cancel-user")).to_be_visible()


def test_the_dead_letters_shown_are_retried_at_once(page: Page, service: Service) -> None:
    user = "dashboard-redrive"
    dead = [service.dead(userId=user), service.dead(userId=user)]
    other = service.dead()
    sign_in(page)
    expect(page.locator("#retry-matching")).to_be_hidden()  # for a status that can be retried only
    page.select_option("#status-filter", "dead")
    expect(page.locator("#retry-matching")).to_have_text("Retry all dead")
    page.select_option("#due-filter", "overdue")  # ended ones have no due time: nothing shown to retry
    expect(page.locator("#retry-matching")).to_be_hidden()
    page.select_option("#due-filter", "")
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(2)
    asked = accepting(page)
    page.click("#retry-matching")
    expect(page.locator("#message")).to_have_text(f"Every dead schedule of user {user}: 2 schedule(s) retried.")
    assert asked == [f"Retry every dead schedule of user {user} now?"]
    for schedule in dead:  # retried, and dead again: this service has no WhatsApp credentials
        events = service.http.get(f"/v1/schedules/{schedule['id']}/events").json()["items"]
        assert [e["data"].get("retried_from") for e in events if e["type"] == "scheduled"][-1] == "dead"
    other_events = service.http.get(f"/v1/schedules/{other['id']}/events").json()["items"]
    assert not any(e["data"].get("retried_from") for e in other_events)
    page.select_option("#status-filter", "unknown")
    expect(page.locator("#retry-matching")).to_have_text("Retry all unknown")
    page.click("#retry-matching")
    expect(page.locator("#message")).to_have_text(f"Every unknown schedule of user {user}: 0 schedule(s) retried.")
    assert "may send them twice" in asked[-1]


class LimitedTo:
    """Routes a bulk request's ``limit`` down to ``size`` on its way to the service (what the page
    sent, and what the service answered, are kept): many requests from a few schedules."""

    def __init__(self, page: Page, path: str, size: int = 2) -> None:
        self.sent: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self._size = size
        page.route(f"**/{path}", self._handle)

    def _handle(self, route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        self.sent.append(body)
        response = route.fetch(post_data=json.dumps({**body, "limit": self._size}))
        if response.ok:
            self.answers.append(response.json())
        route.fulfill(response=response)


def signed_in_showing(page: Page, user: str, rows: int, status: str = "") -> None:
    """Sign in and filter the list by ``user`` (and ``status``): ``rows`` schedules shown."""
    sign_in(page)
    if status:
        page.select_option("#status-filter", status)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(rows)


def test_a_bulk_change_is_made_in_requests_of_a_limit_each_until_no_more_match(
        page: Page, service: Service) -> None:
    user = "dashboard-many"
    mine = [service.later(userId=user) for _ in range(5)]
    signed_in_showing(page, user, 5)
    limited = LimitedTo(page, "v1/schedules:cancel")
    accepting(page)
    page.click("#cancel-user")
    expect(page.locator("#message")).to_have_text(f"User {user}: 5 schedule(s) cancelled.")
    assert limited.sent == [{"userId": user, "limit": 1000}] * 3
    assert [(len(a["cancelled"]), a["more"]) for a in limited.answers] == [(2, True), (2, True), (1, False)]
    assert {service.get(s["id"])["status"] for s in mine} == {"cancelled"}


def test_a_bulk_change_stopped_by_a_failed_request_says_how_far_it_got(
        page: Page, service: Service, page_errors: list[str]) -> None:
    user = "dashboard-midway"
    mine = [service.later(userId=user) for _ in range(3)]
    signed_in_showing(page, user, 3)
    sent = 0

    def first_then_502(route: Route) -> None:
        nonlocal sent
        sent += 1
        if sent == 1:
            body = json.loads(route.request.post_data or "{}")
            route.fulfill(response=route.fetch(post_data=json.dumps({**body, "limit": 2})))
        else:
            route.fulfill(status=502, content_type="text/html", body="<h1>502 Bad Gateway</h1>")

    page.route("**/v1/schedules:pause", first_then_502)
    accepting(page)
    page.click("#pause-matching")
    expect(page.locator("#message")).to_have_text(f"User {user}: 2 schedule(s) paused, then stopped: Bad Gateway (502)")
    assert sorted(service.get(s["id"])["status"] for s in mine) == ["paused", "paused", "scheduled"]
    refused = [error for error in page_errors if "status of 502" in error]
    assert len(refused) == 1
    page_errors.remove(refused[0])


def test_retry_all_goes_on_after_each_answer_s_cursor_so_what_fails_again_is_not_retried_again(
        page: Page, service: Service) -> None:
    """No WhatsApp credentials here: what is retried is dead again at once, and a repeat of the same
    request would retry it again and never reach the rest."""
    user = "dashboard-redrive-pages"
    dead = [service.dead(userId=user) for _ in range(5)]
    signed_in_showing(page, user, 5, status="dead")
    limited = LimitedTo(page, "v1/schedules:retry")
    accepting(page)
    page.click("#retry-matching")
    expect(page.locator("#message")).to_have_text(f"Every dead schedule of user {user}: 5 schedule(s) retried.")
    cursors = [a["next_cursor"] for a in limited.answers]
    assert [body.get("cursor") for body in limited.sent] == [None, *cursors[:-1]] and cursors[-1] is None
    assert sorted(i for a in limited.answers for i in a["retried"]) == sorted(s["id"] for s in dead)  # each once


def test_the_bulk_actions_send_the_type_and_the_windows_shown_and_act_on_those_shown_only(
        page: Page, service: Service) -> None:
    """Filtered by a user, a type, Due "24 hours" and Changed "in the last hour", with the
    browser's clock an hour on (its hour starts between two creations, its 24 hours an hour from
    now): Pause, Resume and Cancel all change the one schedule shown, whatever else the user has."""
    user = "dashboard-narrowed"
    in_90_minutes = datetime.now(UTC) + timedelta(minutes=90)
    changed_before = service.message(in_90_minutes, userId=user, type="text", templateName=None)
    shown = service.message(in_90_minutes, userId=user, type="text", templateName=None)
    changes = [datetime.fromisoformat(s["updated_at"]) for s in (changed_before, shown)]
    assert changes[0] < changes[1]
    hour_start = changes[0] + (changes[1] - changes[0]) / 2
    hour_start -= timedelta(microseconds=hour_start.microsecond % 1000)  # the browser's clock has ms
    other_type = service.message(in_90_minutes, userId=user)
    due_later = service.message(datetime.now(UTC) + timedelta(days=3), userId=user, type="text", templateName=None)
    theirs = service.message(in_90_minutes, type="text", templateName=None)
    others = (changed_before, other_type, due_later, theirs)
    page.clock.set_fixed_time(hour_start + timedelta(hours=1))
    sign_in(page)
    page.uncheck("#auto-refresh")
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    page.select_option("#type-filter", "whatsapp.text")
    page.select_option("#due-filter", "day")
    page.select_option("#changed-filter", "hour")
    expect(page.locator("#schedules tbody td.id")).to_have_text([shown["id"]])
    expect(page.locator("#pause-matching")).to_have_text("Pause all matching")  # not all of the user's
    now = hour_start + timedelta(hours=1)
    bounds = {"due_after": now, "due_before": now + timedelta(days=1), "updated_after": hour_start}
    sent = {name: f"{at.isoformat(timespec='milliseconds')[:-6]}Z" for name, at in bounds.items()}
    narrowed = (f"of type whatsapp.text due between {local_time(page, sent['due_after'])} and "
                f"{local_time(page, sent['due_before'])} changed since {local_time(page, sent['updated_after'])}")
    asked = accepting(page)

    for kind, status, ask, done, now_in in (
            ("pause", "", "Pause every waiting schedule", "paused", "paused"),
            ("resume", "paused", "Resume every paused schedule", "resumed", "scheduled"),
            ("cancel", "", "Cancel every live schedule", "cancelled", "cancelled")):
        page.select_option("#status-filter", status)
        expect(page.locator("#schedules tbody td.id")).to_have_text([shown["id"]])
        button = "#cancel-user" if kind == "cancel" else f"#{kind}-matching"
        with page.expect_request(lambda request: request.url.endswith(f"/v1/schedules:{kind}")) as bulk:
            page.click(button)
        assert bulk.value.post_data_json == {"userId": user, "type": ["whatsapp.text"], **sent, "limit": 1000}, kind
        undone = " This cannot be undone." if kind == "cancel" else ""
        assert asked[-1] == f"{ask} of user {user} {narrowed}?{undone}"
        expect(page.locator("#message")).to_have_text(f"User {user} {narrowed}: 1 schedule(s) {done}.")
        assert service.get(shown["id"])["status"] == now_in
        assert [service.get(s["id"])["status"] for s in others] == ["scheduled"] * 4, kind
    assert len(asked) == 3


@pytest.mark.parametrize(("status", "type_", "offered"), [
    ("", "", {"cancel", "pause", "resume"}),
    ("scheduled", "", {"pause"}),
    ("paused", "", {"resume"}),
    ("running", "", set()),
    ("dead", "", set()),  # and no Resume all where nothing shown is paused
    ("cancelled", "", set()),
    ("", "webhook.delivery", {"cancel"}),  # the service's own jobs are never paused by hand
])
def test_a_bulk_action_is_offered_only_where_what_it_changes_is_shown(
        page: Page, service: Service, status: str, type_: str, offered: set[str]) -> None:
    sign_in(page)
    page.fill("#user-filter", "dashboard-offered")
    page.press("#user-filter", "Enter")
    page.select_option("#type-filter", type_)
    page.select_option("#status-filter", status)
    expect(page.locator("#empty")).to_be_visible()
    for kind, button in (("cancel", "#cancel-user"), ("pause", "#pause-matching"), ("resume", "#resume-matching")):
        if kind in offered:
            expect(page.locator(button)).to_be_visible()
        else:
            expect(page.locator(button)).to_be_hidden()
