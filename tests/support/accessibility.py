"""axe-core in a Playwright page: what the page, as shown now, breaks of WCAG 2.1 AA.

axe-core ships inside the ``axe-playwright-python`` package (``axe.min.js``) and is injected
into the page under test: nothing is fetched, and the page's CSP, which would refuse a request
to any other origin, stays on.
"""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

#: WCAG 2.0 and 2.1, levels A and AA, and axe's best practices (a main landmark, all content in
#: landmarks, no empty table header...), which the dashboard keeps too.
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

_AXE = Axe()


def violations(page: Page) -> str:
    """axe-core's report of each rule of ``RULES`` the page breaks as it is shown now, with the
    elements that break it; "" when it breaks none. Only what is rendered is checked: hidden
    parts are checked in the states that show them."""
    results = _AXE.run(page, options={"runOnly": {"type": "tag", "values": RULES}, "resultTypes": ["violations"]})
    return results.generate_report() if results.violations_count else ""
