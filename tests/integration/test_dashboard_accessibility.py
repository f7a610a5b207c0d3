"""The dashboard for everyone: WCAG 2.1 AA, checked by axe-core in every state of the page, and
the keyboard alone driving it (focus visible, never lost or trapped), in headless Chromium
against a real ``cronjob serve``.

The service here also sends e-mail, to a peer that takes a message and hangs up before it
answers (the outcome is ``unknown``), and reaches a local HTTP endpoint that answers at once
(``succeeded``) or holds a request (``running``): the list shows a schedule in every status.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.accessibility import chromium_name, focusable_in, violations
from tests.support.app import TOKEN
from tests.support.dashboard import (  # noqa: F401 (fixtures: pytest finds them here)
    Service,
    browser,
    page,
    page_errors,
    row,
    row_button,
    serving,
    sign_in,
    signed_in,
)

#: Every status a schedule can be in.
STATUSES = ["scheduled", "running", "paused", "succeeded", "dead", "unknown", "missed", "cancelled"]
USER = "everyone"


class HangingUpSmtp:
    """An SMTP peer on 127.0.0.1 that takes a whole message and closes the connection instead of
    answering it: the sender cannot know whether it was queued (``unknown``)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    @staticmethod
    def _session(connection: socket.socket) -> None:
        with connection, connection.makefile("rwb") as stream:
            stream.write(b"220 hangs-up.test ESMTP\r\n")
            stream.flush()
            for line in stream:
                command = line[:4].upper()
                if command == b"QUIT":
                    return
                if command == b"DATA":
                    stream.write(b"354 go ahead\r\n")
                    stream.flush()
                    for data in stream:
                        if data == b".\r\n":
                            return  # the whole message taken, no answer: hung up
                    return
                stream.write(b"250 ok\r\n")
                stream.flush()

    def close(self) -> None:
        self.listener.close()


