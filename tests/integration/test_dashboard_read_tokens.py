"""The dashboard signed in with a read-only token (``CRONJOB_API_READ_TOKENS``), in headless
Chromium against a real ``cronjob serve``: it shows what the API lets the token read, and an
action it tries is refused in the API's own words (the 403's detail), changing nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.dashboard import (  # noqa: F401 (fixtures: pytest finds them here)
    Service,
    browser,
    page,
    page_errors,
    row,
    serving,
    sign_in,
)

READER = "dashboard-reader-token-6e1f"
REFUSED = ("Forbidden (403): this token is read-only (CRONJOB_API_READ_TOKENS): it may only read (GET); "
           "a token from CRONJOB_API_TOKENS may make changes")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serving(tmp_path_factory.mktemp("dashboard-read"), CRONJOB_API_READ_TOKENS=READER) as started:
        yield started


def refused_once(page_errors: list[str]) -> None:
    """Chromium logs the refused request itself: that one error, and no other, is expected."""
    refused = [error for error in page_errors if "status of 403" in error]
    assert len(refused) == 1, page_errors
    page_errors.remove(refused[0])


def test_a_read_token_s_cancel_is_refused_in_the_api_s_words_and_changes_nothing(
        page: Page, service: Service, page_errors: list[str]) -> None:
    later = service.later()
    sign_in(page, READER)
    expect(page.locator("#app")).to_be_visible()
    row(page, later["id"]).click()
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda response: response.request.method == "DELETE") as answered:
        page.click("#cancel")
    assert answered.value.status == 403
    expect(page.locator("#message")).to_contain_text(REFUSED)
    expect(page.locator("#detail-status")).to_have_text("scheduled")
    assert service.get(later["id"]) == later
    assert page.evaluate("sessionStorage.getItem('cronjob.token')") == READER  # still signed in: the token is right
    refused_once(page_errors)


def test_a_read_token_s_bulk_pause_is_refused_and_changes_nothing(
        page: Page, service: Service, page_errors: list[str]) -> None:
    user = "dashboard-read-bulk"
    mine = [service.later(userId=user) for _ in range(2)]
    sign_in(page, READER)
    page.fill("#user-filter", user)
    page.press("#user-filter", "Enter")
    expect(page.locator("#schedules tbody tr")).to_have_count(2)
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#pause-matching")
    expect(page.locator("#message")).to_contain_text(REFUSED)
    assert [service.get(s["id"]) for s in mine] == mine
    refused_once(page_errors)