class Endpoint:
    """A local HTTP endpoint: ``/ok`` answers 200 at once, ``/hold`` after a minute."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/hold":
                    time.sleep(60)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    started = Endpoint()
    yield started
    started.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, endpoint: Endpoint) -> Iterator[Service]:
    smtp = HangingUpSmtp()
    try:
        with serving(tmp_path_factory.mktemp("dashboard-a11y"), CRONJOB_SMTP_HOST="127.0.0.1",
                     CRONJOB_SMTP_PORT=str(smtp.port), CRONJOB_SMTP_STARTTLS="false",
                     CRONJOB_SMTP_FROM="cronjob@example.com", CRONJOB_SMTP_TIMEOUT_SECONDS="5") as started:
            yield started
    finally:
        smtp.close()


def _create(service: Service, **request: Any) -> dict[str, Any]:
    response = service.http.post("/v1/schedules", json={"userId": USER, **request})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def every_status(service: Service, endpoint: Endpoint) -> dict[str, str]:
    """A schedule of ``USER`` in each status, by status: the id."""
    soon = datetime.now(UTC) + timedelta(seconds=1)
    text = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
    ids = {
        # A label without a space as long as the API takes, and a recurring rule.
        "scheduled": _create(service, task=text, schedule="daily at 10:00",
                             labels={"order": "123", "trace": "x" * 256})["id"],
        "running": _create(service, task={"type": "http.request", "method": "POST", "url": f"{endpoint.url}/hold"},
                           schedule=f"every 1 hour from {soon.isoformat()}")["id"],
        "succeeded": _create(service, task={"type": "http.request", "method": "POST", "url": f"{endpoint.url}/ok"},
                             schedule=f"once @ {soon.isoformat()}")["id"],
        "unknown": _create(service, task={"type": "email", "to": ["ana@example.com"], "subject": "Oi",
                                          "text": "Olá"}, schedule=f"once @ {soon.isoformat()}")["id"],
        "dead": service.dead(userId=USER)["id"],
        "paused": service.later(userId=USER)["id"],
        "cancelled": service.later(userId=USER)["id"],
        # Paused before it falls due, resumed past its send_by: too late to send.
        "missed": _create(service, task=text, schedule=f"once @ {(soon + timedelta(seconds=1)).isoformat()}",
                          send_by=(soon + timedelta(seconds=2)).isoformat())["id"],
    }
    assert service.http.post(f"/v1/schedules/{ids['missed']}/pause").status_code == 200
    assert service.http.post(f"/v1/schedules/{ids['paused']}/pause").status_code == 200
    assert service.http.delete(f"/v1/schedules/{ids['cancelled']}").status_code == 200
    time.sleep(max(0.0, (soon + timedelta(seconds=2.5) - datetime.now(UTC)).total_seconds()))
    assert service.http.post(f"/v1/schedules/{ids['missed']}/resume").status_code == 200
    for status, schedule_id in ids.items():
        service.wait_for(schedule_id, lambda s, status=status: s["status"] == status)
    return ids


def assert_accessible(page: Page, state: str) -> None:
    found = violations(page)
    assert not found, f"{state}:\n{found}"


def test_signed_out_and_a_refused_token_pass_axe(page: Page, page_errors: list[str]) -> None:
    expect(page.locator("#ready")).to_have_text("ready")
    assert_accessible(page, "signed out")
    sign_in(page, "not-the-token")
    expect(page.locator("#message")).to_contain_text("The token was refused (401)")
    assert_accessible(page, "a refused token")
    page_errors[:] = [error for error in page_errors if "status of 401" not in error]


def test_the_list_in_every_status_and_each_schedule_opened_pass_axe(page: Page, every_status: dict[str, str]) -> None:
    """Each row selected (its own background) and its detail open: fields, events, attempts,
    payload, next runs and the move form where it has them."""
    sign_in(page)
    page.fill("#user-filter", USER)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(len(STATUSES))
    page.click("#by-type-section summary")
    expect(page.locator('#by-type tbody tr[data-type="email"]')).to_be_visible()
    assert_accessible(page, "every status listed, the counts by type open")
    for status in STATUSES:
        row(page, every_status[status]).click()
        expect(page.locator("#detail-status")).to_have_text(status)
        expect(page.locator("#events tbody tr").first).to_be_visible()
        assert_accessible(page, f"a {status} schedule open")


def test_filters_bulk_actions_their_outcome_and_an_empty_list_pass_axe(page: Page, service: Service,
                                                                      page_errors: list[str]) -> None:
    user = "a11y-bulk"
    for _ in range(2):
        service.later(userId=user)
    service.dead(userId=user)
    sign_in(page)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    page.select_option("#changed-filter", "hour")
    expect(page.locator("#pause-matching")).to_be_visible()
    assert_accessible(page, "a user's list narrowed by the Changed window, its bulk actions offered")
    page.click('.count[data-status="dead"]')
    expect(page.locator("#retry-matching")).to_be_visible()
    assert_accessible(page, "the dead letters of a user, Retry all offered")
    page.click('.count[data-status=""]')
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#pause-matching")
    expect(page.locator("#message")).to_contain_text("2 schedule(s) paused")
    assert_accessible(page, "the outcome of a bulk action")
    page.fill("#label-filter", "not-a-selector")
    page.press("#label-filter", "Enter")
    page.select_option("#due-filter", "hour")
    expect(page.locator("#message")).to_contain_text("(422)")  # the API's refusal of the filter
    assert_accessible(page, "a refused filter said, under a Due window")
    page_errors[:] = [error for error in page_errors if "status of 422" not in error]
    page.fill("#label-filter", "")
    page.fill("#user-filter", "nobody-at-all")
    page.press("#user-filter", "Enter")
    expect(page.locator("#empty")).to_be_visible()
    assert_accessible(page, "an empty list")


def test_a_service_that_does_not_answer_or_a_proxy_s_error_page_pass_axe(page: Page, service: Service,
                                                                        page_errors: list[str]) -> None:
    service.later()
    sign_in(page)
    expect(page.locator("#schedules tbody tr").first).to_be_visible()
    page.uncheck("#auto-refresh")
    page.route("**/v1/schedules?*", lambda route: route.fulfill(
        status=502, content_type="text/html", body="<html><body><h1>502 Bad Gateway</h1></body></html>"))
    page.click("#refresh")
    expect(page.locator("#message")).to_have_text("Bad Gateway (502)")
    assert_accessible(page, "a proxy's error page")
    page.unroute_all()
    page.route(lambda url: "/v1/" in url or url.endswith("/readyz"), lambda route: route.abort())
    page.click("#refresh")
    expect(page.locator("#message")).to_have_text("The service did not answer: Failed to fetch")
    expect(page.locator("#ready")).to_have_text("unreachable")
    assert_accessible(page, "the service does not answer")
    page_errors[:] = [error for error in page_errors if "502" not in error and "net::ERR_FAILED" not in error]


def test_each_table_is_named_for_what_it_lists(page: Page, service: Service) -> None:
    """A screen reader entering a table reads its name first: the list's says which rows, in which
    order and filtered by what (the page shows each above it); the others what they hold."""
    user = "a11y-named"
    later, dead = service.later(userId=user), service.dead(userId=user)
    sign_in(page)
    schedules = page.locator("#schedules")
    filter_by_user(page, user, dead["id"], 2)
    expect(schedules).to_have_accessible_name(f"Schedules 1–2, newest first, filtered by user {user}")
    page.select_option("#due-filter", "day")
    expect(schedules).to_have_accessible_name(
        f"Schedules 1–1, soonest due first, filtered by due in the next 24 hours, user {user}")
    page.select_option("#status-filter", "dead")
    expect(schedules).to_have_accessible_name(
        f"Schedules (none match), soonest due first, filtered by status dead, due in the next 24 hours, user {user}")
    page.click("#by-type-section summary")
    expect(page.locator("#by-type")).to_have_accessible_name("Schedules by task type and status")
    page.fill("#open-id", later["id"])
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    expect(page.locator("#next-runs")).to_have_accessible_name("Next runs")
    expect(page.locator("#attempts")).to_have_accessible_name("Attempts")
    expect(page.locator("#events")).to_have_accessible_name("Events")
    assert_accessible(page, "every table named")


# -- the keyboard alone ----------------------------------------------------------------------

#: A control, in a page's script: its id, or ``row <data-id>`` or ``type <data-type>`` for the button
#: of a row of the list or of the counts by type, or its tag.
_CONTROL = """(e) => { const row = e.closest('tr[data-id], tr[data-type]');
    return e.id || (row ? (row.dataset.id ? `row ${row.dataset.id}` : `type ${row.dataset.type}`)
                        : e.tagName.toLowerCase()); }"""


def focused(page: Page) -> str:
    """What has the keyboard's focus: its id, or ``row <data-id>`` (the button of that row), or the tag."""
    return page.evaluate(f"() => ({_CONTROL})(document.activeElement)")


def filter_by_user(page: Page, user: str, newest: str, rows: int) -> None:
    """List ``user``'s schedules, ``newest`` first and ``rows`` of them (on the page)."""
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr").first).to_have_attribute("data-id", newest)
    expect(page.locator("#schedules tbody tr")).to_have_count(rows)


def test_tab_reaches_every_control_shows_where_it_is_and_traps_nowhere(page: Page, service: Service) -> None:
    user = "a11y-tab"
    later = service.later(userId=user)
    page.keyboard.press("Tab")
    assert focused(page) == "token"
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#list-heading")).to_be_focused()  # not left on the hidden form
    filter_by_user(page, user, later["id"], 1)
    row_button(page, later["id"]).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-heading")).to_be_focused()
    visible = page.evaluate(f"""() => [...document.querySelectorAll(
        'button, input, select, summary, [tabindex="0"]')].filter((e) => e.checkVisibility() && !e.disabled)
        .map({_CONTROL})""")
    reached: list[str] = []
    for _ in range(len(visible) + 5):
        page.keyboard.press("Tab")
        now = focused(page)
        if now == "body":
            continue  # past the last control: the browser's own, then the page's first again
        if reached and now == reached[0]:
            break  # around the page and back: nothing holds the focus
        reached.append(now)
        outline = page.evaluate("""() => { const style = getComputedStyle(document.activeElement);
            return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0; }""")
        assert outline, f"{now} shows no focus"
    else:
        pytest.fail(f"Tab never came back to {reached[0]}: {reached}")
    assert set(visible) <= set(reached) | {"detail-heading"}, set(visible) - set(reached)


def test_a_row_opens_with_enter_or_space_and_closes_with_escape_or_close_giving_the_focus_back(
        page: Page, service: Service) -> None:
    user = "a11y-rows"
    first, second = service.later(userId=user), service.later(userId=user)
    sign_in(page)
    filter_by_user(page, user, second["id"], 2)
    row_button(page, second["id"]).focus()
    page.keyboard.press(" ")
    expect(page.locator("#detail-id")).to_have_text(second["id"])
    expect(page.locator("#detail-heading")).to_be_focused()  # announced: "Schedule ... scheduled"
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    assert focused(page) == f"row {second['id']}"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-id")).to_have_text(first["id"])
    page.focus("#close-detail")
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_hidden()
    assert focused(page) == f"row {first['id']}"

    page.fill("#open-id", first["id"])  # opened by its id, but listed: Escape goes to its row
    page.keyboard.press("Enter")
    expect(page.locator("#detail-heading")).to_be_focused()
    page.keyboard.press("Escape")
    assert focused(page) == f"row {first['id']}"  # listed: its row
    page.click("#by-type-section summary")
    page.locator('#by-type tbody tr[data-type="whatsapp.template"]').get_by_role("button").focus()
    page.keyboard.press(" ")
    expect(page.locator("#type-filter")).to_have_value("whatsapp.template")


def test_a_row_is_read_as_its_cells_and_opened_by_a_button_named_by_its_id(page: Page, service: Service) -> None:
    """A screen reader reads the list as a table (a row, its cells) and is told what opens a
    schedule: a button in the id's cell, named by the id, the row's one Tab stop; not a row that
    takes the focus without saying it does anything. A type's row of the counts alike: a button
    named by the type. A click anywhere on a row still opens it."""
    user = "a11y-row-button"
    first, later = service.later(userId=user), service.later(userId=user)
    sign_in(page)
    filter_by_user(page, user, later["id"], 2)
    name = f"Schedules 1–2, newest first, filtered by user {user}"
    buttons = [("button", later["id"]), ("button", first["id"])]
    assert focusable_in(page, "table", name, buttons) == buttons
    expect(row(page, later["id"])).to_match_aria_snapshot(f"""
        - row:
          - cell
          - cell "{later['id']}":
            - button "{later['id']}"
          - cell "whatsapp.template"
          - cell "scheduled"
        """)
    page.get_by_role("table", name=name).get_by_role("button", name=later["id"], exact=True).press("Enter")
    expect(page.locator("#detail-id")).to_have_text(later["id"])
    expect(page.locator("#detail-heading")).to_be_focused()
    page.keyboard.press("Escape")
    expect(row_button(page, later["id"])).to_be_focused()
    row(page, first["id"]).locator("td.status").click()
    expect(page.locator("#detail-id")).to_have_text(first["id"])

    page.click("#by-type-section summary")
    by_type = "Schedules by task type and status"
    expect(page.locator("#by-type tbody tr").first).to_be_visible()
    types = page.locator("#by-type tbody tr").evaluate_all("rows => rows.map(r => r.dataset.type)")
    buttons = [("button", task_type) for task_type in types]
    assert focusable_in(page, "table", by_type, buttons) == buttons
    assert_accessible(page, "the list's and the counts' rows, each with its button")
    page.get_by_role("table", name=by_type).get_by_role("button", name="whatsapp.template").press(" ")
    expect(page.locator("#type-filter")).to_have_value("whatsapp.template")


def test_an_action_that_hides_its_button_hands_the_focus_on(page: Page, service: Service) -> None:
    later = service.later()
    sign_in(page)
    page.fill("#open-id", later["id"])
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    page.focus("#pause")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_have_text("paused")
    expect(page.locator("#resume")).to_be_focused()  # took the place of Pause
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    expect(page.locator("#pause")).to_be_focused()
    page.focus("#cancel")
    page.once("dialog", lambda dialog: dialog.accept())
    page.keyboard.press("Enter")  # the confirmation, then the cancel
    expect(page.locator("#detail-status")).to_have_text("cancelled")
    expect(page.locator("#detail-heading")).to_be_focused()  # it says the status

    due = service.later()  # run now: it fails (no WhatsApp here) and a refresh finds it dead
    page.fill("#open-id", due["id"])
    page.keyboard.press("Enter")
    expect(page.locator("#detail-id")).to_have_text(due["id"])
    page.focus("#run")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_have_text("dead", timeout=15_000)
    expect(page.locator("#detail-heading")).to_be_focused()


def test_paging_to_the_last_page_and_back_keeps_the_focus(page: Page, service: Service) -> None:
    user = "a11y-paging"
    newest = [service.later(userId=user) for _ in range(51)][-1]
    service.later()  # the unfiltered list, 50 rows too, starts with another
    sign_in(page)
    filter_by_user(page, user, newest["id"], 50)
    page.focus("#next")
    page.keyboard.press("Enter")
    expect(page.locator("#page")).to_have_text("51–51")
    expect(page.locator("#prev")).to_be_focused()  # "older" is disabled on the last page
    page.keyboard.press("Enter")
    expect(page.locator("#page")).to_have_text("1–50")
    expect(page.locator("#next")).to_be_focused()


def test_the_pages_are_reached_before_the_rows_not_after_each_of_them(page: Page, service: Service) -> None:
    """Each row's button is a Tab stop (Enter or Space opens it): with the paging buttons only below the
    list, the next page is 50 Tab presses away. A pair above the rows, right after the filters,
    is reached first; on the last page and back the focus stays in that pair."""
    user = "a11y-paging-top"
    newest = [service.later(userId=user) for _ in range(51)][-1]
    sign_in(page)
    filter_by_user(page, user, newest["id"], 50)
    page.focus("#list-heading")
    passed: list[str] = []
    while not passed or passed[-1] not in ("next-top", "next"):
        assert len(passed) < 100, passed
        page.keyboard.press("Tab")
        passed.append(focused(page))
    rows = [stop for stop in passed if stop.startswith("row ")]
    assert not rows, f"{len(rows)} rows before the next page"
    page.keyboard.press("Enter")
    expect(page.locator("#page-top")).to_have_text("51–51")
    assert_accessible(page, "the second page, paged from above the list")
    expect(page.locator("#prev-top")).to_be_focused()  # "older" is disabled on the last page
    expect(page.locator("#next")).to_be_disabled()  # the pair below follows
    page.keyboard.press("Enter")
    expect(page.locator("#page-top")).to_have_text("1–50")
    expect(page.locator("#next-top")).to_be_focused()
    expect(page.locator("#page")).to_have_text("1–50")


def test_the_paging_buttons_are_read_by_their_words_not_their_arrows(page: Page, service: Service) -> None:
    """A screen reader reads a button by its name: "older", not "older right arrow". The arrows are
    for the eye, hidden from it, in both pairs and in either order (newest first, soonest due
    first)."""
    user = "a11y-arrows"
    newest = [service.later(userId=user) for _ in range(51)][-1]
    sign_in(page)
    filter_by_user(page, user, newest["id"], 50)
    for words in (("newer", "older"), ("sooner", "later")):
        for pages in ("Pages (above the list)", "Pages (below the list)"):
            expect(page.get_by_role("navigation", name=pages)).to_match_aria_snapshot(f"""
                - navigation:
                  - button "{words[0]}" [disabled]
                  - text: 1–50
                  - button "{words[1]}"
                """)
        offered = [("button", words[1])]
        assert focusable_in(page, "navigation", "Pages (above the list)", offered) == offered
        expect(page.locator("#prev-top")).to_have_text(f"← {words[0]}")  # the arrows, for the eye
        expect(page.locator("#next")).to_have_text(f"{words[1]} →")
        assert_accessible(page, f"the paging buttons, {words}")
        page.select_option("#due-filter", "day")  # soonest due first: the same 51
        expect(page.locator("#order-note")).to_contain_text("soonest due first")


def test_a_row_that_leaves_the_list_hands_the_focus_to_the_one_in_its_place(page: Page, service: Service,
                                                                           page_errors: list[str]) -> None:
    """Under a filter, a row leaves the list at a refresh when its schedule ran (or was cancelled
    elsewhere): the keyboard that was on it goes on from the row that took its place, the last
    one, or the list's heading, not from the top of the page (the focus lost to the body)."""
    user = "a11y-leaving"
    first = service.later(userId=user)
    due = service.message(datetime.now(UTC) + timedelta(seconds=3), userId=user)  # ends dead
    last = service.later(userId=user)
    sign_in(page)
    page.uncheck("#auto-refresh")
    filter_by_user(page, user, last["id"], 3)
    page.select_option("#status-filter", "scheduled")
    expect(page.locator("#list-status")).to_contain_text("status scheduled")
    row_button(page, due["id"]).focus()
    service.wait_for(due["id"], lambda s: s["status"] == "dead")
    page.evaluate("refresh()")
    expect(row(page, due["id"])).to_have_count(0)
    assert focused(page) == f"row {first['id']}"  # the row that took its place
    assert service.http.delete(f"/v1/schedules/{first['id']}").status_code == 200
    page.evaluate("refresh()")
    assert focused(page) == f"row {last['id']}"  # it was the last row: the one before it
    assert service.http.delete(f"/v1/schedules/{last['id']}").status_code == 200
    page.evaluate("refresh()")
    expect(page.locator("#empty")).to_be_visible()
    assert focused(page) == "list-heading"
    service.later(userId=user)
    page.evaluate("refresh()")
    page.locator("#schedules tbody tr").first.get_by_role("button").focus()
    page.route("**/v1/schedules?*", lambda route: route.abort())  # the list not answered: no rows shown
    page.evaluate("refresh()")
    expect(page.locator("#message")).to_contain_text("The service did not answer")
    assert focused(page) == "list-heading"
    page_errors[:] = [error for error in page_errors if "net::ERR_FAILED" not in error]


def test_signing_out_puts_the_focus_on_the_token_field(page: Page) -> None:
    sign_in(page)
    expect(page.locator("#sign-out")).to_be_visible()
    page.focus("#sign-out")
    page.keyboard.press("Enter")
    expect(page.locator("#token")).to_be_focused()


def test_a_refresh_that_fails_again_is_not_read_out_again(page: Page, service: Service,
                                                          page_errors: list[str]) -> None:
    """#message is a live region (role=alert): every write to it is read out. While the service
    does not answer, the refresh every 5 s fails the same way: said once, not every 5 s."""
    service.later()
    sign_in(page)
    expect(page.locator("#schedules tbody tr").first).to_be_visible()
    page.uncheck("#auto-refresh")
    page.route(lambda url: "/v1/" in url or url.endswith("/readyz"), lambda route: route.abort())
    page.click("#refresh")
    expect(page.locator("#message")).to_have_text("The service did not answer: Failed to fetch")
    page.evaluate("""() => { window.writes = 0; new MutationObserver((changes) => { window.writes += changes.length; })
        .observe(document.querySelector('#message'), {childList: true, characterData: true, subtree: true,
                                                     attributes: true}); }""")
    for _ in range(2):
        with page.expect_request(lambda request: "/v1/schedules?" in request.url):
            page.click("#refresh")
        page.wait_for_function("() => !state.busy")  # that refresh over, its failure reported
    assert page.evaluate("window.writes") == 0
    page.unroute_all()
    page.click("#refresh")
    expect(page.locator("#message")).to_be_hidden()  # back: cleared
    page_errors[:] = [error for error in page_errors if "net::ERR_FAILED" not in error]


def _record_the_message_box(page: Page) -> None:
    """From now on, ``window.said`` lists each change under ``#message``: the live region it was in
    (its role) and that region's text after it; also a change of a region's attributes (shown,
    hidden, its role). Called again, it starts the list again."""
    page.evaluate("""() => { if (window.said) { window.said = []; return; }
        window.said = [];
        new MutationObserver((changes) => { for (const change of changes) {
            const node = change.target.nodeType === Node.ELEMENT_NODE ? change.target : change.target.parentElement;
            const region = node.closest('[role], [aria-live]');
            window.said.push({change: change.attributeName || change.type, role: region && region.getAttribute('role'),
                              text: region && region.textContent});
        } }).observe(document.querySelector('#message'), {childList: true, characterData: true, subtree: true,
                                                          attributes: true}); }""")


def test_an_action_s_outcome_is_said_politely_and_a_refusal_assertively(page: Page, service: Service,
                                                                        page_errors: list[str]) -> None:
    """What an action did is a status message (role=status: read once the reader has finished what
    it was saying, the focus's move included), what went wrong an alert (read at once). Each is
    written once into a region that was already there, empty and not hidden: a live region shown
    with its text in it is not read out (the status one), or one written twice is read twice."""
    later = service.later()
    sign_in(page)
    page.uncheck("#auto-refresh")
    page.fill("#open-id", later["id"])
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    status, alert = page.locator("#message").get_by_role("status"), page.locator("#message").get_by_role("alert")
    expect(status).to_have_count(1)  # in the accessibility tree before anything is said
    expect(alert).to_have_count(1)
    expect(page.locator("#message")).to_be_hidden()  # empty: nothing shows
    _record_the_message_box(page)
    page.focus("#pause")
    page.keyboard.press("Enter")
    paused = f"Schedule {later['id']}: paused."
    expect(status).to_have_text(paused)
    expect(page.locator("#resume")).to_be_focused()
    expect(alert).to_have_text("")
    assert page.evaluate("window.said") == [{"change": "childList", "role": "status", "text": paused}]

    assert service.http.delete(f"/v1/schedules/{later['id']}").status_code == 200  # behind the page's back
    _record_the_message_box(page)
    page.keyboard.press("Enter")  # Resume, still offered: refused
    expect(alert).to_contain_text("(409)")
    refused = page.locator("#message").text_content() or ""
    expect(status).to_have_text("")
    assert page.evaluate("window.said") == [{"change": "childList", "role": "status", "text": ""},
                                            {"change": "childList", "role": "alert", "text": refused.strip()}]
    expect(page.locator("#detail-status")).to_have_text("cancelled")
    page_errors[:] = [error for error in page_errors if "status of 409" not in error]


def test_what_the_list_now_shows_is_said_once_when_a_filter_or_a_page_changes_it(page: Page,
                                                                                 service: Service) -> None:
    """A filter or a page changes rows the focus is not on: a status message (a polite live region,
    there from the start) says what is listed now, with the filter, so that a screen reader hears
    "No schedules match" or the range without going to look; a refresh that changed nothing says
    nothing again."""
    user = "a11y-listed"
    newest = [service.later(userId=user) for _ in range(51)][-1]
    sign_in(page)
    listed = page.locator("#list-status")
    expect(listed).to_have_role("status")
    page.uncheck("#auto-refresh")
    # The first list, as signed in, is said before the recording starts (under load it was said
    # after it, and recorded: a race of the test, not the page).
    expect(listed).to_have_text("Schedules 1–50 (more follow)")
    page.wait_for_function("() => !state.busy")
    page.evaluate("""() => { window.said = []; const region = document.querySelector('#list-status');
        new MutationObserver(() => window.said.push(region.textContent))
            .observe(region, {childList: true, characterData: true, subtree: true}); }""")
    filter_by_user(page, user, newest["id"], 50)
    expect(listed).to_have_text(f"Schedules 1–50 (more follow), filtered by user {user}")
    page.focus("#next")
    page.keyboard.press("Enter")
    expect(listed).to_have_text(f"Schedules 51–51, filtered by user {user}")
    page.focus('.count[data-status="dead"]')
    page.keyboard.press("Enter")
    expect(listed).to_have_text(f"No schedules match, filtered by status dead, user {user}")
    with page.expect_response(lambda response: "/v1/schedules?" in response.url):
        page.click("#refresh")
    page.wait_for_function("() => !state.busy")
    assert page.evaluate("window.said") == [f"Schedules 1–50 (more follow), filtered by user {user}",
                                            f"Schedules 51–51, filtered by user {user}",
                                            f"No schedules match, filtered by status dead, user {user}"]


def open_rows(page: Page) -> list[str]:
    """The ids of the list's rows whose button is marked as the one open (``aria-current``, read
    out as "current" with the button's name); each checked to be the row shown as open too.
    Read from the page: Chromium passes ``aria-current`` to screen readers, but its DevTools
    accessibility tree (``chromium_name``, ``focusable_in``) and Playwright's snapshot leave it out."""
    marked: list[str] = page.evaluate("""() => [...document.querySelectorAll('#schedules tbody tr')]
        .filter((row) => { const current = row.querySelector('button.open').getAttribute('aria-current') === 'true';
                           if (current !== row.classList.contains('selected')) {
                               throw new Error(`row ${row.dataset.id}: shown open, not current, or the reverse`);
                           }
                           return current; })
        .map((row) => row.dataset.id)""")
    return marked


def test_the_open_row_is_told_to_a_screen_reader_not_only_by_its_background(page: Page, service: Service) -> None:
    """The row whose detail is shown has its own background, which a screen reader does not tell:
    its button, named by the id, is also ``aria-current="true"`` ("current"), the only one, as the
    detail opens, moves to another row, closes, and the list refreshes, pages or is filtered."""
    user = "a11y-current"
    made = [service.later(userId=user) for _ in range(51)]
    newest, second = made[-1]["id"], made[-2]["id"]
    sign_in(page)
    page.uncheck("#auto-refresh")
    filter_by_user(page, user, newest, 50)
    assert open_rows(page) == []
    row_button(page, newest).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-id")).to_have_text(newest)
    assert open_rows(page) == [newest]
    assert_accessible(page, "a row open, its button current")
    row(page, second).locator("td.status").click()
    expect(page.locator("#detail-id")).to_have_text(second)
    assert open_rows(page) == [second]
    page.evaluate("refresh()")
    page.wait_for_function("() => !state.busy")
    assert open_rows(page) == [second]
    page.click("#next")
    expect(page.locator("#page")).to_have_text("51–51")
    assert open_rows(page) == []  # not on this page
    page.click("#prev")
    expect(page.locator("#page")).to_have_text("1–50")
    assert open_rows(page) == [second]  # listed again: current again
    page.select_option("#status-filter", "dead")
    expect(page.locator("#empty")).to_be_visible()
    page.select_option("#status-filter", "scheduled")
    expect(page.locator("#schedules tbody tr")).to_have_count(50)
    assert open_rows(page) == [second]
    page.focus("#close-detail")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    assert open_rows(page) == []
    page.evaluate("refresh()")
    page.wait_for_function("() => !state.busy")
    assert open_rows(page) == []
    assert_accessible(page, "the detail closed, no row current")
    page.fill("#open-id", newest)  # opened by its id: its row, listed, is the current one
    page.keyboard.press("Enter")
    expect(page.locator("#detail-id")).to_have_text(newest)
    assert open_rows(page) == [newest]


def test_a_detail_s_table_that_scrolls_sideways_in_a_narrow_window_is_scrolled_by_the_keyboard(
        browser: Browser, service: Service) -> None:
    """At 320 px (WCAG's reflow) a schedule's attempts, events and next runs are wider than the
    window and scroll in their boxes, which hold nothing to Tab to: the keyboard could not scroll
    them (axe: scrollable-region-focusable). Each that scrolls is then a Tab stop, a region named
    by its heading, which the arrow keys scroll; none is while it fits (a laptop's width)."""
    dead = service.dead()
    with signed_in(browser, service, viewport={"width": 320, "height": 640}) as phone:
        phone.uncheck("#auto-refresh")
        phone.fill("#open-id", dead["id"])
        phone.press("#open-id", "Enter")
        expect(phone.locator("#events tbody tr")).to_have_count(4)  # scheduled, started, failed, dead
        events = phone.locator("#events").locator("xpath=..")
        expect(events).to_have_attribute("tabindex", "0")
        assert chromium_name(phone, "#detail .scroll:has(> #events)") == "Events"
        assert phone.evaluate("() => document.querySelector('#events').parentElement.getAttribute('role')") == "region"
        assert_accessible(phone, "a schedule open at 320 px")
        phone.focus("#detail-heading")
        for _ in range(20):
            phone.keyboard.press("Tab")
            if phone.evaluate("() => document.activeElement.contains(document.querySelector('#events'))"):
                break
        else:
            pytest.fail("Tab never reached the events")
        phone.keyboard.press("ArrowRight")
        phone.wait_for_function("() => document.querySelector('#events').parentElement.scrollLeft > 0")

        phone.set_viewport_size({"width": 1280, "height": 800})  # it fits: no Tab stop, no region
        expect(events).not_to_have_attribute("tabindex", "0")
        assert phone.locator("#detail .scroll[tabindex], #detail .scroll[role]").count() == 0
        assert_accessible(phone, "a schedule open at 1280 px")
